"""Finding, creating and claiming runs, and loading a run's current stage into a mirror."""
from __future__ import annotations

import json
import os
from bisect import bisect_left
import secrets
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Collection

from sqlalchemy import Connection, CursorResult, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..db.clock import now_ms, pid_gone
from ..db.effective import effective_points
from ..db.engine import fetch_raw, writer_engine
from ..errors import RunExistsError, RunInUseError, RunNotFoundError
from ..db.schema import configs, experiments, metrics, params, runs, series, stages
from ..db.values import decode

RESUME_MODES = ("never", "allow", "must")


@dataclass
class RunState:
    """What a process knows of its run: identity, position, and the current stage's history."""

    run_id: int | None
    name: str
    experiment: str
    stage: int = 1
    stage_id: int | None = None
    epoch: int = 1
    rewinds: int = 0
    stage_used: bool = False
    resumed: bool = False
    #: when resumed: the status the run had (``crashed`` for a dead holder still marked running)
    previous_status: str | None = None
    #: the run's ``runs.uuid`` (``None`` when there is no run row)
    uuid: str | None = None
    #: the run's ``created_at`` (ms): points store their time relative to it
    created_ms: int = 0
    #: series id -> [effective points, min, max], as stored in ``series``
    stats: dict[int, list[Any]] = field(default_factory=dict)
    #: metric name -> (series id, values, epoch marks [(epoch, first index)])
    series: dict[str, tuple[int, list[Any], list[tuple[int, int]]]] = field(default_factory=dict)
    #: metric name -> the step of each value (``None``: none), for the metrics with a step
    steps: dict[str, list[int | None]] = field(default_factory=dict)
    #: param key -> the JSON of its current value, in the order first logged
    params: dict[str, str] = field(default_factory=dict)


def inserted_id(result: CursorResult[Any]) -> int:
    """Return the primary key of the one row that ``result``'s INSERT created."""
    key = result.inserted_primary_key
    assert key is not None  # always set for a single-row INSERT
    return int(key[0])


def generate_run_name() -> str:
    """Return a fresh, sortable run name such as ``run-20261130-021503-3fa2c1``."""
    return f"run-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def _find(conn: Connection, experiment: str, name: str, *, lock: bool = False) -> Any:
    """The run's row, or ``None``.

    :param lock: lock the row until the transaction ends, so that of several processes claiming
        it at once one wins and the others, once it has committed, read the row it wrote (and
        see a live holder). PostgreSQL needs ``FOR UPDATE`` for that: under READ COMMITTED two
        plain reads would both see the run free and both claim it. SQLite has no row locks, and
        needs none: a writer's ``BEGIN IMMEDIATE`` already holds the database's write lock.
    """
    query = (
        select(runs)
        .join(experiments, experiments.c.id == runs.c.experiment_id)
        .where(experiments.c.name == experiment, runs.c.name == name)
    )
    if lock:
        query = query.with_for_update(of=runs)
    return conn.execute(query).first()


def _experiment_id(conn: Connection, experiment: str) -> int:
    found = conn.execute(select(experiments.c.id).where(experiments.c.name == experiment)).scalar()
    if found is not None:
        return int(found)
    return inserted_id(conn.execute(insert(experiments).values(name=experiment, created_at=now_ms())))


def _create(
    conn: Connection, experiment: str, name: str, tags: dict[str, Any], stale_after_ms: int,
) -> RunState:
    now, run_uuid = now_ms(), str(uuid.uuid4())
    run = conn.execute(
        insert(runs).values(
            uuid=run_uuid, experiment_id=_experiment_id(conn, experiment), name=name,
            status="running", created_at=now, heartbeat_at=now, current_stage=1,
            current_epoch=1, host=socket.gethostname(), pid=os.getpid(),
            tags=json.dumps(tags, ensure_ascii=False), stale_after_ms=stale_after_ms,
        )
    )
    run_id = inserted_id(run)
    stage = conn.execute(insert(stages).values(run_id=run_id, idx=1, started_at=now))
    return RunState(run_id, name, experiment, stage_id=inserted_id(stage), uuid=run_uuid, created_ms=now)


def holder_alive(row: Any) -> bool:
    """Whether the process recorded as holding ``row`` may still be alive.

    On this host a pid that is gone is dead at once (a restart right after ``kill -9`` need not
    wait). Otherwise, here or on another host, the heartbeat decides: a process whose heartbeat
    is past the run's bound is not its holder any more (on this host: its pid was reused by
    another process, or the holder is stuck), which is also when ``v_runs`` reads ``crashed``.
    """
    if row.status != "running":
        return False
    if row.host == socket.gethostname() and row.pid == os.getpid():
        return False
    if pid_gone(row.host, row.pid):
        return False
    return (row.heartbeat_at or row.created_at) >= now_ms() - row.stale_after_ms


def _claim(conn: Connection, row: Any, held_here: Collection[str], stale_after_ms: int) -> None:
    if row.uuid in held_here:
        # the pid check below cannot tell this process's own open history from a dead one
        raise RunInUseError(
            f"Run {row.name!r} is already open in this process by another SQLRunHistory. "
            "close() that one first, or keep using it."
        )
    if holder_alive(row):
        raise RunInUseError(
            f"Run {row.name!r} is held by live process {row.pid} on {row.host}. Wait for it to "
            "end, or start a new run with another run_name."
        )
    conn.execute(
        update(runs).where(runs.c.id == row.id).values(
            status="running", ended_at=None, heartbeat_at=now_ms(), host=socket.gethostname(),
            pid=os.getpid(), stale_after_ms=stale_after_ms,
        )
    )


