"""Spill files: what a run could not commit before its process ended, kept as JSON lines.

The header names the database (``store_info.uuid``) and the run (``runs.uuid``) the file
belongs to, where its writes went, and the id of a batch whose commit may or may not have
landed; every further line is one queued operation; the last line (:mod:`.oplines`) holds the
count and checksum of all before it. ``runhistory-sql import-spill FILE`` applies a complete file
to that database only, once, in one transaction: all of it or nothing.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, inspect, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ..db import migrate
from . import oplines
from .batch import EVENT, FLUSH, POINT, POINT_ENC, Cursor, Op, apply_batch, batch_landed
from ..db.engine import mask, writer_engine
from ..errors import RunNotFoundError, SchemaVersionError, SpillFileError, WrongDatabaseError, brief
from ..db.schema import events, runs, series, stages, store_info

SPILL_DIR_VAR = "RUNHISTORY_SQL_SPILL_DIR"
#: 3: points carry their step (migration 0007), and the PARAMS and STEP_REWIND operations exist
FORMAT = 3
#: The formats this version imports: a format-2 file's points (written before steps) have none.
READABLE = (2, 3)
KIND = "runhistory-sql spill"
_HEADER_KEYS = ("spill_id", "database", "url", "run", "cursor", "pending_batch_id", "pending_ops", "landed_cursor")


@dataclass(frozen=True)
class Origin:
    """Whom a run's spill file belongs to: its database and run, by identity."""

    #: the database's ``store_info.uuid``
    database: str
    #: the run's ``runs.uuid``, name and experiment
    run: str
    run_name: str
    experiment: str
    #: the database URL, masked: where to import the file
    url: str


def database_uuid(conn: Connection) -> str:
    """The database's identity (``store_info.uuid``, made with the schema)."""
    found = conn.execute(select(store_info.c.uuid).where(store_info.c.id == 1)).scalar()
    if found is None:
        raise SchemaVersionError(
            f"Database {mask(conn.engine.url)} has no row in store_info (its identity, made with "
            "the schema); it was removed by hand. Restore it from a backup."
        )
    return str(found)


def origin(engine: Engine, run_uuid: str, run_name: str, experiment: str) -> Origin:
    """The :class:`Origin` of a run, read when the run is opened (the database is reachable)."""
    with engine.connect() as conn:
        return Origin(database_uuid(conn), run_uuid, run_name, experiment, mask(engine.url))


def write(
    cursor: Cursor, pending: list[Op], pending_batch_id: int | None, queued: list[Op], *, origin: Origin,
    attempted: Cursor | None = None,
) -> Path:
    """Write the run's unwritten operations to a new spill file and return its path.

    The folder is ``$RUNHISTORY_SQL_SPILL_DIR``, else the working directory.
    """
    folder = Path(os.environ.get(SPILL_DIR_VAR) or ".").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"runhistory-spill-{cursor.run_id}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.jsonl"
    header = {
        "format": FORMAT, "kind": KIND, "spill_id": uuid.uuid4().hex,
        "database": origin.database, "url": origin.url,
        "run": {"uuid": origin.run, "name": origin.run_name, "experiment": origin.experiment},
        "cursor": cursor.to_json(), "pending_batch_id": pending_batch_id,
        "pending_ops": len([op for op in pending if op[0] != FLUSH]),
        # where the writes stand if the pending batch did land after all
        "landed_cursor": attempted.to_json() if attempted is not None else None,
    }
    return oplines.write(path, header, [op for op in pending + queued if op[0] != FLUSH])


def read_header(path: str | Path) -> dict[str, Any]:
    """Return the header (first line) of a spill file of this format.

    :raises SpillFileError: not a spill file, or one of another format (one line naming it)
    """
    header = oplines.read_header(path, KIND)
    if header["format"] == 1:
        raise SpillFileError(
            f"{path} is a format-1 spill file, which names neither its database nor its length; "
            "this version refuses it rather than guess (see the README, 'Spill files'). Nothing was imported."
        )
    if header["format"] not in READABLE:
        newer = isinstance(header["format"], int) and header["format"] > FORMAT
        raise SpillFileError(
            f"{path} is a spill file of format {header['format']!r}; this version of runhistory-sql reads "
            f"formats {' and '.join(map(str, READABLE))}{' (upgrade it: pip install -U runhistory-sql)' if newer else ''}. Nothing was imported."
        )
    return header


def read(path: str | Path) -> tuple[dict[str, Any], list[Op]]:
    """The header and operations of a complete spill file.

    :raises SpillFileError: anything else (missing, malformed, cut short, damaged)
    """
    header, ops = oplines.read(path, KIND, read_header(path)["format"])
    if header["format"] == 2:
        ops = [(*op, None) if op[0] in (POINT, POINT_ENC) else op for op in ops]
    run = header.get("run")
    if not (set(_HEADER_KEYS) <= header.keys() and isinstance(run, dict) and {"uuid", "name", "experiment"} <= run.keys()):
        raise SpillFileError(f"{path} has a malformed header (fields missing); nothing was imported.")
    return header, ops


