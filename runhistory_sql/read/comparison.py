"""Runs side by side (``RunStore.compare``, ``runhistory-sql compare``): the params and config
fields that differ, and the stats of the chosen metrics of each run."""
from __future__ import annotations

from typing import Sequence

from sqlalchemy import Connection

from .listing import check_metrics, key_metrics
from .models import Comparison, Run
from .params import param_differences
from .records import config_differences, latest, read_configs
from .summaries import summarize


def compare_runs(conn: Connection, found: Sequence[Run], metrics: Sequence[str] | None) -> Comparison:
    """Compare ``found`` (distinct runs): their latest ``train`` snapshots, params and the stats
    of ``metrics`` (default: up to 3 key metrics, :func:`~.listing.key_metrics`).

    :raises InvalidArgumentError: a metric none of the runs has
    """
    configs = [latest(read_configs(conn, run.run_id)) for run in found]
    fields = [c.fields if c is not None else None for c in configs]
    stats = [{s.metric: s for s in summarize(conn, run.run_id)} for run in found]
    names = {metric for per_run in stats for metric in per_run}
    chosen = list(dict.fromkeys(metrics or ())) or key_metrics(names)
    check_metrics(chosen, names, "these runs")
    metric_stats = {m: [per_run.get(m) for per_run in stats] for m in chosen}
    return Comparison(list(found), config_differences(fields), metric_stats, param_differences([r.params for r in found]))
