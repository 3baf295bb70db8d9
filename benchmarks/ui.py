"""Goal 7 (issue 13): the dashboard's JSON, server side.

- the runs list of 10,000 runs (10 x ``--runs``): one page (50 runs, sorted by the best of a
  metric, two metrics' last and best shown) as ``GET /api/runs`` builds it (``payloads.runs_payload`` and the JSON
  encoding), warm median; beside it, for scale, ``RunStore.runs()`` of every run (what
  ``runhistory-sql runs`` reads);
- the 1,000,000-point history downsampled (``GET /api/runs/{id}/history``, its default buckets):
  cold (a new ``RunStore``) beside ``RunStore.history`` of the same metric (also a new store),
  alternated, best of ``reps``: the window reads the block summaries the writer stored
  (``point_blocks``, migration 0008), not the million points; then a reload (the same store,
  warm caches of the database); and the payload's size.

The 10,000 runs: 100 recorded through the public API (``SQLRunHistory``, 2 metrics x 10 epochs,
tags), then copied 99 times in SQL with new ids, uuids and names: the same rows the writer
writes, in seconds instead of minutes.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from runhistory_sql import SQLRunHistory
from runhistory_sql.read.windows import DEFAULT_BUCKETS

from .common import METRIC, Context, Row, limit_goal, log, ratio_goal, repeat_median, timed
from .ingest import long_run

ROWS = {
    "7a": "runs list JSON: a page of 50 of 10 x R runs",
    "7b": "history JSON, 1,000,000 points downsampled (cold)",
    "7c": "  the same: time (cold)",
    "7d": "  the same: a reload (same store)",
    "7e": "  the same: payload",
}
RECORDED = 100  # the runs recorded through the API; the rest are copies of them
PAGE = {"sort": "best.eval_loss_epoch", "order": "asc", "limit": 50, "metrics": ["eval_loss_epoch", "train_loss_epoch"]}


def many_runs(path: Path, recorded: int, copies: int) -> str:
    """A SQLite file of ``recorded * copies`` runs (see the module's docstring)."""
    url = f"sqlite:///{path}"
    for r in range(recorded):
        with SQLRunHistory(url, experiment=f"sweep-{r % 5}", run_name=f"run-{r:03d}", tags={"seed": r}) as h:
            for epoch in range(10):
                h.update_metric("eval_loss_epoch", 1.0 / (epoch + 1) + (r * 7919 % 1000) / 1000)
                h.update_metric("train_loss_epoch", 2.0 / (epoch + 1) + r / 1000)
                h._increment_epoch()
    conn = sqlite3.connect(path)
    counts = {t: conn.execute(f"SELECT MAX(id) FROM {t}").fetchone()[0] for t in ("runs", "stages", "series")}
    with conn:
        for k in range(1, copies):
            for table, keys in _COPIED.items():
                columns = _columns(conn, table)
                values = [_copied(c, keys, k, counts) for c in columns]
                key = "series_id" if table == "points" else "id"
                conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {table} "
                             f"WHERE {key} <= {counts['series' if table == 'points' else table]}")
    conn.close()
    return url


# the columns of each copied table that refer to a copied table's id, and which table
_COPIED = {
    "runs": {"id": "runs"}, "stages": {"id": "stages", "run_id": "runs"},
    "series": {"id": "series", "run_id": "runs", "stage_id": "stages"}, "points": {"series_id": "series"},
}


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def _copied(column: str, keys: dict[str, str], k: int, counts: dict[str, int]) -> str:
    """The SQL of ``column`` in the ``k``-th copy: ids moved past the originals, uuid and name new."""
    if column in keys:
        return f"{column} + {k * counts[keys[column]]}"
    if column == "uuid":
        return f"printf('%08d-0000-4000-8000-%012d', {k}, id)"
    return f"name || '-{k}'" if column == "name" else column


def _runs_page(url: str) -> tuple[float, float, int]:
    from runhistory_sql import RunStore
    from runhistory_sql.ui.payloads import runs_payload

    with RunStore(url) as store:
        total = runs_payload(store, **PAGE)["total"]  # type: ignore[arg-type]
        page = repeat_median(lambda: json.dumps(runs_payload(store, **PAGE)))  # type: ignore[arg-type]
        every = repeat_median(lambda: store.runs(), at_least=1, at_most=3)
    return page, every, total


def _history(url: str, run_name: str, reps: int) -> tuple[list[float], list[float], float, int]:
    from runhistory_sql import RunStore
    from runhistory_sql.ui.payloads import history_payload

    cold, full, body = [], [], b""
    for rep in range(reps):
        log(f"history {rep + 1}/{reps}: downsampled (cold store), RunStore.history (cold store)")
        with RunStore(url) as store:
            run_id = store.run_id(run_name)
            seconds, body = timed(lambda: json.dumps(history_payload(store, run_id, METRIC)).encode())
            cold.append(seconds)
            if rep == reps - 1:
                reload = repeat_median(lambda: json.dumps(history_payload(store, run_id, METRIC)))
        with RunStore(url) as store:
            full.append(timed(lambda: store.history(run_name, METRIC))[0])
    return cold, full, reload, len(body)


def run(ctx: Context) -> list[Row]:
    recorded = min(RECORDED, 10 * ctx.sizes.runs)
    copies = max(1, 10 * ctx.sizes.runs // recorded)
    log(f"runs list: recording {recorded} runs, copying them to {recorded * copies:,}")
    start = time.perf_counter()
    url = many_runs(ctx.path("many-runs"), recorded, copies)
    made = time.perf_counter() - start
    page, every, total = _runs_page(url)
    lr = long_run(ctx)
    reps = max(ctx.sizes.reps, 1)
    cold, full, reload, size = _history(f"sqlite:///{lr.path}", lr.run_name, reps)
    note = f"{lr.points:,} points, {DEFAULT_BUCKETS} buckets, best of {reps}"
    return [
        limit_goal("7a", ROWS["7a"], page, "RunStore.runs() of every run", every, "s", at_most=0.1, shown="≤ 100 ms",
                   note=f"{total:,} runs (made in {made:.0f} s), sorted by best eval_loss_epoch, 2 metrics, warm median"),
        ratio_goal("7b", ROWS["7b"], min(cold), "RunStore.history (cold)", min(full), "s", at_most=0.2, note=note),
        limit_goal("7c", ROWS["7c"], min(cold), "", None, "s", at_most=0.1, shown="≤ 100 ms", note=note),
        limit_goal("7d", ROWS["7d"], reload, "", None, "s", at_most=0.1, shown="≤ 100 ms", note="warm median, same store"),
        limit_goal("7e", ROWS["7e"], float(size), "", None, "B", at_most=100_000, shown="≤ 100 KB", note="JSON bytes"),
    ]

