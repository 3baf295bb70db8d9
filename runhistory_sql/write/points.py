"""Inserting the points of a batch, of every kind together, and folding them into the summaries.

A queued point is ``(code, token, seq, epoch, value, time in s, step)`` (``step`` ``None`` for
``update_metric``'s points). Code 0 (``apply.POINT``)
carries a non-zero float (NaN and infinities included); any other code (``apply.POINT_ENC``) an
already encoded ``(value, special, value_json)``. The writer thread shares the GIL with the
training loop, so the work per point is done in C wherever it can be (``map``, ``compress``,
``sorted``), and the GIL is handed back between slices.
"""
from __future__ import annotations

import time
from functools import partial
from itertools import compress, filterfalse, groupby
from math import isnan
from operator import is_not, itemgetter, not_
from typing import Any, Sequence

from sqlalchemy import Connection

from ..db.engine import placeholder
from ..db.values import encode_float, sqlite_columns, stored_plain

Op = tuple[Any, ...]
#: points converted per slice; between slices the writer yields the GIL to the training loop
SLICE = 2000
POINT_COLUMNS = "series_id, rev, seq, epoch, value, special, value_json, recorded_at, step"

_CODE, _TOKEN, _VALUE = itemgetter(0), itemgetter(1), itemgetter(4)
_NOT_NONE = partial(is_not, None)

_PLAIN_SQLITE = (
    f"INSERT INTO points ({POINT_COLUMNS}) "
    # the queued tuple is bound as it is: ?2 token, ?3 seq, ?4 epoch, ?5 value, ?6 time in s,
    # ?7 step; (value, special, value_json) as values.sqlite_columns says; times are ms since the
    # run began
    "{select} 0, ?3, ?4, " + sqlite_columns("?5") + ", CAST(?6 * 1000 AS INTEGER) - {created}, ?7{rest}"
)
#: up to this many series in a slice, their ids come from a CASE on the token (a third faster
#: than a join with the token table, and than binding whole rows); beyond it, from the join
_CASE_TOKENS = 32


def insert_points(conn: Connection, ops: Sequence[Op], series: dict[int, int], stats: dict[int, list[Any]],
                  created_ms: int) -> None:
    """Insert the queued points ``ops`` and fold them into ``stats`` and the ``series`` table.

    :param series: the history's series tokens -> series ids
    :param stats: series id -> [effective points, min, max] of its numeric values, updated here
    :param created_ms: the run's ``created_at``: points store their time as ms since it
    """
    if not ops:
        return
    sqlite = conn.dialect.name == "sqlite"
    sql = f"INSERT INTO points ({POINT_COLUMNS}) VALUES ({', '.join([placeholder(conn)] * 9)})"
    batch: dict[int, list[Any]] = {}  # token -> [points, min, max] of this batch
    for start in range(0, len(ops), SLICE):
        part = ops[start:start + SLICE]
        codes = list(map(_CODE, part))
        if sqlite and not any(codes):  # floats only: bound as queued, no Python work per point
            _insert_plain_sqlite(conn, part, series, created_ms)
        elif sqlite:
            _insert_plain_sqlite(conn, list(compress(part, map(not_, codes))), series, created_ms)
            _write_rows(conn, sql, _rows(list(compress(part, codes)), series, created_ms))
        else:
            _write_rows(conn, sql, _rows(part, series, created_ms))
        _fold(batch, part)
        if start + SLICE < len(ops):
            time.sleep(0)  # hand the GIL back to the training loop between slices (only: it is a syscall)
    _store_stats(conn, batch, series, stats)


def _rows(ops: Sequence[Op], ids: dict[int, int], created: int) -> list[tuple[Any, ...]]:
    """Point rows of queued points of any kind (floats encoded here, in one comprehension)."""
    return [
        (ids[t], 0, s, e, v, None, None, int(a * 1000) - created, step)
        if stored_plain(v)
        else (ids[t], 0, s, e, *(encode_float(v) if type(v) is float else v), int(a * 1000) - created, step)
        for _, t, s, e, v, a, step in ops
    ]


