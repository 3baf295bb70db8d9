"""Ingest as training does it: a commit at every epoch's end, and values of mixed kinds (issue 10).

- 2d: N ``update_metric`` calls with ``_increment_epoch()`` (which returns once the epoch is
  committed) every 1,000 points, beside ``sqlite3.executemany`` of the same rows committing
  every 1,000 rows (same table, WAL, ``synchronous=NORMAL``), interleaved epoch by epoch.
- 2e: N/2 steps of ``loss`` (a float) and ``step`` (an int), beside the same N/2 steps with
  ``step`` given as a float: the same operations, series and rows; only the kind differs.
  PostgreSQL's row of the same (2f) is in ``postgres.py``.

Ours and the comparison alternate ``reps`` times (2d: also epoch by epoch); each keeps its best rate.
"""
from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Callable

from runhistory_sql import SQLRunHistory

from .common import (
    EQUIVALENT_DDL, EQUIVALENT_INSERT, EXPERIMENT, METRIC, Context, Row, log, loss_curve, point_rows,
    ratio_goal, raw_sqlite, remove_db,
)
from .ingest import recorded

ROWS = {
    "2d": "ingest, a commit per epoch of 1,000 points (SQLite)",
    "2e": "ingest of a float beside an int (SQLite)",
}
EPOCH = 1000


def per_epoch(url: str, run_name: str, path: Path, values: list[float]) -> tuple[float, float]:
    """Seconds of (ours, raw) for ``values`` in epochs of 1,000, interleaved epoch by epoch.

    Ours: ``update_metric`` for each value, then ``_increment_epoch()``. Raw: ``executemany``
    of the same rows and a COMMIT. Interleaving lets machine noise hit both alike.
    """
    rows = point_rows(values)
    raw_epochs = [rows[i:i + EPOCH] for i in range(0, len(rows), EPOCH)]
    epochs = [values[i:i + EPOCH] for i in range(0, len(values), EPOCH)]
    conn = raw_sqlite(path)
    conn.execute(EQUIVALENT_DDL)
    history = SQLRunHistory(url, experiment=EXPERIMENT, run_name=run_name)
    ours = raw = 0.0
    try:
        update, increment, clock = history.update_metric, history._increment_epoch, time.perf_counter
        gc.collect()
        for epoch, raw_epoch in zip(epochs, raw_epochs):
            t0 = clock()
            for v in epoch:
                update(METRIC, v)
            increment()
            t1 = clock()
            conn.execute("BEGIN")
            conn.executemany(EQUIVALENT_INSERT, raw_epoch)
            conn.execute("COMMIT")
            raw += clock() - t1
            ours += t1 - t0
        if not history.flush(timeout=600):
            raise RuntimeError(f"flush() did not commit {run_name} within 600 s")
    finally:
        history.close()
        conn.close()
    return ours, raw


def loss_and_step(url: str, run_name: str, values: list[float], *, step_as_float: bool) -> float:
    """``update_metric`` of ``loss`` then ``step`` (an int, or the same number as a float) per value."""
    steps = [float(i + 1) if step_as_float else i + 1 for i in range(len(values))]

    def body(history: SQLRunHistory) -> None:
        update = history.update_metric
        for v, s in zip(values, steps):
            update(METRIC, v)
            update("step", s)

    return recorded(url, run_name, body)


def mixed_rates(ctx: Context, url: Callable[[int], str], label: str) -> tuple[float, float, str]:
    """(ops/s with an int step, ops/s with a float step, note), alternating, best of reps."""
    steps = max(ctx.sizes.points // 2, 1)
    values = loss_curve(steps)
    mixed, floats = [], []
    for rep in range(ctx.sizes.reps):
        log(f"mixed kinds {label} {rep + 1}/{ctx.sizes.reps}: {steps:,} steps of a float and an int, then of two floats")
        mixed.append(loss_and_step(url(2 * rep), f"mixed-{rep}", values, step_as_float=False))
        floats.append(loss_and_step(url(2 * rep + 1), f"floats-{rep}", values, step_as_float=True))
    note = f"{steps:,} steps x 2 metrics, best of {len(mixed)}"
    return 2 * steps / min(mixed), 2 * steps / min(floats), note


def run(ctx: Context) -> list[Row]:
    n = ctx.sizes.points
    values = loss_curve(n)
    ours, raw = [], []
    for rep in range(ctx.sizes.reps):
        log(f"per-epoch commits {rep + 1}/{ctx.sizes.reps}: {n:,} points, update_metric and raw executemany, epoch by epoch")
        raw_path, path = ctx.path("raw-per-epoch"), ctx.path("per-epoch")
        seconds, raw_seconds = per_epoch(f"sqlite:///{path}", "per-epoch", raw_path, values)
        ours.append(seconds)
        raw.append(raw_seconds)
        remove_db(raw_path)
        remove_db(path)
    paths: list[Path] = []

    def sqlite_url(_: int) -> str:
        paths.append(ctx.path("mixed"))
        return f"sqlite:///{paths[-1]}"

    mixed, floats, note = mixed_rates(ctx, sqlite_url, "SQLite")
    for path in paths:
        remove_db(path)
    return [
        ratio_goal("2d", ROWS["2d"], n / min(ours), "sqlite3 executemany, 1 txn per 1,000", n / min(raw), "pts/s",
                   at_least=0.6, note=f"{n:,} points, {max(n // EPOCH, 1):,} epochs, best of {len(ours)}"),
        ratio_goal("2e", ROWS["2e"], mixed, "the same with a float step", floats, "pts/s", at_least=0.67, note=note),
    ]
