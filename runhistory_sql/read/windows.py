"""A metric's history as a chart needs it: downsampled in SQL, a range at full resolution, and
only the points after a cursor for live updates.

Downsampling keeps, per bucket of consecutive points, the first, the lowest, the highest and the
last point, and the first point that is not a number (NaN, or a value that is not numeric) so that
a spike or a gap is never hidden. The buckets are ranges of ``seq``: the effective seqs of a
series are ``0 .. n - 1`` (and a rewind's superseded ones a range too), so a bucket's first and
last point are primary-key lookups. For a long series the lowest and highest of each aligned
block of 1,024 points come from ``point_blocks`` (the writer keeps them: a cold window reads
about a thousand summary rows, not a million points); shorter buckets, and a range's partial
blocks at its edges, are one scan of their range. Only the chosen points (at most 5 per bucket)
leave the database.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

from sqlalchemy import Connection, text

from ..db.schema import BLOCK, points
from ..db.values import decode
from ..errors import InvalidArgumentError

#: The x axes a window can have.
X_AXES = ("seq", "epoch", "step", "time")
#: How many buckets a window has unless told: at most 4 points each (first, lowest, highest,
#: last; and a gap's first), so about 2,400 points, under 100 KB of JSON for any history.
DEFAULT_BUCKETS = 600
#: From this many pieces on, their scans run on two connections at once (see :func:`_scans`).
PARALLEL_PIECES = 64
#: A range of at most ``buckets * FULL_RESOLUTION`` points is returned whole.
FULL_RESOLUTION = 4
# cursor = rewinds * _REWIND + points: a rewind since the cursor is seen (then the answer is whole)
_REWIND = 2 ** 40
# points.step arrives with migration 0007 (issue 12); before it, no point has a step
_HAS_STEP = "step" in points.c


@dataclass(frozen=True)
class SeriesWindow:
    """The points of one series in a window: ``rev`` 0 is a stage's effective history, ``rev > 0``
    the points the rewind numbered ``rev`` superseded. ``y`` holds the decoded values (a float,
    or what was recorded when it is not a number)."""

    stage: int
    rev: int
    x: list[Any] = field(default_factory=list)
    y: list[Any] = field(default_factory=list)
    seq: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class HistoryWindow:
    """What :meth:`RunStore.window` returns: one :class:`SeriesWindow` per stage (and per
    superseded rev), whether any was downsampled, and the cursor for the next live update.
    ``reset`` is true when an ``after`` cursor was given but the history changed under it (a
    rewind, a deleted metric): the window is then the whole history, not an increment."""

    metric: str
    x: str
    downsampled: bool
    cursor: int
    series: list[SeriesWindow]
    reset: bool = False


@dataclass(frozen=True)
class _Series:
    series_id: int
    stage: int
    rev: int
    lo: int  # the seqs are lo .. hi - 1
    hi: int
    offset: int  # what x=seq adds: the points of the metric in the earlier stages


def read_window(
    conn: Connection, run_id: int, metric: str, *, x: str = "seq", start: float | None = None, end: float | None = None,
    buckets: int = DEFAULT_BUCKETS, after: int | None = None, superseded: bool = False,
) -> HistoryWindow:
    """Read a window of a metric's history (:meth:`RunStore.window`).

    :param x: ``seq`` (the run-wide position), ``epoch``, ``step`` (points without one left
        out) or ``time`` (ms since the Unix epoch)
    :param start: the lowest x (inclusive)
    :param end: the highest x (inclusive)
    :param buckets: at most this many buckets (0: every point); a range of at most
        ``buckets * FULL_RESOLUTION`` points comes whole
    :param after: a previous window's ``cursor``: only the points recorded since
    :param superseded: also the points rewinds superseded, a series per (stage, rev)
    """
    if x not in X_AXES:
        raise InvalidArgumentError(f"x must be one of {', '.join(X_AXES)}, not {x!r}.")
    if buckets < 0:
        raise InvalidArgumentError(f"buckets must be 0 (no downsampling) or more, not {buckets}.")
    created, rewinds = conn.execute(text("SELECT created_at, rewinds FROM runs WHERE id = :r"), {"r": run_id}).one()
    effective = _effective(conn, run_id, metric)
    total = sum(s.hi for s in effective)
    cursor = rewinds * _REWIND + total
    reset = False
    if after is not None:
        seen_rewinds, seen = divmod(int(after), _REWIND)
        reset = seen_rewinds != rewinds or seen > total
        if not reset:  # only what came after the cursor, whole; superseded points do not grow
            todo = [_Series(s.series_id, s.stage, 0, max(s.lo, seen - s.offset), s.hi, s.offset) for s in effective]
            chosen = [_raw(conn, s, x, int(created)) for s in todo if s.lo < s.hi]
            return HistoryWindow(metric, x, False, cursor, chosen)
    todo = effective + (_superseded(conn, effective) if superseded else [])
    todo = [_bounded(conn, s, x, start, end, int(created)) for s in todo]
    count = sum(s.hi - s.lo for s in todo)
    whole = buckets == 0 or count <= buckets * FULL_RESOLUTION
    found = []
    for s in todo:
        if whole or s.hi - s.lo <= FULL_RESOLUTION:
            found.append(_raw(conn, s, x, int(created)))
        else:
            share = max(1, round(buckets * (s.hi - s.lo) / count))
            found.append(_downsampled(conn, s, x, int(created), share))
    return HistoryWindow(metric, x, not whole, cursor, found, reset)


def _effective(conn: Connection, run_id: int, metric: str) -> list[_Series]:
    """The metric's live series, one per stage (the latest), in stage order, with their offsets."""
    rows = conn.execute(text(
        "SELECT s.id, st.idx, s.n_points FROM series s JOIN metrics m ON m.id = s.metric_id "
        "JOIN stages st ON st.id = s.stage_id "
        "WHERE s.run_id = :run AND m.name = :metric AND s.deleted = :no AND s.n_points > 0 ORDER BY st.idx, s.id"
    ), {"run": run_id, "metric": metric, "no": False}).all()
    latest = {stage: (series_id, n) for series_id, stage, n in rows}
    found, offset = [], 0
    for stage, (series_id, n) in sorted(latest.items()):
        found.append(_Series(series_id, stage, 0, 0, n, offset))
        offset += n
    return found


