"""Spill files: what a run could not commit before its process ended, kept as JSON lines.

The first line describes the run (its uuid, where its writes went, and the id of a batch whose
commit may or may not have landed); every further line is one queued operation.
``runhistory-sql import-spill FILE`` applies them later, once, in one transaction.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from .apply import EVENT, FLUSH, Cursor, Op, apply_batch, batch_landed
from .engine import writer_engine
from .errors import RunHistorySQLError, RunNotFoundError
from .schema import events, runs

SPILL_DIR_VAR = "RUNHISTORY_SQL_SPILL_DIR"
FORMAT = 1


def write(
    cursor: Cursor, pending: list[Op], pending_batch_id: int | None, queued: list[Op], *, url: str,
    attempted: Cursor | None = None,
) -> Path:
    """Write the run's unwritten operations to a new spill file and return its path.

    The folder is ``$RUNHISTORY_SQL_SPILL_DIR``, else the working directory.
    """
    folder = Path(os.environ.get(SPILL_DIR_VAR) or ".").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"runhistory-spill-{cursor.run_id}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.jsonl"
    ops = [op for op in pending + queued if op[0] != FLUSH]
    header = {
        "format": FORMAT, "spill_id": uuid.uuid4().hex, "url": url, "cursor": cursor.to_json(), "pending_batch_id": pending_batch_id,
        "pending_ops": len([op for op in pending if op[0] != FLUSH]),
        # where the writes stand if the pending batch did land after all
        "landed_cursor": attempted.to_json() if attempted is not None else None,
    }
    with path.open("w", encoding="utf-8") as f:
        f.write(json.dumps(header) + "\n")
        for op in ops:
            f.write(json.dumps(list(op), ensure_ascii=True) + "\n")  # ASCII: a lone surrogate cannot cut it short
    return path


def read_header(path: str | Path) -> dict[str, Any]:
    """Return the first line of a spill file, checked."""
    with Path(path).open(encoding="utf-8") as f:
        try:
            header = json.loads(f.readline())
        except ValueError as e:
            raise RunHistorySQLError(f"{path} is not a runhistory-sql spill file: {e}") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise RunHistorySQLError(f"{path} is not a runhistory-sql spill file (format {FORMAT}).")
    return header


def import_file(engine: Engine, path: str | Path) -> int:
    """Apply a spill file's operations to the database, once; return how many were applied.

    :raises RunNotFoundError: the run the file belongs to is not in this database
    """
    header = read_header(path)
    with Path(path).open(encoding="utf-8") as f:
        ops = [tuple(json.loads(line)) for line in list(f)[1:] if line.strip()]
    cursor = Cursor.from_json(header["cursor"])
    pending = header["pending_ops"]
    with writer_engine(engine).begin() as conn:
        if conn.execute(select(runs.c.id).where(runs.c.id == cursor.run_id)).first() is None:
            raise RunNotFoundError(f"The run of {path} (id {cursor.run_id}) is not in this database. Check the URL.")
        done = select(events.c.id).where(
            events.c.run_id == cursor.run_id, events.c.kind == "spill_imported",
            events.c.payload.contains(f'"spill_id": "{header["spill_id"]}"'),
        )
        if conn.execute(done).first() is not None:
            raise RunHistorySQLError(f"{path} was already imported into this database; nothing was changed.")
        if header["pending_batch_id"] is not None and batch_landed(conn, cursor.run_id, header["pending_batch_id"]):
            ops = ops[pending:]  # that batch did land before the process gave up
            cursor = Cursor.from_json(header["landed_cursor"])
        marker = (EVENT, "spill_imported", None, int(time.time() * 1000), json.dumps({"file": str(path), "ops": len(ops), "spill_id": header["spill_id"]}))
        apply_batch(conn, cursor, [*ops, marker], -1)
    return len(ops)
