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
from bisect import bisect_left
from itertools import compress, groupby
from math import isnan
from operator import is_not, itemgetter, not_
from typing import Any, Sequence

from sqlalchemy import Connection

from ..db.engine import placeholder
from ..db.schema import BLOCK
from ..db.values import encode_float, sqlite_columns, stored_plain

Op = tuple[Any, ...]
#: points converted per slice; between slices the writer yields the GIL to the training loop
SLICE = 2000
POINT_COLUMNS = "series_id, rev, seq, epoch, value, special, value_json, recorded_at, step"

_CODE, _TOKEN, _SEQ, _VALUE = itemgetter(0), itemgetter(1), itemgetter(2), itemgetter(4)
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
    blocks: dict[tuple[int, int], list[Any]] = {}  # (token, block) -> its summary of this batch
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
        _fold(batch, blocks, part)
        if start + SLICE < len(ops):
            time.sleep(0)  # hand the GIL back to the training loop between slices (only: it is a syscall)
    _store_stats(conn, batch, series, stats)
    _store_blocks(conn, blocks, series)


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


def _fold(batch: dict[int, list[Any]], blocks: dict[tuple[int, int], list[Any]], ops: Sequence[Op]) -> None:
    """Add ``ops`` to the batch's per-token count, min and max of the numeric values, and to its
    per-(token, block) summaries (:func:`_fold_blocks`).

    The numeric values are exactly those the ``value`` column gets, so the summary is what
    ``COUNT(*), MIN(value), MAX(value)`` would read back: a plain float unless NaN (stored as
    NULL), the first of an encoded triple unless ``None``.
    """
    for token, group in groupby(sorted(ops, key=_TOKEN), key=_TOKEN):
        same = list(group)
        codes = list(map(_CODE, same))
        values = list(map(_VALUE, same))
        if any(codes):
            stored: list[Any] = [None if c == 0 and isnan(v) else (v if c == 0 else v[0]) for c, v in zip(codes, values)]
            numbers = list(filter(_NOT_NONE, stored))
        elif any(map(isnan, values)):
            stored = [None if isnan(v) else v for v in values]
            numbers = list(filter(_NOT_NONE, stored))
        else:
            stored = numbers = values
        entry = batch.setdefault(token, [0, None, None])
        _merge(entry, len(same), min(numbers, default=None), max(numbers, default=None))
        _fold_blocks(blocks, token, list(map(_SEQ, same)), stored, len(numbers) == len(stored))


def _fold_blocks(blocks: dict[tuple[int, int], list[Any]], token: int, seqs: list[int], stored: list[Any],
                 numeric: bool) -> None:
    """Fold one series' points (``seqs`` growing, ``stored`` their ``value`` column, ``None`` for
    NULL; ``numeric``: there is no ``None``) into ``blocks``: (token, block) -> [n, min, its
    seq, max, its seq, first NULL's seq], the lowest seq on ties, as ``point_blocks`` holds them."""
    first, last = seqs[0] // BLOCK, seqs[-1] // BLOCK
    bounds = [0, *(bisect_left(seqs, b * BLOCK) for b in range(first + 1, last + 1)), len(seqs)]
    for block, a, b in zip(range(first, last + 1), bounds, bounds[1:]):
        if numeric:  # all numbers (the usual case): min, max and index run in C
            part = stored[a:b]
            low, high = min(part), max(part)
            row = [b - a, low, seqs[a + part.index(low)], high, seqs[a + part.index(high)], None]
        else:
            present = [i for i in range(a, b) if stored[i] is not None]
            gap = next((seqs[i] for i in range(a, b) if stored[i] is None), None)
            if present:
                i, j = min(present, key=stored.__getitem__), max(present, key=stored.__getitem__)
                row = [b - a, stored[i], seqs[i], stored[j], seqs[j], gap]
            else:
                row = [b - a, None, None, None, None, gap]
        entry = blocks.get((token, block))
        if entry is None:
            blocks[(token, block)] = row
        else:
            _merge_block(entry, row)


def _merge_block(entry: list[Any], later: list[Any]) -> None:
    """Merge the summary of later points of a block into ``entry`` (the earlier points win ties)."""
    entry[0] += later[0]
    if later[1] is not None and (entry[1] is None or later[1] < entry[1]):
        entry[1:3] = later[1:3]
    if later[3] is not None and (entry[3] is None or later[3] > entry[3]):
        entry[3:5] = later[3:5]
    if entry[5] is None:
        entry[5] = later[5]


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


def _upsert_blocks_sql(mark: str) -> str:
    # the stored points of a block come before the batch's: they win ties
    def pick(column: str, value: str, op: str) -> str:
        return (f"{column} = CASE WHEN point_blocks.{value} IS NULL OR excluded.{value} {op} point_blocks.{value} "
                f"THEN excluded.{column} ELSE point_blocks.{column} END")
    return (
        "INSERT INTO point_blocks (series_id, rev, block, n, min_value, min_seq, max_value, max_seq, gap_seq) "
        f"VALUES ({', '.join([mark] * 9)}) ON CONFLICT (series_id, rev, block) DO UPDATE SET "
        "n = point_blocks.n + excluded.n, "
        f"{pick('min_seq', 'min_value', '<')}, {pick('min_value', 'min_value', '<')}, "
        f"{pick('max_seq', 'max_value', '>')}, {pick('max_value', 'max_value', '>')}, "
        "gap_seq = COALESCE(point_blocks.gap_seq, excluded.gap_seq)"
    )


def _store_blocks(conn: Connection, blocks: dict[tuple[int, int], list[Any]], series: dict[int, int]) -> None:
    """Fold the batch's block summaries into ``point_blocks``: one upsert per touched block."""
    rows = [(series[token], 0, block, *row) for (token, block), row in blocks.items()]
    if rows:
        conn.exec_driver_sql(_upsert_blocks_sql(placeholder(conn)), rows)
