"""Applying queued operations of one run to the database, inside the caller's transaction.

Used by the background writer and by ``import-spill``. Each operation is a tuple whose first
element is its code; everything the batch learns (new series, stages, metric ids) goes into a
copy of the :class:`Cursor`, which the caller keeps only once the transaction has committed.
"""
from __future__ import annotations

import copy
import json
from itertools import groupby
from operator import itemgetter
import time
from math import copysign
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .clock import now_ms
from .engine import placeholder
from .errors import RunInUseError
from .values import encode_float
from .runs import inserted_id
from .schema import configs, events, metrics, points, runs, series, stages

# Operation codes: the first element of every queued tuple. POINT carries a non-zero float (NaN
# and infinities included); POINT_ENC anything else, already encoded as (value, special, json).
POINT, SERIES, DELETE, STAGE, EPOCH, REWIND, EVENT, CONFIG, FLUSH, END, POINT_ENC = range(11)

Op = tuple[Any, ...]
#: points converted per slice; between slices the writer yields the GIL to the training loop
_SLICE = 2000
_POINT_COLUMNS = "series_id, rev, seq, epoch, value, special, value_json, recorded_at"


@dataclass
class Cursor:
    """Where a run's writes go: its id, current stage, rewind count, and known ids."""

    run_id: int
    stage: int
    stage_id: int
    rewinds: int
    #: the history's series tokens -> series ids
    series: dict[int, int] = field(default_factory=dict)
    metric_ids: dict[str, int] = field(default_factory=dict)
    #: series id -> [effective points, min, max] of its numeric values, kept in ``series``
    stats: dict[int, list[Any]] = field(default_factory=dict)
    #: the run's ``created_at``: points store their time as milliseconds since it
    created_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "stage": self.stage, "stage_id": self.stage_id,
                "rewinds": self.rewinds, "series": {str(k): v for k, v in self.series.items()},
                "stats": {str(k): v for k, v in self.stats.items()}, "created_ms": self.created_ms}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Cursor":
        series_ids = {int(k): int(v) for k, v in data["series"].items()}
        stats = {int(k): list(v) for k, v in data.get("stats", {}).items()}
        return cls(data["run_id"], data["stage"], data["stage_id"], data["rewinds"], series_ids, stats=stats,
                   created_ms=data["created_ms"])


def _point_sql(conn: Connection) -> str:
    return f"INSERT INTO points ({_POINT_COLUMNS}) VALUES ({', '.join([placeholder(conn)] * 8)})"


def apply_batch(
    conn: Connection, cursor: Cursor, batch: list[Op], batch_id: int, *, holder: tuple[str, int] | None = None,
) -> Cursor:
    """Apply ``batch`` in order and stamp the run with ``batch_id``; return the cursor after it.

    The stamp (``runs.last_batch``) lets a writer whose COMMIT went unanswered find out whether
    the batch landed, so that a retry never doubles it.

    :param holder: ``(host, pid)`` of the process that claimed the run, which must still hold it
    :raises RunInUseError: another process holds the run now (this one's heartbeat went stale
        and the run was continued elsewhere): the caller rolls the batch back
    """
    after = copy.deepcopy(cursor)
    sql = _point_sql(conn)
    sqlite = conn.dialect.name == "sqlite"
    # consecutive operations of one kind together, grouped in C: no Python work per point
    for code, group in groupby(batch, key=itemgetter(0)):
        if code == POINT and sqlite:
            _insert_plain_sqlite(conn, list(group), after)
        elif code in (POINT, POINT_ENC):
            _insert_points(conn, sql, list(group), after)
        elif code != FLUSH:
            for op in group:
                _apply_one(conn, after, op)
    stamp = update(runs).where(runs.c.id == after.run_id)
    if holder is not None:
        stamp = stamp.where(runs.c.host == holder[0], runs.c.pid == holder[1])
    if conn.execute(stamp.values(heartbeat_at=now_ms(), last_batch=batch_id)).rowcount != 1 and holder is not None:
        raise _taken_over(conn, after.run_id, holder)
    return after


