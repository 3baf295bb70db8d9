"""``runhistory-sql compare``: runs side by side, the config fields that differ and the metrics."""
from __future__ import annotations

import json
from typing import Any, Sequence

import click

from ..read.models import Comparison, MetricStat, Run
from ..read.store import RunStore
from .common import experiment_option, one_line_errors, run_key, url_option
from .output import FORMATS, cell, emit, heading, plain_tree, print_table


@click.command("compare")
@click.argument("runs", nargs=-1)
@click.option(
    "--metric", "-m", "metrics", multiple=True,
    help="A metric to compare (repeatable). Default: up to 3 metrics ending in _epoch.",
)
@experiment_option
@url_option
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
    help="table for people; csv (one row per field and metric value) or json for other programs.",
)
@one_line_errors
def compare(runs: tuple[str, ...], metrics: tuple[str, ...], experiment: str | None, url: str | None, fmt: str) -> None:
    """Compare runs side by side: the params that differ, the config fields that differ (latest
    train() snapshot of each run), then the best and last value of each metric.

    RUN is a run name, or id:N for the run with id N; give two or more.

    \b
    Example:
        runhistory-sql compare baseline fast
        runhistory-sql compare id:1 id:2 id:3 --metric eval_loss_epoch --format json
    """
    if len(runs) < 2:
        raise click.ClickException("compare needs at least 2 runs, e.g.: runhistory-sql compare baseline fast")
    with RunStore(url) as store:
        comparison = store.compare([run_key(run) for run in runs], metrics, experiment=experiment)
    labels = _labels(comparison.runs)
    if fmt == "json":
        click.echo(json.dumps(plain_tree(_structure(comparison, labels)), indent=2, ensure_ascii=False))
    elif fmt == "csv":
        emit(["what", "name", *labels], _flat_rows(comparison), "csv")
    else:
        _print(labels, comparison)


def _labels(runs: Sequence[Run]) -> list[str]:
    """Column names: the run names, with the experiment where a name repeats; ids if still equal."""
    names = [r.run_name for r in runs]
    labels = [f"{r.experiment}/{r.run_name}" if names.count(r.run_name) > 1 else r.run_name for r in runs]
    return [f"{label} (#{r.run_id})" if labels.count(label) > 1 else label for label, r in zip(labels, runs)]


def _flat_rows(comparison: Comparison) -> list[list[Any]]:
    rows: list[list[Any]] = [["param", key, *found] for key, found in comparison.param_differences]
    rows += [["config", name, *found] for name, found in comparison.config_differences]
    for metric, per_run in comparison.metrics.items():
        stepped = any(s is not None and s.best_step is not None for s in per_run)
        for stat in ("best", "best_epoch", "best_step", "last") if stepped else ("best", "best_epoch", "last"):
            rows.append([stat, metric, *(getattr(s, stat) if s else None for s in per_run)])
    return rows


def _structure(comparison: Comparison, labels: list[str]) -> dict[str, Any]:
    return {
        "runs": [{"id": r.run_id, "experiment": r.experiment, "name": r.run_name, "label": label}
                 for r, label in zip(comparison.runs, labels)],
        "param_differences": [{"param": key, "values": dict(zip(labels, found))} for key, found in comparison.param_differences],
        "config_differences": [{"field": name, "values": dict(zip(labels, found))} for name, found in comparison.config_differences],
        "metrics": [
            {"metric": metric, "goal": next((s.goal for s in per_run if s), None),
             "values": {label: None if s is None else {k: getattr(s, k) for k in ("best", "best_epoch", "best_step", "last", "stage", "count")}
                        for label, s in zip(labels, per_run)}}
            for metric, per_run in comparison.metrics.items()
        ],
    }


def _print(labels: list[str], comparison: Comparison) -> None:
    if comparison.param_differences:
        heading("Params that differ")
        print_table(["param", *labels], [[key, *found] for key, found in comparison.param_differences])
        click.echo()
    if comparison.config_differences:
        heading("Config fields that differ (latest train snapshot of each run)")
        print_table(["config field", *labels], [[name, *found] for name, found in comparison.config_differences])
    else:
        heading("Configs: no differences (latest train snapshot of each run).")
    if not comparison.metrics:
        return
    click.echo()
    rows: list[list[Any]] = []
    for metric, per_run in comparison.metrics.items():
        goal = next((s.goal for s in per_run if s), "min")
        rows.append([metric, f"best ({goal})", *(_best(s) for s in per_run)])
        rows.append(["", "last", *(s.last if s else None for s in per_run)])
    heading("Metrics")
    print_table(["metric", "", *labels], rows)


def _best(stat: MetricStat | None) -> str:
    if stat is None or stat.best is None:
        return ""
    where = f"epoch {stat.best_epoch}" if stat.best_step is None else f"step {stat.best_step}"
    return f"{cell(stat.best)} ({where})"
