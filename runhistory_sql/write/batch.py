"""Applying queued operations of one run to the database, inside the caller's transaction.

Used by the background writer and by ``import-spill``. Each operation is a tuple whose first
element is its code; everything the batch learns (new series, stages, metric ids) goes into a
copy of the :class:`Cursor`, which the caller keeps only once the transaction has committed.
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..db.blocks import reblock
from ..db.effective import EFFECTIVE
from ..db.clock import now_ms
from ..db.engine import placeholder
from ..errors import RunInUseError
from .points import insert_points
from .run import inserted_id
from ..db.schema import configs, events, metrics, params, points, runs, series, stages

if TYPE_CHECKING:
    from .run import RunState

# Operation codes: the first element of every queued tuple. POINT carries a non-zero float (NaN
# and infinities included); POINT_ENC anything else, already encoded as (value, special, json).
# Both are (code, token, seq, epoch, value, time in s, step or None). PARAMS carries rows of
# ``params`` (:mod:`.params`); STEP_REWIND is ``rewind_to_step``'s, REWIND the epoch rewind's.
POINT, SERIES, DELETE, STAGE, EPOCH, REWIND, EVENT, CONFIG, FLUSH, END, POINT_ENC, PARAMS, STEP_REWIND = range(13)

Op = tuple[Any, ...]
_CODE, _SECOND = itemgetter(0), itemgetter(1)
#: operation code -> its kind: both point codes are one kind, inserted together
_KIND = tuple(POINT if code == POINT_ENC else code for code in range(13))


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

    @classmethod
    def of_run(cls, state: "RunState", tokens: dict[str, int]) -> "Cursor":
        """The cursor of a run just opened: ``state`` keys its series by metric name (to the
        series id and the loaded values), the cursor by the history's token for that name.

        :param tokens: metric name -> the history's series token, for every series of ``state``
        :raises ValueError: ``state`` has no run row (a process that never writes)
        """
        if state.run_id is None:
            raise ValueError(f"Run {state.name!r} has no row in the database: there is nothing to write to.")
        series_ids = {tokens[name]: series_id for name, (series_id, _, _) in state.series.items()}
        return cls(state.run_id, state.stage, state.stage_id or 0, state.rewinds, series_ids,
                   stats=state.stats, created_ms=state.created_ms)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "stage": self.stage, "stage_id": self.stage_id,
                "rewinds": self.rewinds, "series": {str(k): v for k, v in self.series.items()},
                "stats": {str(k): v for k, v in self.stats.items()}, "created_ms": self.created_ms}

    def copy(self) -> "Cursor":
        """A copy whose maps the caller may change (cheaper than ``copy.deepcopy``)."""
        return Cursor(self.run_id, self.stage, self.stage_id, self.rewinds, dict(self.series), dict(self.metric_ids),
                      {k: list(v) for k, v in self.stats.items()}, self.created_ms)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Cursor":
        series_ids = {int(k): int(v) for k, v in data["series"].items()}
        stats = {int(k): list(v) for k, v in data.get("stats", {}).items()}
        return cls(data["run_id"], data["stage"], data["stage_id"], data["rewinds"], series_ids, stats=stats,
                   created_ms=data["created_ms"])


def apply_batch(
    conn: Connection, cursor: Cursor, batch: list[Op], batch_id: int, *, holder: tuple[str, int] | None = None,
) -> Cursor:
    """Apply ``batch`` in order and stamp the run with ``batch_id``; return the cursor after it.

    The stamp (``runs.last_batch``) lets a writer whose COMMIT went unanswered find out whether
    the batch landed, so that a retry never doubles it. The batch's points, whatever their kind,
    are inserted together (only a rewind, which supersedes what came before it, splits them),
    and each series' summary is updated once.

    :param holder: ``(host, pid)`` of the process that claimed the run, which must still hold it
    :raises RunInUseError: another process holds the run now (this one's heartbeat went stale
        and the run was continued elsewhere): the caller rolls the batch back
    """
    after = cursor.copy()
    points: list[Op] = []
    epoch = None  # the last EPOCH's, written with the stamp: one statement less per epoch
    # runs of operations of one kind (both point codes are one kind), grouped in C
    kinds = map(_KIND.__getitem__, map(_CODE, batch))
    for kind, group in groupby(zip(kinds, batch), key=_CODE):
        if kind == POINT:
            points += map(_SECOND, group)
        elif kind == EPOCH:
            _, last = deque(group, maxlen=1).pop()  # of a run of EPOCHs, the last counts
            epoch = last[1]
        elif kind != FLUSH:
            for _, op in group:
                if kind in (REWIND, STEP_REWIND):
                    insert_points(conn, points, after.series, after.stats, after.created_ms)
                    points = []
                if kind in (REWIND, STAGE):
                    epoch = None  # they set the epoch themselves, after any EPOCH before them
                _apply_one(conn, after, op)
    insert_points(conn, points, after.series, after.stats, after.created_ms)
    mark = placeholder(conn)
    sets, params = f"heartbeat_at = {mark}, last_batch = {mark}", [now_ms(), batch_id]
    if epoch is not None:
        sets, params = f"{sets}, current_epoch = {mark}", [*params, epoch]
    where = f"id = {mark}"
    keys: tuple[Any, ...] = (after.run_id,)
    if holder is not None:  # only while this process still holds the run
        where, keys = f"{where} AND host = {mark} AND pid = {mark}", (*keys, *holder)
    stamped = conn.exec_driver_sql(f"UPDATE runs SET {sets} WHERE {where}", (*params, *keys)).rowcount
    if holder is not None and stamped != 1:
        raise _taken_over(conn, after.run_id, holder)
    return after


def _taken_over(conn: Connection, run_id: int, holder: tuple[str, int]) -> RunInUseError:
    name, host, pid = conn.execute(select(runs.c.name, runs.c.host, runs.c.pid).where(runs.c.id == run_id)).one()
    return RunInUseError(
        f"Run {name!r} is now held by process {pid} on {host}, not by this one ({holder[1]} on "
        f"{holder[0]}): its heartbeat went stale and another process continued the run. Nothing "
        "more of this process is written to it; stop this process."
    )


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
    elif code == REWIND:
        _rewind(conn, cur, op[1], op[2])
    elif code == STEP_REWIND:
        _, step, epoch, at = op
        _rewind_to_step(conn, cur, step, epoch, at)
    elif code == PARAMS:
        _, at, rows = op
        conn.execute(insert(params), [
            {"run_id": cur.run_id, "key": key, "value": value, "value_text": value_text,
             "value_json": value_json, "recorded_at": at}
            for key, value, value_text, value_json in rows
        ])
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
    superseded = _supersede_from(conn, cur, points.c.epoch >= to_epoch)
    conn.execute(update(runs).where(runs.c.id == cur.run_id).values(rewinds=cur.rewinds, current_epoch=to_epoch))
    payload = {"to_epoch": to_epoch, "superseded_points": superseded, "rev": cur.rewinds}
    _event(conn, cur, "rewind", to_epoch, at, json.dumps(payload))


def _rewind_to_step(conn: Connection, cur: Cursor, to_step: int, epoch: int, at: int) -> None:
    superseded = _supersede_from(conn, cur, points.c.step >= to_step)
    conn.execute(update(runs).where(runs.c.id == cur.run_id).values(rewinds=cur.rewinds))
    payload = {"to_step": to_step, "superseded_points": superseded, "rev": cur.rewinds}
    _event(conn, cur, "rewind", epoch, at, json.dumps(payload))


def _supersede_from(conn: Connection, cur: Cursor, first: Any) -> int:
    """One rewind (the next rev): in each series of the current stage, the effective points from
    the first one that ``first`` selects on are superseded, kept under that rev; their blocks and
    the series summaries are recomputed. Epochs and steps never go back within a series, so
    from the first point of epoch (step) >= N on is exactly the points of epoch (step) >= N (and,
    for steps, any point without one recorded after the first of them, which keeps the effective
    seqs 0 .. n - 1). Return how many points were superseded."""
    cur.rewinds += 1
    in_stage = select(series.c.id).where(series.c.stage_id == cur.stage_id)
    cuts = conn.execute(
        select(points.c.series_id, func.min(points.c.seq))
        .where(EFFECTIVE, first, points.c.series_id.in_(in_stage))
        .group_by(points.c.series_id)
    ).all()
    superseded = 0
    for series_id, cut in cuts:
        superseded += conn.execute(
            update(points).where(points.c.series_id == series_id, EFFECTIVE, points.c.seq >= cut).values(rev=cur.rewinds)
        ).rowcount
        reblock(conn, series_id, cur.rewinds, cut)
    _recount(conn, cur)
    return superseded


def _recount(conn: Connection, cur: Cursor) -> None:
    """Recompute the summaries of the current stage's series from their effective points."""
    query = (
        select(series.c.id, func.count(points.c.seq), func.min(points.c.value), func.max(points.c.value))
        .select_from(series.outerjoin(points, and_(points.c.series_id == series.c.id, EFFECTIVE)))
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
