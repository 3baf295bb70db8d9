"""Goal 6: the mirror's memory, and a writer that neither blocks the loop nor drops points.

Memory: ``tracemalloc`` counts what N ``update_metric`` calls leave allocated, once everything
is committed; every value is a new float object, as ``loss.item()`` gives. ``InMemoryRunHistory``
holds the same values. The target allows 1% for what does not grow with N (caches, a history's
own fields): "no more" is about the cost per point.

Locked database: a second connection holds ``BEGIN EXCLUSIVE`` while N calls are timed one by
one; then the lock goes, the history is flushed and closed, and the points in the table counted.
The lock is held 2 s, well under SQLite's busy timeout (60 s): the writer waits rather than fails,
so the spill to disk that bounds its queue during a failure is not exercised here.
"""
from __future__ import annotations

import gc
import sqlite3
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

from pytorch_accelerated.tracking import InMemoryRunHistory

from runhistory_sql import SQLRunHistory

from .common import EXPERIMENT, METRIC, Context, Row, limit_goal, log, loss_curve, quantile, ratio_goal

ROWS = {
    "6a": "memory of the mirror after N points",
    "6b": "DB locked: longest update_metric, points lost",
}
#: a lock is held at least this long, so the writer surely tries to commit meanwhile
HOLD_S = 2.0


def retained(history: Any, n: int, settle: Callable[[], Any]) -> tuple[float, float]:
    """(bytes per point left allocated after ``n`` calls and ``settle()``, peak bytes per point)."""
    update = history.update_metric
    update(METRIC, 0.0)
    settle()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        update(METRIC, 0.5 + i * 1e-9)
    settle()
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (current - base) / n, (peak - base) / n


def memory_row(ctx: Context) -> Row:
    n = ctx.sizes.points
    log(f"memory: {n:,} points under tracemalloc, each history")
    ours = SQLRunHistory(f"sqlite:///{ctx.path('memory')}", experiment=EXPERIMENT, run_name="memory")
    try:
        # a second flush makes the writer let go of its last batch, which it holds until it next wakes
        per_point, peak = retained(ours, n, lambda: ours.flush(timeout=600) and ours.flush())
    finally:
        ours.close()
    theirs = InMemoryRunHistory()
    theirs_per_point, _ = retained(theirs, n, lambda: None)
    return ratio_goal("6a", ROWS["6a"], per_point, "InMemoryRunHistory", theirs_per_point, "B/pt", at_most=1.01,
                      note=f"tracemalloc, {n:,} points, after flush; peak while queued {peak:.0f} B/pt")


def _time_calls(update: Callable[[str, float], None], values: list[float]) -> list[int]:
    ns = time.perf_counter_ns
    out = []
    for v in values:
        t0 = ns()
        update(METRIC, v)
        out.append(ns() - t0)
    return out


def rss_mb() -> float:
    """This process's resident memory in MB (Linux; 0 elsewhere)."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.exists() else []
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith("VmRSS:")), 0.0)


def locked_row(ctx: Context) -> Row:
    n = ctx.sizes.points
    bound_ms = ctx.sizes.max_block_ms
    path = ctx.path("locked")
    values = loss_curve(n, seed=6)
    history = SQLRunHistory(f"sqlite:///{path}", experiment=EXPERIMENT, run_name="locked")
    try:
        history.update_metric(METRIC, 0.0)
        history.flush()
        log(f"locked database: {n:,} update_metric calls while another connection holds BEGIN EXCLUSIVE")
        lock = sqlite3.connect(path, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        locked_at, rss_before = time.monotonic(), rss_mb()
        ours_ns = _time_calls(history.update_metric, values)
        time.sleep(max(0.0, HOLD_S - (time.monotonic() - locked_at)))
        held_s, rss_growth = time.monotonic() - locked_at, rss_mb() - rss_before
        lock.execute("ROLLBACK")
        lock.close()
        history.flush(timeout=600)
    finally:
        spill = history.close()
    conn = sqlite3.connect(path)
    stored = conn.execute("SELECT COUNT(*) FROM points").fetchone()[0]
    conn.close()
    lost = n + 1 - stored
    theirs_ns = _time_calls(InMemoryRunHistory().update_metric, values)
    row = limit_goal("6b", ROWS["6b"], max(ours_ns) / 1e9, "InMemoryRunHistory", max(theirs_ns) / 1e9, "s",
                     at_most=bound_ms / 1e3, shown=f"≤ {bound_ms:g} ms, 0 lost",
                     note=f"{n:,} calls, lock held {held_s:.1f} s; p99.9 {quantile(ours_ns, 0.999) / 1e6:.3f} ms; "
                          f"RSS +{rss_growth:.0f} MB while locked; {lost:,} points lost"
                          + (f" (spill file {spill})" if spill else ""))
    row.passed = row.passed and lost == 0
    return row


def run(ctx: Context) -> list[Row]:
    return [memory_row(ctx), locked_row(ctx)]
