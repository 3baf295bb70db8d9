"""The block summaries of ``point_blocks`` computed from the points themselves, in SQL.

The writer folds each batch into the blocks it touches (:mod:`runhistory_sql.write.points`);
what cannot be folded (a rewind moves points to another rev) is recomputed here, and the tests
compare the stored blocks with this recomputation.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from .schema import BLOCK

_BLOCK_COLUMNS = "series_id, rev, block, n, min_value, min_seq, max_value, max_seq, gap_seq"


def _seq_of(value: str) -> str:
    # the smallest seq of the block whose value is the block's lowest (highest): a range of at
    # most BLOCK points of the primary key
    return (f"(SELECT MIN(q.seq) FROM points q WHERE q.series_id = g.series_id AND q.rev = g.rev "
            f"AND q.seq >= g.block * {BLOCK} AND q.seq < (g.block + 1) * {BLOCK} AND q.value = g.{value})")


def computed_sql(where: str) -> str:
    """A SELECT of the ``point_blocks`` rows of the points ``p`` that ``where`` keeps."""
    return (
        f"SELECT g.series_id, g.rev, g.block, g.n, g.min_value, {_seq_of('min_value')}, g.max_value, "
        f"{_seq_of('max_value')}, g.gap_seq FROM (SELECT p.series_id AS series_id, p.rev AS rev, "
        f"p.seq / {BLOCK} AS block, COUNT(*) AS n, MIN(p.value) AS min_value, MAX(p.value) AS max_value, "
        f"MIN(CASE WHEN p.value IS NULL THEN p.seq END) AS gap_seq FROM points p WHERE {where} "
        f"GROUP BY p.series_id, p.rev, p.seq / {BLOCK}) g"
    )


def computed(conn: Connection, series_ids: list[int]) -> list[tuple[Any, ...]]:
    """The block rows of ``series_ids`` as the points say they are, in key order."""
    listed = ", ".join(str(int(s)) for s in series_ids) or "NULL"
    return [tuple(row) for row in conn.execute(text(
        f"{computed_sql(f'p.series_id IN ({listed})')} ORDER BY 1, 2, 3"
    ))]


def stored(conn: Connection, series_ids: list[int]) -> list[tuple[Any, ...]]:
    """The block rows of ``series_ids`` as ``point_blocks`` holds them, in key order."""
    listed = ", ".join(str(int(s)) for s in series_ids) or "NULL"
    return [tuple(row) for row in conn.execute(text(
        f"SELECT {_BLOCK_COLUMNS} FROM point_blocks WHERE series_id IN ({listed}) ORDER BY 1, 2, 3"
    ))]


def reblock(conn: Connection, series_id: int, rev: int, cut: int) -> None:
    """Recompute the blocks a rewind changed: the points of ``series_id`` from seq ``cut`` on
    moved from rev 0 to ``rev``, so rev 0's blocks from ``cut``'s on lose them and ``rev``'s
    blocks are new."""
    first = int(cut) // BLOCK
    s, r = int(series_id), int(rev)
    conn.execute(text(f"DELETE FROM point_blocks WHERE series_id = {s} AND rev = 0 AND block >= {first}"))
    where = (f"p.series_id = {s} AND ((p.rev = 0 AND p.seq >= {first * BLOCK}) OR p.rev = {r})")
    conn.execute(text(f"INSERT INTO point_blocks ({_BLOCK_COLUMNS}) {computed_sql(where)}"))
