"""Opening a history's run: the engine, the schema, the run claimed (or only read), and what a
spill file of it will name. World-process-zero may create or upgrade the schema and claims the
run; every other rank waits for the schema and only reads."""
from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from . import lifecycle, spill
from ..db.clock import STALE_AFTER_BEATS
from ..db.engine import make_engine, mask
from ..db.migrate import ensure_schema, wait_for_schema
from ..errors import unreachable
from .batch import Cursor
from .run import RunState, open_run
from .writer import Writer


class Opened(NamedTuple):
    """What :func:`open_history` found: ``origin`` is ``None`` where this process does not write."""

    engine: Engine
    state: RunState
    writes: bool
    origin: spill.Origin | None


def open_history(
    url: str | None, experiment: str, run_name: str | None, resume: str, tags: dict[str, Any], *,
    writes: bool, auto_upgrade: bool, heartbeat_interval: float,
) -> Opened:
    """Open the run of a new :class:`~runhistory_sql.write.history.SQLRunHistory`.

    :param writes: this process is world-process-zero: it may create the schema and claims the run
    :raises RunHistorySQLError: (subclasses) an unusable URL, schema or run name, or an unreachable
        database (the engine is disposed of then)
    """
    engine = make_engine(url)
    try:
        if writes:
            ensure_schema(engine, auto_upgrade=auto_upgrade)
            readable = True
        else:  # other ranks never write, not even to create the schema
            readable = wait_for_schema(engine, auto_upgrade=auto_upgrade)
        state = open_run(
            engine, experiment, run_name, resume, tags, writer=writes, held_here=lifecycle.held_uuids(),
            stale_after_ms=int(heartbeat_interval * STALE_AFTER_BEATS * 1000), readable=readable,
        )
        # read now, while the database answers: a spill file names its database and run
        origin = spill.origin(engine, state.uuid, state.name, experiment) if writes and state.uuid else None
    except OperationalError as e:
        engine.dispose()
        raise unreachable(mask(engine.url), e) from e
    except BaseException:
        engine.dispose()
        raise
    return Opened(engine, state, writes, origin)


def start_writer(opened: Opened, tokens: dict[str, int], *, interval: float, heartbeat: float) -> Writer:
    """Start the background writer of a run this process writes (``opened.origin`` is set).

    :param tokens: metric name -> the history's token of its series, for the series already stored
    """
    assert opened.origin is not None and opened.state.run_id is not None
    names = {token: name for name, token in tokens.items()}
    cursor = Cursor.of_run(opened.state, tokens)
    return Writer(opened.engine, cursor, interval=interval, heartbeat=heartbeat, origin=opened.origin, names=names)
