"""Goal 5: the best value of a metric per run, top 10, over R runs x 10 metrics x 100 values.

The runs are recorded through the public API (one ``SQLRunHistory`` per run, ``update_metric``,
``close``), so whatever the writer maintains at flush time (summaries) is there. ``_increment_epoch``
is left out because it commits synchronously, which would make the generation take minutes; the
points all sit in epoch 1, which the query does not look at. The naive table holds the same values.

Each query is timed warm, as the median of repeated calls.
"""
from __future__ import annotations

import math
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

from runhistory_sql import SQLRunHistory

from .common import (
    NAIVE_DDL, NAIVE_INSERT, Context, Row, limit_goal, log, raw_sqlite, reference, repeat_median, run_store_class,
    skipped,
)

ROWS = {
    "5a": "best per run, top 10: RunStore.best",
    "5b": "best per run, top 10: SQL on v_summaries",
    "5r": "  (ref) SQL on v_metrics (every point) beside a naive table",
}
METRICS = ("train_loss", "val_loss", "train_acc", "val_acc", "lr", "grad_norm", "val_f1", "val_precision",
           "val_recall", "epoch_time")
TARGET = "val_loss"
STEPS = 100
EXPERIMENT = "best"
VIEW_SQL = "SELECT run_id, MIN(value) FROM v_metrics WHERE metric = ? GROUP BY run_id ORDER BY 2 LIMIT 10"
SUMMARY_SQL = "SELECT run_id, MIN(min_value) FROM v_summaries WHERE metric = ? GROUP BY run_id ORDER BY 2 LIMIT 10"
NAIVE_SQL = "SELECT run, MIN(value) FROM naive WHERE metric = ? GROUP BY run ORDER BY 2 LIMIT 10"
COVERING_INDEX = "CREATE INDEX naive_metric_run_value ON naive (metric, run, value)"


def run_values(r: int) -> dict[str, list[float]]:
    """The 100 values of each of the 10 metrics of run ``r`` (a loss curve with its own floor)."""
    rng = random.Random(r)
    floor = rng.uniform(0.1, 1.0)
    return {m: [floor + 2.0 * math.exp(-s / 20) + 0.05 * rng.random() for s in range(STEPS)] for m in METRICS}


def record_runs(url: str, runs: int) -> None:
    for r in range(runs):
        values = run_values(r)
        history = SQLRunHistory(url, experiment=EXPERIMENT, run_name=f"run-{r:05d}")
        try:
            for s in range(STEPS):
                for m in METRICS:
                    history.update_metric(m, values[m][s])
        finally:
            history.close()


def naive_runs(path: Path, runs: int) -> None:
    conn = raw_sqlite(path)
    conn.execute(NAIVE_DDL)
    start = int(time.time() * 1000)
    conn.execute("BEGIN")
    for r in range(runs):
        rows = ((f"run-{r:05d}", m, s, 1, v, start + s) for m, vs in run_values(r).items() for s, v in enumerate(vs))
        conn.executemany(NAIVE_INSERT, rows)
    conn.execute("COMMIT")
    conn.close()


def _values(result: Any) -> list[float] | None:
    """The best values in whatever rows ``RunStore.best`` returns, or None if they cannot be found."""
    found = []
    for item in result:
        for key in ("value", "best", "best_value", "min_value"):
            got = item.get(key) if isinstance(item, dict) else getattr(item, key, None)
            if isinstance(got, float):
                break
        else:
            floats = [x for x in item if isinstance(x, float)] if isinstance(item, (tuple, list)) else []
            if not floats:
                return None
            got = floats[-1]
        found.append(got)
    return found


def _same(a: list[float] | None, b: list[float]) -> bool:
    return a is not None and len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-12) for x, y in zip(a, b))


def run(ctx: Context) -> list[Row]:
    runs = ctx.sizes.runs
    points = runs * len(METRICS) * STEPS
    path, naive_path = ctx.path("best"), ctx.path("best-naive")
    url = f"sqlite:///{path}"
    log(f"best-per-run: recording {runs:,} runs x {len(METRICS)} metrics x {STEPS} values ({points:,} points)")
    record_runs(url, runs)
    naive_runs(naive_path, runs)

    ours_db, naive_db = sqlite3.connect(path), sqlite3.connect(naive_path)
    try:
        stored = ours_db.execute("SELECT COUNT(*) FROM v_metrics").fetchone()[0]
        if stored != points:
            raise AssertionError(f"v_metrics holds {stored:,} points, expected {points:,}")
        expected = [v for _, v in naive_db.execute(NAIVE_SQL, (TARGET,))]
        if [v for _, v in ours_db.execute(VIEW_SQL, (TARGET,))] != expected:
            raise AssertionError("v_metrics and the naive table disagree on the best runs")
        if [v for _, v in ours_db.execute(SUMMARY_SQL, (TARGET,))] != expected:
            raise AssertionError("v_summaries and the naive table disagree on the best runs")
        view_s = repeat_median(lambda: ours_db.execute(VIEW_SQL, (TARGET,)).fetchall())
        summary_s = repeat_median(lambda: ours_db.execute(SUMMARY_SQL, (TARGET,)).fetchall())
        naive_s = repeat_median(lambda: naive_db.execute(NAIVE_SQL, (TARGET,)).fetchall())
        naive_db.execute(COVERING_INDEX)
        covered_s = repeat_median(lambda: naive_db.execute(NAIVE_SQL, (TARGET,)).fetchall())
    finally:
        ours_db.close()
        naive_db.close()

    size = f"{runs:,} runs x {len(METRICS)} metrics x {STEPS}; warm median"
    against = "naive table + covering index"
    rows = [
        limit_goal("5b", ROWS["5b"], summary_s, against, covered_s, "s", at_most=5e-3, shown="≤ 5 ms", note=size),
        reference("5r", ROWS["5r"], view_s, "naive table, no index", naive_s, "s", note=size),
    ]
    RunStore, missing = run_store_class()
    if RunStore is None:
        return [skipped("5a", ROWS["5a"], missing), *rows]
    store = RunStore(url)
    try:
        got = _values(store.best(TARGET, limit=10))
        store_s = repeat_median(lambda: store.best(TARGET, limit=10))
    finally:
        getattr(store, "close", lambda: None)()
    right = got is None or _same(got, expected)  # a fast wrong answer does not pass
    checked = "values not found in the result" if got is None else "same top 10 as SQL" if right else "WRONG top 10"
    row = limit_goal("5a", ROWS["5a"], store_s, against, covered_s, "s", at_most=5e-3, shown="≤ 5 ms",
                     note=f"{size}; {checked}")
    row.passed = row.passed and right
    return [row, *rows]