def _taken_over(conn: Connection, run_id: int, holder: tuple[str, int]) -> RunInUseError:
    name, host, pid = conn.execute(select(runs.c.name, runs.c.host, runs.c.pid).where(runs.c.id == run_id)).one()
    return RunInUseError(
        f"Run {name!r} is now held by process {pid} on {host}, not by this one ({holder[1]} on "
        f"{holder[0]}): its heartbeat went stale and another process continued the run. Nothing "
        "more of this process is written to it; stop this process."
    )


def _insert_points(conn: Connection, sql: str, ops: list[Op], cur: Cursor) -> None:
    """Insert queued points ``(POINT, token, seq, epoch, float or encoded, time in s)``.

    The writer thread shares the GIL with the training loop, so the common case (a plain float)
    is one list comprehension; per-series summaries are then read back by the database itself.
    """
    ids, created = cur.series, cur.created_ms
    touched: set[int] = set()
    for start in range(0, len(ops), _SLICE):
        rows = [
            (ids[t], 0, s, e, v, None, None, int(a * 1000) - created)
            if type(v) is float and v == v and (v or copysign(1.0, v) > 0)
            else (ids[t], 0, s, e, *(encode_float(v) if type(v) is float else v), int(a * 1000) - created)
            for _, t, s, e, v, a in ops[start:start + _SLICE]
        ]
        _write_rows(conn, sql, rows)
        touched.update(row[0] for row in rows)
        time.sleep(0)  # hand the GIL back to the training loop between slices
    _update_stats(conn, cur, touched)


_PLAIN_SQLITE = (
    f"INSERT INTO points ({_POINT_COLUMNS}) "
    # the queued tuple is bound as it is: ?2 token, ?3 seq, ?4 epoch, ?5 value, ?6 time in s;
    # SQLite binds NaN as NULL, which is what `special` 1 means; times are ms since the run began
    "SELECT series_id, 0, ?3, ?4, ?5, CASE WHEN ?5 IS NULL THEN 1 END, NULL, CAST(?6 * 1000 AS INTEGER) - {created} "
    "FROM temp.rh_tokens WHERE token = ?2 AND ?1 IS NOT NULL"
)


def _insert_plain_sqlite(conn: Connection, ops: list[Op], cur: Cursor) -> None:
    """Insert plain-float points on SQLite by binding the queued tuples directly.

    The token -> series id map lives in a TEMP table of the connection, so the writer does no
    Python work per point at all (it shares the GIL with the training loop).
    """
    conn.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS rh_tokens (token INTEGER PRIMARY KEY, series_id INTEGER NOT NULL)"
    )
    conn.exec_driver_sql("INSERT OR REPLACE INTO temp.rh_tokens VALUES (?, ?)", list(cur.series.items()))
    inserted = conn.exec_driver_sql(_PLAIN_SQLITE.format(created=int(cur.created_ms)), ops).rowcount
    if inserted != len(ops):  # a token without a series would be a bug: never lose points quietly
        raise RuntimeError(f"inserted {inserted} of {len(ops)} points: unknown series token")
    tokens = set(map(itemgetter(1), ops))
    _update_stats(conn, cur, {cur.series[t] for t in tokens})


