"""Goal 4: bytes per point on SQLite, indexes included.

Measured with the ``dbstat`` virtual table (pages of the table and of every index on it) after
a WAL checkpoint; without ``dbstat``, the whole file. Our figure is the ``points`` table of the
long run ingested by goal 2; the comparison holds the same values in a naive table (text run
and metric names on every row), and, for reference, in the equivalent table of goal 2.
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from .common import METRIC, NAIVE_DDL, NAIVE_INSERT, Context, Row, limit_goal, log, reference, raw_sqlite
from .ingest import long_run
from .read import MIRROR_SQL, raw_fetchall, series_id

ROWS = {
    "4": "storage per point, indexes included",
    "4r": "  (ref) storage beside the raw equivalent table",
}


def table_bytes(path: Path, table: str) -> tuple[int, int, str]:
    """(bytes of ``table`` and its indexes, rows in it, how it was measured)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = ?", (table,))]
        try:
            marks = ", ".join("?" * len(names))
            size = conn.execute(f"SELECT SUM(pgsize) FROM dbstat WHERE name IN ({marks})", names).fetchone()[0]
            return int(size), rows, "dbstat"
        except sqlite3.OperationalError:  # SQLite built without dbstat
            return os.path.getsize(path), rows, "file size"
    finally:
        conn.close()


def naive_table(path: Path, values: list[tuple[int, float]]) -> None:
    """The same (epoch, value) points with the run's and metric's names as text on every row."""
    start = int(time.time() * 1000)
    conn = raw_sqlite(path)
    conn.execute(NAIVE_DDL)
    run = "run-20261130-021503-3fa2c1"  # what a generated run name looks like
    conn.execute("BEGIN")
    conn.executemany(NAIVE_INSERT, ((run, METRIC, i, e, v, start + i) for i, (e, v) in enumerate(values)))
    conn.execute("COMMIT")
    conn.close()


def run(ctx: Context) -> list[Row]:
    lr = long_run(ctx)
    ours, points, how = table_bytes(lr.path, "points")
    file_bytes = os.path.getsize(lr.path)
    log(f"storage: naive table of {lr.points:,} points")
    stored = raw_fetchall(lr.path, MIRROR_SQL, series_id(lr.path, lr.run_name, METRIC))
    values = [(epoch, value) for epoch, value, *_ in stored]
    naive_path = ctx.path("naive")
    naive_table(naive_path, values)
    naive, naive_rows, _ = table_bytes(naive_path, "naive")
    rows = [limit_goal("4", ROWS["4"], ours / points, "naive table, text names", naive / naive_rows, "B/pt",
                       at_most=32, shown="≤ 32 B",
                       note=f"{how}: points + its indexes; whole file {file_bytes / points:.1f} B/pt")]
    if "raw_equivalent" in ctx.shared:
        equivalent, equivalent_rows, _ = table_bytes(ctx.shared["raw_equivalent"], "points")
        rows.append(reference("4r", ROWS["4r"], ours / points, "raw equivalent table", equivalent / equivalent_rows,
                              "B/pt", note="goal 2's raw table: same columns and key, nothing else"))
    return rows
