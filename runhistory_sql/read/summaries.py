"""Per-metric summaries of a run (count, last, min, max, best and its epoch and step), and which way is better.

Counts, minima and maxima come from the per-series summaries the writer keeps (``series``);
only the last point and the point with the best value are read from ``points``, each through the
primary key, so a summary costs a few small queries whatever the length of the histories.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

from sqlalchemy import Connection, Row, func

from ..db.effective import LATEST_FIRST, effective_points, live_series
from ..db.engine import fetch_raw, placeholder
from ..db.schema import SPECIAL_NEG_ZERO, experiments, metrics, runs, series, stages
from ..db.values import decode
from .models import MetricStat

GOALS = ("min", "max")

# a word of the name: bounded by non-letters, so "eval_acc", "mAP50" and "top1_acc" match but
# "heatmap_loss" and "mapping" do not
_MAXIMISED = re.compile(r"(?<![a-z])(acc|accuracy|f1|auc|precision|recall|score|iou|map|bleu|top1|top5)(?![a-z])")
_MINIMISED = re.compile(r"(?<![a-z])(loss|error|err)(?![a-z])")


def goal_of(metric: str) -> str:
    """Return ``"max"`` for a metric that is better when higher, else ``"min"``, from its name.

    A name with a word ``acc``, ``accuracy``, ``f1``, ``auc``, ``precision``, ``recall``,
    ``score``, ``iou``, ``map``, ``bleu``, ``top1`` or ``top5`` (in any case, camelCase too) is
    maximised, unless it also has a word ``loss``, ``error`` or ``err``; everything else (losses,
    errors, perplexities) is minimised.

    Example::

        goal_of("eval_accuracy_epoch")   # "max"
        goal_of("train_loss_epoch")      # "min"
        goal_of("f1_loss")               # "min"

    :param metric: the metric's name
    :return: ``"min"`` or ``"max"``
    """
    lowered = metric.lower()
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", metric).lower()  # "valAccuracy" -> "val_accuracy"
    if any(_MINIMISED.search(name) for name in (lowered, words)):
        return "min"
    return "max" if any(_MAXIMISED.search(name) for name in (lowered, words)) else "min"


def summarize(conn: Connection, run_id: int, goals: Mapping[str, str] | None = None) -> list[MetricStat]:
    """Summarise each metric of the run in the latest stage that has points of it.

    :param goals: metric name -> ``"min"`` or ``"max"``, for metrics whose name misleads
        :func:`goal_of`
    :return: one per metric, ordered by name, with ``best_epoch``
    """
    goals = dict(goals or {})
    for metric, goal in goals.items():
        if goal not in GOALS:
            raise ValueError(f"The goal of metric {metric!r} must be 'min' or 'max', not {goal!r}.")
    query = (
        live_series(metrics.c.name, stages.c.idx, series.c.id, series.c.n_points, series.c.min_value, series.c.max_value)
        .where(series.c.run_id == run_id)
        .order_by(metrics.c.name, *LATEST_FIRST)
    )
    latest: dict[str, Any] = {}
    for row in conn.execute(query):
        latest.setdefault(row.name, row)
    return [_summary(conn, row, goals.get(name) or goal_of(name)) for name, row in latest.items()]


def _summary(conn: Connection, row: Row[Any], goal: str) -> MetricStat:
    effective = effective_points(conn)
    last = fetch_raw(conn, f"SELECT value, special, value_json {effective} ORDER BY seq DESC LIMIT 1", (row.id,))[0]
    low, high = row.min_value, row.max_value
    if low == 0.0 or high == 0.0:
        low, high = _signed_zeros(conn, row.id, low, high)
    best = low if goal == "min" else high
    epoch, step = (None, None) if best is None else _first_best(conn, row.id, best)
    return MetricStat(row.name, row.idx, row.n_points, decode(*last), low, high, goal, epoch, step)


def _signed_zeros(conn: Connection, series_id: int, low: float | None, high: float | None) -> tuple[Any, Any]:
    """``(min, max)`` with the sign of a zero extreme restored: the summaries store -0.0 as 0.0,
    with a flag on the point."""
    effective = effective_points(conn) + " AND value = 0"
    flags = {special for (special,) in fetch_raw(conn, f"SELECT DISTINCT special {effective}", (series_id,))}
    if low == 0.0:
        low = -0.0 if SPECIAL_NEG_ZERO in flags else 0.0
    if high == 0.0:
        high = 0.0 if None in flags else -0.0
    return low, high


def _first_best(conn: Connection, series_id: int, best: float) -> tuple[int, int | None]:
    """The epoch and step of the first effective point equal to ``best`` (NaN never is; a
    zero's sign counts); the step is None for a point without one (the Trainer's)."""
    sql = f"SELECT epoch, step {effective_points(conn)} AND value = {placeholder(conn)}"
    params: tuple[Any, ...] = (series_id, best)
    if best == 0.0:
        negative = math.copysign(1.0, best) < 0
        sql += f" AND special = {SPECIAL_NEG_ZERO}" if negative else " AND special IS NULL"
    (epoch, step), = fetch_raw(conn, sql + " ORDER BY seq LIMIT 1", params)
    return int(epoch), None if step is None else int(step)


def best_runs(
    conn: Connection, metric: str, *, mode: str = "min", limit: int = 10, experiment: str | None = None,
) -> list[tuple[str, str, float]]:
    """The runs with the best value of ``metric`` (:meth:`RunStore.best`), from the per-series
    summaries, not the points: ``(experiment, run_name, value)``, best first."""
    if mode not in GOALS:
        raise ValueError(f"mode must be 'min' or 'max', not {mode!r}.")
    column = series.c.min_value if mode == "min" else series.c.max_value
    best = (func.min(column) if mode == "min" else func.max(column)).label("best")
    query = (
        live_series(experiments.c.name, runs.c.name, best)
        .join(runs, runs.c.id == series.c.run_id).join(experiments, experiments.c.id == runs.c.experiment_id)
        .where(metrics.c.name == metric, column.is_not(None))
        .group_by(experiments.c.name, runs.c.name)
        .order_by(best.asc() if mode == "min" else best.desc()).limit(limit)
    )
    if experiment:
        query = query.where(experiments.c.name == experiment)
    return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]