def _superseded(conn: Connection, effective: list[_Series]) -> list[_Series]:
    found = []
    for s in effective:
        rows = conn.execute(text(
            "SELECT rev, MIN(seq), MAX(seq) FROM points WHERE series_id = :s AND rev > 0 GROUP BY rev ORDER BY rev"
        ), {"s": s.series_id})
        found += [_Series(s.series_id, s.stage, rev, lo, hi + 1, s.offset) for rev, lo, hi in rows]
    return found


def _x_sql(x: str, created: int) -> str:
    if x == "epoch":
        return "epoch"
    if x == "time":
        return f"(recorded_at + {created})"
    return "step" if _HAS_STEP else "NULL"


def _bounded(conn: Connection, s: _Series, x: str, start: float | None, end: float | None, created: int) -> _Series:
    """``s`` cut to the points whose x is within ``start .. end`` (x grows with seq)."""
    if start is None and end is None:
        return s
    if x == "seq":
        lo = s.lo if start is None else max(s.lo, math.ceil(start) - s.offset)
        hi = s.hi if end is None else min(s.hi, math.floor(end) - s.offset + 1)
        return _Series(s.series_id, s.stage, s.rev, lo, max(lo, hi), s.offset)
    column = _x_sql(x, created)
    bounds = [f"{column} >= :start"] * (start is not None) + [f"{column} <= :end"] * (end is not None)
    lo, hi = conn.execute(text(
        f"SELECT MIN(seq), MAX(seq) FROM points WHERE series_id = :s AND rev = :rev AND seq >= :lo AND seq < :hi "
        f"AND {' AND '.join(bounds)}"
    ), {"s": s.series_id, "rev": s.rev, "lo": s.lo, "hi": s.hi, "start": start, "end": end}).one()
    if lo is None:
        return _Series(s.series_id, s.stage, s.rev, s.lo, s.lo, s.offset)
    return _Series(s.series_id, s.stage, s.rev, lo, hi + 1, s.offset)