def import_file(engine: Engine, path: str | Path) -> int:
    """Apply a spill file's operations to its database, once; return how many were applied.

    All or nothing: one transaction, which a failure rolls back whole (the ``spill_imported``
    marker too).

    :raises SpillFileError: the file is malformed, of another format, incomplete or damaged
    :raises WrongDatabaseError: the file belongs to another database
    :raises RunNotFoundError: its run is no longer in the database
    """
    header, ops = read(path)
    _check_schema(engine, header, path)
    with writer_engine(engine).begin() as conn:
        _check_database(conn, header, path)
        cursor = _run_cursor(conn, header, path)
        done = select(events.c.id).where(
            events.c.run_id == cursor.run_id, events.c.kind == "spill_imported",
            events.c.payload.contains(f'"spill_id": "{header["spill_id"]}"'),
        )
        if conn.execute(done).first() is not None:
            raise SpillFileError(f"{path} was already imported into this database; nothing was changed.")
        if header["pending_batch_id"] is not None and batch_landed(conn, cursor.run_id, header["pending_batch_id"]):
            ops = ops[header["pending_ops"]:]  # that batch did land before the process gave up
            cursor = _owned(conn, _cursor(header["landed_cursor"], path), cursor.run_id, header, path)
        marker = (EVENT, "spill_imported", None, int(time.time() * 1000), json.dumps({"file": str(path), "ops": len(ops), "spill_id": header["spill_id"]}))
        try:
            apply_batch(conn, cursor, [*ops, marker], -1)
        except OperationalError:
            raise  # the database went away: a database error, not the file's
        except (SQLAlchemyError, LookupError, TypeError, ValueError, RuntimeError) as e:
            raise SpillFileError(f"{path} could not be applied ({brief(e)}); nothing was imported.") from e
    return len(ops)


def _check_schema(engine: Engine, header: dict[str, Any], path: str | Path) -> None:
    """Refuse a database without this version's schema before touching it (an empty one is
    never the file's: it holds no run)."""
    revision = migrate.current_revision(engine)
    if revision == migrate.head_revision():
        return
    if revision is None and not inspect(engine).get_table_names():
        raise WrongDatabaseError(
            f"{path} belongs to database {header['database']} ({header['url']}), not to "
            f"{mask(engine.url)}, which is empty; import it with --url {header['url']}"
        )
    raise SchemaVersionError(f"{migrate.check(engine)[0].rstrip('.')}. {path} was not imported.")


def _check_database(conn: Connection, header: dict[str, Any], path: str | Path) -> None:
    here = database_uuid(conn)
    if header["database"] != here:
        raise WrongDatabaseError(
            f"{path} belongs to database {header['database']} ({header['url']}), not to this one "
            f"({here}, {mask(conn.engine.url)}); import it with --url {header['url']}"
        )


def _cursor(data: Any, path: str | Path) -> Cursor:
    try:
        return Cursor.from_json(data)
    except (LookupError, TypeError, ValueError, AttributeError):
        raise SpillFileError(f"{path} has a malformed header (its cursor); nothing was imported.") from None


def _run_cursor(conn: Connection, header: dict[str, Any], path: str | Path) -> Cursor:
    """The header's cursor, checked against the run it names by uuid: its integer ids are the
    ones this database gave that run."""
    run = header["run"]
    run_id = conn.execute(select(runs.c.id).where(runs.c.uuid == run["uuid"])).scalar()
    if run_id is None:
        raise RunNotFoundError(
            f"{path} belongs to run {run['name']!r} of experiment {run['experiment']!r} (uuid {run['uuid']}), "
            "which is no longer in this database; nothing was imported."
        )
    return _owned(conn, _cursor(header["cursor"], path), int(run_id), header, path)


def _owned(conn: Connection, cursor: Cursor, run_id: int, header: dict[str, Any], path: str | Path) -> Cursor:
    """``cursor``, once its run, stage and series ids are checked to be the run's ``run_id``."""
    run = header["run"]
    stage_ok = conn.execute(select(stages.c.id).where(stages.c.id == cursor.stage_id, stages.c.run_id == run_id)).first()
    own = set(conn.execute(select(series.c.id).where(series.c.run_id == run_id)).scalars())
    if cursor.run_id != run_id or stage_ok is None or not set(cursor.series.values()) <= own:
        raise WrongDatabaseError(
            f"{path} names run {run['name']!r} (uuid {run['uuid']}), but its ids are not that run's here "
            "(the database was rebuilt or copied since); nothing was imported."
        )
    return cursor