def _load_tokens(conn: Connection, series: dict[int, int]) -> None:
    """Put the token -> series id map in a TEMP table of the connection, for many series."""
    conn.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS rh_tokens (token INTEGER PRIMARY KEY, series_id INTEGER NOT NULL)"
    )
    conn.exec_driver_sql("INSERT OR REPLACE INTO temp.rh_tokens VALUES (?, ?)", list(series.items()))


def _insert_plain_sqlite(conn: Connection, ops: Sequence[Op], series: dict[int, int], created_ms: int) -> None:
    """Insert plain-float points on SQLite by binding the queued tuples directly."""
    if not ops:
        return
    tokens = sorted(set(map(_TOKEN, ops)))
    if len(tokens) <= _CASE_TOKENS:  # the same series give the same text: SQLite's statement cache
        cases = " ".join(f"WHEN {int(t)} THEN {int(series[t])}" for t in tokens)
        select, rest = f"VALUES (CASE ?2 {cases} END,", ")"
    else:
        _load_tokens(conn, series)
        select, rest = "SELECT series_id,", " FROM temp.rh_tokens WHERE token = ?2 AND ?1 IS NOT NULL"
    sql = _PLAIN_SQLITE.format(select=select, rest=rest, created=int(created_ms))
    inserted = conn.exec_driver_sql(sql, ops).rowcount
    if inserted != len(ops):  # a token without a series would be a bug: never lose points quietly
        raise RuntimeError(f"inserted {inserted} of {len(ops)} points: unknown series token")


def _write_rows(conn: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert point rows: ``executemany`` on SQLite, ``COPY`` on PostgreSQL (several times faster
    than psycopg's ``executemany``), in the caller's transaction either way."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.exec_driver_sql(sql, rows)
        return
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY points ({POINT_COLUMNS}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _fold(batch: dict[int, list[Any]], ops: Sequence[Op]) -> None:
    """Add ``ops`` to the batch's per-token count, min and max of the numeric values.

    The numeric values are exactly those the ``value`` column gets, so the summary is what
    ``COUNT(*), MIN(value), MAX(value)`` would read back: a plain float unless NaN (stored as
    NULL), the first of an encoded triple unless ``None``.
    """
    for token, group in groupby(sorted(ops, key=_TOKEN), key=_TOKEN):
        same = list(group)
        codes = list(map(_CODE, same))
        if any(codes):
            values = list(map(_VALUE, same))
            numbers = [*filterfalse(isnan, compress(values, map(not_, codes))),
                       *filter(_NOT_NONE, map(_CODE, compress(values, codes)))]
        else:
            numbers = list(filterfalse(isnan, map(_VALUE, same)))
        entry = batch.setdefault(token, [0, None, None])
        _merge(entry, len(same), min(numbers, default=None), max(numbers, default=None))


def _merge(entry: list[Any], n: int, low: float | None, high: float | None) -> None:
    entry[0] += n
    entry[1] = low if entry[1] is None or (low is not None and low < entry[1]) else entry[1]
    entry[2] = high if entry[2] is None or (high is not None and high > entry[2]) else entry[2]


def _store_stats(conn: Connection, batch: dict[int, list[Any]], series: dict[int, int],
                 stats: dict[int, list[Any]]) -> None:
    """Fold the batch's summaries into ``stats`` and write the touched series, in one call."""
    rows = []
    for token, (n, low, high) in batch.items():
        series_id = series[token]
        entry = stats.setdefault(series_id, [0, None, None])
        _merge(entry, n, low, high)
        rows.append((*entry, series_id))
    mark = placeholder(conn)
    conn.exec_driver_sql(
        f"UPDATE series SET n_points = {mark}, min_value = {mark}, max_value = {mark} WHERE id = {mark}", rows
    )