def _write_rows(conn: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert point rows: ``executemany`` on SQLite, ``COPY`` on PostgreSQL (several times faster
    than psycopg's ``executemany``), in the caller's transaction either way."""
    if conn.dialect.name != "postgresql":
        conn.exec_driver_sql(sql, rows)
        return
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY points ({_POINT_COLUMNS}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _update_stats(conn: Connection, cur: Cursor, touched: set[int]) -> None:
    """Fold the points just inserted into each touched series' summary (count, min, max)."""
    mark = placeholder(conn)
    for series_id in touched:
        entry = cur.stats.setdefault(series_id, [0, None, None])
        n, low, high = conn.exec_driver_sql(
            f"SELECT COUNT(*), MIN(value), MAX(value) FROM points WHERE series_id = {mark} AND rev = 0 AND seq >= {mark}",
            (series_id, entry[0]),
        ).one()
        entry[0] += n
        entry[1] = low if entry[1] is None or (low is not None and low < entry[1]) else entry[1]
        entry[2] = high if entry[2] is None or (high is not None and high > entry[2]) else entry[2]
        conn.execute(update(series).where(series.c.id == series_id).values(n_points=entry[0], min_value=entry[1], max_value=entry[2]))


def batch_landed(conn: Connection, run_id: int, batch_id: int) -> bool:
    """Whether the batch stamped ``batch_id`` was committed (see :func:`apply_batch`)."""
    return conn.execute(select(runs.c.last_batch).where(runs.c.id == run_id)).scalar() == batch_id


def _apply_one(conn: Connection, cur: Cursor, op: Op) -> None:
    code, run = op[0], runs.c.id == cur.run_id
    if code == SERIES:
        _, token, name = op
        row = dict(run_id=cur.run_id, stage_id=cur.stage_id, metric_id=_metric_id(conn, cur, name))
        cur.series[token] = inserted_id(conn.execute(insert(series).values(row)))
    elif code == DELETE:
        conn.execute(update(series).where(series.c.id == cur.series[op[1]]).values(deleted=True))
    elif code == STAGE:
        values: dict[str, Any] = {"current_epoch": 1}
        if op[1]:  # a new stage (else the current one, still empty, is reused)
            cur.stage += 1
            result = conn.execute(insert(stages).values(run_id=cur.run_id, idx=cur.stage, started_at=op[2]))
            cur.stage_id = inserted_id(result)
            values["current_stage"] = cur.stage
        conn.execute(update(runs).where(run).values(values))
    elif code == EPOCH:
        conn.execute(update(runs).where(run).values(current_epoch=op[1]))
    elif code == REWIND:
        _rewind(conn, cur, op[1], op[2])
    elif code == EVENT:
        _, kind, epoch, at, payload = op
        _event(conn, cur, kind, epoch, at, payload)
    elif code == CONFIG:
        conn.execute(insert(configs).values(run_id=cur.run_id, stage_id=cur.stage_id, **op[1]))
    elif code == END:
        conn.execute(update(runs).where(run).values(status=op[1], ended_at=op[2]))


def _event(conn: Connection, cur: Cursor, kind: str, epoch: int, at: int, payload: str) -> None:
    conn.execute(insert(events).values(
        run_id=cur.run_id, stage_id=cur.stage_id, epoch=epoch, kind=kind, recorded_at=at, payload=payload,
    ))


def _rewind(conn: Connection, cur: Cursor, to_epoch: int, at: int) -> None:
    cur.rewinds += 1
    in_stage = select(series.c.id).where(series.c.stage_id == cur.stage_id)
    superseded = conn.execute(
        update(points)
        .where(points.c.rev == 0, points.c.epoch >= to_epoch, points.c.series_id.in_(in_stage))
        .values(rev=cur.rewinds)
    ).rowcount
    conn.execute(update(runs).where(runs.c.id == cur.run_id).values(rewinds=cur.rewinds, current_epoch=to_epoch))
    _recount(conn, cur)
    payload = {"to_epoch": to_epoch, "superseded_points": superseded, "rev": cur.rewinds}
    _event(conn, cur, "rewind", to_epoch, at, json.dumps(payload))


def _recount(conn: Connection, cur: Cursor) -> None:
    """Recompute the summaries of the current stage's series from their effective points."""
    query = (
        select(series.c.id, func.count(points.c.seq), func.min(points.c.value), func.max(points.c.value))
        .select_from(series.outerjoin(points, and_(points.c.series_id == series.c.id, points.c.rev == 0)))
        .where(series.c.stage_id == cur.stage_id)
        .group_by(series.c.id)
    )
    for series_id, n, low, high in conn.execute(query).all():
        cur.stats[series_id] = [n, low, high]
        conn.execute(update(series).where(series.c.id == series_id).values(n_points=n, min_value=low, max_value=high))


def _metric_id(conn: Connection, cur: Cursor, name: str) -> int:
    found = cur.metric_ids.get(name)
    if found is None:
        upsert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(upsert(metrics).values(name=name).on_conflict_do_nothing())
        found = conn.execute(select(metrics.c.id).where(metrics.c.name == name)).scalar_one()
        cur.metric_ids[name] = found
    return found
