"""Goal 3: reading an N-point metric history back, and rebuilding the mirror on resume.

Both are compared with a plain ``sqlite3`` connection fetching the same rows of ``points``
with ``fetchall()``: the columns ``RunStore.history`` returns for the first, the columns a
mirror needs for the second. Each side keeps its best of ``reps`` alternating attempts.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from runhistory_sql import SQLRunHistory

from .common import EXPERIMENT, METRIC, Context, Row, log, ratio_goal, run_store_class, skipped, timed
from .ingest import long_run

ROWS = {
    "3a": "RunStore.history of one long metric",
    "3b": "resume: rebuild the mirror of a long run",
}
# the columns RunStore.history returns, and those a mirror loads (the step of each point too, since issue 12)
HISTORY_SQL = "SELECT seq, epoch, value, recorded_at, step FROM points WHERE series_id = ? AND rev = 0 ORDER BY seq"
MIRROR_SQL = "SELECT epoch, value, special, value_json, step FROM points WHERE series_id = ? AND rev = 0 ORDER BY seq"


def series_id(path: Path, run_name: str, metric: str) -> int:
    conn = sqlite3.connect(path)
    found = conn.execute(
        "SELECT s.id FROM series s JOIN runs r ON r.id = s.run_id JOIN metrics m ON m.id = s.metric_id "
        "WHERE r.name = ? AND m.name = ?", (run_name, metric),
    ).fetchall()
    conn.close()
    assert len(found) == 1, found
    return int(found[0][0])


def raw_fetchall(path: Path, sql: str, sid: int) -> list[Any]:
    conn = sqlite3.connect(path)
    rows = conn.execute(sql, (sid,)).fetchall()
    conn.close()
    return rows


def _checked(what: str, got: int, expected: int) -> None:
    if got != expected:
        raise AssertionError(f"{what} returned {got:,} points, expected {expected:,}")


def run(ctx: Context) -> list[Row]:
    lr = long_run(ctx)
    sid = series_id(lr.path, lr.run_name, METRIC)
    RunStore, missing = run_store_class()

    def store_history() -> list[Any]:
        store = RunStore(lr.url)
        try:
            return list(store.history(lr.run_name, METRIC))
        finally:
            getattr(store, "close", lambda: None)()

    def resume() -> SQLRunHistory:
        return SQLRunHistory(lr.url, experiment=EXPERIMENT, run_name=lr.run_name, resume="must")

    raw_h, ours_h, raw_m, ours_m = [], [], [], []
    for rep in range(ctx.sizes.reps):
        log(f"read {rep + 1}/{ctx.sizes.reps}: {lr.points:,} points, raw fetchall, RunStore.history, resume")
        raw_h.append(timed(lambda: raw_fetchall(lr.path, HISTORY_SQL, sid))[0])
        if RunStore is not None:
            seconds, points = timed(store_history)
            _checked("RunStore.history", len(points), lr.points)
            ours_h.append(seconds)
        raw_m.append(timed(lambda: raw_fetchall(lr.path, MIRROR_SQL, sid))[0])
        seconds, history = timed(resume)
        try:
            _checked("the resumed mirror", len(history.get_metric_values(METRIC)), lr.points)
        finally:
            history.close()
        ours_m.append(seconds)
    note = f"{lr.points:,} points, best of {ctx.sizes.reps}"
    rows = [ratio_goal("3b", ROWS["3b"], min(ours_m), "sqlite3 fetchall", min(raw_m), "s", at_most=1.5,
                       note=f"SQLRunHistory(resume='must'); {note}")]
    if RunStore is None:
        return [skipped("3a", ROWS["3a"], missing), *rows]
    return [ratio_goal("3a", ROWS["3a"], min(ours_h), "sqlite3 fetchall", min(raw_h), "s", at_most=1.3, note=note),
            *rows]
