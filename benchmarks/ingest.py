"""Goal 2 on SQLite: sustained ingest, ``update_metric`` until everything is committed.

Ours: N ``update_metric`` calls then ``flush()``, timed together. Raw: ``sqlite3.executemany``
of the same N rows, built beforehand, into the equivalent table in one transaction (WAL,
``synchronous=NORMAL``). The two alternate ``reps`` times and each keeps its best rate.

The last run ingested here (one metric of N points) is kept for the read and storage goals.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from pathlib import Path

from runhistory_sql import SQLRunHistory

from .common import (
    EQUIVALENT_DDL, EQUIVALENT_INSERT, EXPERIMENT, METRIC, Context, Row, log, loss_curve, point_rows,
    ratio_goal, raw_sqlite, remove_db, timed,
)

ROWS = {"2a": "ingest on SQLite: update_metric + flush"}


@dataclass
class LongRun:
    """A database holding one run with one metric of ``points`` points."""

    path: Path
    run_name: str
    points: int

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"


def recorded(url: str, run_name: str, body: Callable[[SQLRunHistory], None]) -> float:
    """Seconds for ``body(history)`` and a ``flush()`` until everything is committed."""
    history = SQLRunHistory(url, experiment=EXPERIMENT, run_name=run_name)
    try:
        def work() -> bool:
            body(history)
            return history.flush(timeout=600)

        seconds, committed = timed(work)
        if not committed:
            raise RuntimeError(f"flush() did not commit {run_name} within 600 s")
    finally:
        history.close()
    return seconds


def ingest(url: str, run_name: str, values: list[float]) -> float:
    """Record ``values`` with ``update_metric`` and wait until all are committed; return seconds."""

    def body(history: SQLRunHistory) -> None:
        update = history.update_metric
        for v in values:
            update(METRIC, v)

    return recorded(url, run_name, body)


def raw_executemany(path: Path, values: list[float]) -> float:
    """Insert the same points with ``sqlite3.executemany`` in one transaction; return seconds."""
    rows = point_rows(values)
    conn = raw_sqlite(path)
    conn.execute(EQUIVALENT_DDL)

    def work() -> None:
        conn.execute("BEGIN")
        conn.executemany(EQUIVALENT_INSERT, rows)
        conn.execute("COMMIT")

    seconds, _ = timed(work)
    conn.close()
    return seconds


def long_run(ctx: Context) -> LongRun:
    """The N-point run the read and storage goals use (ingested here if goal 2 did not run)."""
    if "long_run" not in ctx.shared:
        path = ctx.path("long-run")
        ingest(f"sqlite:///{path}", "long-run", loss_curve(ctx.sizes.points))
        ctx.shared["long_run"] = LongRun(path, "long-run", ctx.sizes.points)
    return ctx.shared["long_run"]


def run(ctx: Context) -> list[Row]:
    n = ctx.sizes.points
    values = loss_curve(n)
    ours, raw = [], []
    for rep in range(ctx.sizes.reps):
        log(f"ingest SQLite {rep + 1}/{ctx.sizes.reps}: {n:,} points, raw executemany then update_metric")
        raw_path, path = ctx.path("raw-equivalent"), ctx.path("long-run")
        raw.append(raw_executemany(raw_path, values))
        ours.append(ingest(f"sqlite:///{path}", "long-run", values))
        for old in (ctx.shared.get("raw_equivalent"), getattr(ctx.shared.get("long_run"), "path", None)):
            if old is not None:  # keep only the last of each: scratch space is finite
                remove_db(old)
        ctx.shared["raw_equivalent"] = raw_path
        ctx.shared["long_run"] = LongRun(path, "long-run", n)
    rate, raw_rate = n / min(ours), n / min(raw)
    ctx.shared["ingest_rate"] = rate
    return [ratio_goal("2a", ROWS["2a"], rate, "sqlite3 executemany, 1 txn", raw_rate, "pts/s", at_least=0.5,
                       note=f"{n:,} points, best of {len(ours)}")]