_COLUMNS = "seq, epoch, value, special, value_json, recorded_at" + (", step" if _HAS_STEP else ", NULL")


def _raw(conn: Connection, s: _Series, x: str, created: int) -> SeriesWindow:
    rows = conn.execute(text(
        f"SELECT {_COLUMNS} FROM points WHERE series_id = :s AND rev = :rev AND seq >= :lo AND seq < :hi ORDER BY seq"
    ), {"s": s.series_id, "rev": s.rev, "lo": s.lo, "hi": s.hi})
    return _window(s, x, created, rows)


@dataclass(frozen=True)
class _Piece:
    """A range ``lo .. hi - 1`` of seqs and the seqs of its lowest and highest number and of
    its first value that is not a number (``None``: there is none)."""

    lo: int
    hi: int
    low: int | None
    high: int | None
    gap: int | None


def _pieces(conn: Connection, s: _Series, lo: int, width: int, count: int) -> list[_Piece]:
    """The pieces ``lo + i * width .. lo + (i + 1) * width - 1`` (cut at ``s.hi``), ``i < count``:
    one SQL statement, one scan of the range for the lowest and one for the highest."""
    rng = (f"p.series_id = {s.series_id} AND p.rev = {s.rev} AND p.seq >= {lo} + b.i * {width} "
           f"AND p.seq < {lo} + (b.i + 1) * {width}")
    picks: tuple[str, ...]
    if conn.dialect.name == "sqlite":  # a bare column beside min() / max() is that row's (one scan each)
        picks = (
            f"(SELECT k FROM (SELECT seq * 2 + (COUNT(*) > COUNT(value)) AS k, MIN(value) FROM points p WHERE {rng}))",
            f"(SELECT seq * 2 FROM (SELECT seq, MAX(value) FROM points p WHERE {rng}))",
        )
    else:
        picks = (
            f"(SELECT seq * 2 FROM points p WHERE {rng} AND value IS NOT NULL ORDER BY value, seq LIMIT 1)",
            f"(SELECT seq * 2 FROM points p WHERE {rng} AND value IS NOT NULL ORDER BY value DESC, seq LIMIT 1)",
            f"(SELECT MIN(seq) * 2 + 1 FROM points p WHERE {rng} AND value IS NULL)",
        )
    pieces = f"WITH RECURSIVE b(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM b WHERE i < {count - 1}) SELECT b.i, "
    scans = _scans(conn, [f"{pieces}{pick} FROM b ORDER BY b.i" for pick in picks], parallel=count >= PARALLEL_PIECES)
    found = []
    for (i, low), (_, high), *gap in zip(*scans):
        first, last = lo + i * width, min(s.hi, lo + (i + 1) * width)
        if gap:  # PostgreSQL: the first gap's seq * 2 + 1, or NULL
            gap_seq = None if gap[0][1] is None else gap[0][1] // 2
        elif low is not None and low % 2:  # SQLite: the piece has a gap (rare): find its first
            gap_seq = conn.execute(text(
                "SELECT MIN(seq) FROM points WHERE series_id = :s AND rev = :rev AND seq >= :lo AND seq < :hi "
                "AND value IS NULL"
            ), {"s": s.series_id, "rev": s.rev, "lo": first, "hi": last}).scalar()
        else:
            gap_seq = None
        # (on SQLite a piece of gaps only names gaps as its lowest and highest: the values tell)
        found.append(_Piece(first, last, None if low is None else low // 2, None if high is None else high // 2, gap_seq))
    return found


def _stored(conn: Connection, s: _Series, first: int, last: int) -> list[_Piece]:
    """The pieces of the whole blocks ``first .. last - 1`` of ``s``, as ``point_blocks`` keeps
    them (a block it lacks, which the writer never leaves, is scanned rather than dropped)."""
    rows = conn.execute(text(
        "SELECT block, min_seq, max_seq, gap_seq FROM point_blocks WHERE series_id = :s AND rev = :rev "
        "AND block >= :first AND block < :last ORDER BY block"
    ), {"s": s.series_id, "rev": s.rev, "first": first, "last": last}).all()
    found = {block: _Piece(block * BLOCK, (block + 1) * BLOCK, low, high, gap) for block, low, high, gap in rows}
    for block in set(range(first, last)) - found.keys():
        found[block] = _pieces(conn, s, block * BLOCK, BLOCK, 1)[0]
    return [found[block] for block in range(first, last)]


def _scans(conn: Connection, statements: list[str], *, parallel: bool) -> list[Sequence[Any]]:
    """The rows of each statement. With ``parallel``, the first runs on ``conn`` while the others
    run on a second connection of the same engine: the drivers release the GIL while the database
    works, so two cores scan at once (a cold long history costs one scan's time, not two)."""
    if not parallel:
        return [conn.execute(text(sql)).all() for sql in statements]

    def others() -> list[Sequence[Any]]:
        with conn.engine.connect() as other:
            return [other.execute(text(sql)).all() for sql in statements[1:]]

    with ThreadPoolExecutor(max_workers=1) as pool:
        rest = pool.submit(others)
        first = conn.execute(text(statements[0])).all()
        return [first, *rest.result()]


def _downsampled(conn: Connection, s: _Series, x: str, created: int, share: int) -> SeriesWindow:
    blocks = (s.hi - s.lo) // BLOCK
    if 2 * blocks >= share:  # buckets of whole stored blocks (so maybe fewer), the edges scanned
        first, last = -(-s.lo // BLOCK), s.hi // BLOCK
        left = _pieces(conn, s, s.lo, first * BLOCK - s.lo, 1) if s.lo < first * BLOCK else []
        right = _pieces(conn, s, last * BLOCK, s.hi - last * BLOCK, 1) if last * BLOCK < s.hi else []
        pieces = left + _stored(conn, s, first, last) + right
    else:
        width = -(-(s.hi - s.lo) // share)
        pieces = _pieces(conn, s, s.lo, width, -(-(s.hi - s.lo) // width))
    buckets: dict[int, list[_Piece]] = {}
    for i, piece in enumerate(pieces):
        buckets.setdefault(i * share // len(pieces), []).append(piece)
    wanted = {p.lo for p in pieces} | {p.hi - 1 for p in pieces}
    wanted |= {q for p in pieces for q in (p.low, p.high, p.gap) if q is not None}
    listed = ", ".join(str(q) for q in sorted(wanted))
    rows = {row[0]: row for row in conn.execute(text(
        f"SELECT {_COLUMNS} FROM points WHERE series_id = :s AND rev = :rev AND seq IN ({listed})"
    ), {"s": s.series_id, "rev": s.rev})}
    chosen: set[int] = set()
    for group in buckets.values():
        # a piece of gaps only (NaN, values that are not numbers) has no lowest or highest number
        lows = [p.low for p in group if p.low is not None and rows[p.low][2] is not None]
        highs = [p.high for p in group if p.high is not None and rows[p.high][2] is not None]
        gaps = [p.gap for p in group if p.gap is not None]
        chosen |= {group[0].lo, group[-1].hi - 1}
        if lows:
            chosen.add(min(lows, key=lambda q: (rows[q][2], q)))
            chosen.add(max(highs, key=lambda q: (rows[q][2], -q)))
        if gaps:
            chosen.add(min(gaps))
    return _window(s, x, created, [rows[q] for q in sorted(chosen)])


def _window(s: _Series, x: str, created: int, rows: Any) -> SeriesWindow:
    window = SeriesWindow(s.stage, s.rev)
    for seq, epoch, value, special, value_json, recorded_at, step in rows:
        if x == "step" and step is None:
            continue
        at = {"seq": s.offset + seq, "epoch": epoch, "time": recorded_at + created, "step": step}[x]
        window.x.append(at)
        window.y.append(decode(value, special, value_json))
        window.seq.append(seq)
    return window