def open_run(
    engine: Engine, experiment: str, name: str | None, resume: str, tags: dict[str, Any],
    *, writer: bool, held_here: Collection[str] = (), stale_after_ms: int = 60_000,
    readable: bool = True,
) -> RunState:
    """Find or create the run, as ``resume`` says, and load its current stage.

    A process that is not the writer only reads: it never creates or claims a run.

    :param held_here: uuids of the runs this process already has open for writing
    :param stale_after_ms: the liveness bound this process promises (see ``clock``)
    :param readable: whether the schema exists (a non-writer never creates it)
    :raises RunExistsError: ``resume="never"`` and the name is taken
    :raises RunNotFoundError: ``resume="must"`` and there is no such run
    :raises RunInUseError: the run is held by another live process, or already open in this one
    """
    if name is None:
        name = generate_run_name()
    if not writer:
        return _open_to_read(engine, experiment, name, resume, readable)
    for _attempt in range(2):
        try:
            with writer_engine(engine).begin() as conn:
                return _open_to_write(conn, experiment, name, resume, tags, held_here, stale_after_ms)
        except IntegrityError:
            continue  # another process created the same name between our look and our insert
    raise RunExistsError(f"Run {name!r} in experiment {experiment!r} was created concurrently.")


def _open_to_read(engine: Engine, experiment: str, name: str, resume: str, readable: bool) -> RunState:
    """The run as a process that never writes sees it: loaded if it exists and may be continued."""
    if not readable:  # an empty database: the writing process has not created it yet
        if resume == "must":
            raise _not_found(experiment, name)
        return RunState(None, name, experiment)
    with engine.connect() as conn:
        row = _find(conn, experiment, name)
        if row is None and resume == "must":
            raise _not_found(experiment, name)
        return _load(conn, row) if row is not None and resume != "never" else RunState(None, name, experiment)


def _open_to_write(
    conn: Connection, experiment: str, name: str, resume: str, tags: dict[str, Any],
    held_here: Collection[str], stale_after_ms: int,
) -> RunState:
    """Create the run, or claim and load it, in the caller's transaction."""
    row = _find(conn, experiment, name, lock=True)
    if row is None:
        if resume == "must":
            raise _not_found(experiment, name)
        return _create(conn, experiment, name, tags, stale_after_ms)
    if resume == "never":
        raise RunExistsError(
            f"Run {name!r} already exists in experiment {experiment!r}. To continue "
            "it pass resume='allow' (or 'must'); to start a new run pick another run_name."
        )
    _claim(conn, row, held_here, stale_after_ms)
    state = _load(conn, row)
    state.resumed = True
    state.previous_status = "crashed" if row.status == "running" else row.status
    return state


def _not_found(experiment: str, name: str) -> RunNotFoundError:
    return RunNotFoundError(
        f"There is no run {name!r} in experiment {experiment!r} to continue. Check the name "
        "(runhistory-sql runs lists them) or pass resume='allow' to create it."
    )


def _load(conn: Connection, row: Any) -> RunState:
    """Load the run's current stage: its position and effective metric history."""
    stage_id = conn.execute(
        select(stages.c.id).where(stages.c.run_id == row.id, stages.c.idx == row.current_stage)
    ).scalar_one()
    experiment = conn.execute(
        select(experiments.c.name).where(experiments.c.id == row.experiment_id)
    ).scalar_one()
    state = RunState(
        row.id, row.name, experiment, stage=row.current_stage, stage_id=stage_id,
        epoch=row.current_epoch, rewinds=row.rewinds, uuid=row.uuid, created_ms=row.created_at,
    )
    query = (
        select(series.c.id, metrics.c.name, series.c.n_points, series.c.min_value, series.c.max_value)
        .join(metrics, metrics.c.id == series.c.metric_id)
        .where(series.c.stage_id == stage_id, series.c.deleted.is_(False))
        .order_by(series.c.id)
    )
    for series_id, metric, n, low, high in conn.execute(query).all():
        state.stats[series_id] = [n, low, high]
        values, epochs, steps = read_points(conn, series_id)
        if values:
            state.series[metric] = (series_id, values, epoch_marks(epochs))
            if steps.count(None) < len(steps):
                state.steps[metric] = steps
    state.stage_used = bool(state.series) or _stage_has_content(conn, stage_id)
    rows = conn.execute(select(params.c.key, params.c.value_json).where(params.c.run_id == row.id).order_by(params.c.id))
    state.params = {key: value_json for key, value_json in rows}  # the latest row of a key wins
    return state


def read_points(conn: Connection, series_id: int) -> tuple[list[Any], list[int], list[int | None]]:
    """Return the effective values of a series, in order, and the epoch and step of each.

    The driver's own cursor, and no decoding for plain numbers: a long history loads at about
    the speed of a raw ``fetchall``.
    """
    rows = fetch_raw(
        conn, f"SELECT value, special, value_json, epoch, step {effective_points(conn)} ORDER BY seq", (series_id,),
    )
    values = [v if s is None and j is None else decode(v, s, j) for v, s, j, _, _ in rows]
    return values, [row[3] for row in rows], [row[4] for row in rows]


def epoch_marks(epochs: list[int]) -> list[tuple[int, int]]:
    """Return ``[(epoch, index of its first point)]`` for a non-decreasing list of epochs."""
    return [(epoch, bisect_left(epochs, epoch)) for epoch in sorted(set(epochs))]


def _stage_has_content(conn: Connection, stage_id: int) -> bool:
    has_series = conn.execute(select(series.c.id).where(series.c.stage_id == stage_id).limit(1))
    has_config = conn.execute(select(configs.c.id).where(configs.c.stage_id == stage_id).limit(1))
    return has_series.first() is not None or has_config.first() is not None
