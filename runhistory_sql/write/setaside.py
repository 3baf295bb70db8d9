"""Operations the database refused for good, set aside so that everything else commits.

The writer retries a batch that failed for a transient reason (the connection, a lock) until it
lands. Any other failure (a value the database cannot store, a constraint) would fail every retry
and hold back every point queued after it, so the writer splits the batch until the failing
operation is alone, writes that operation to a JSON-lines file here, records a ``write_error``
event, and goes on. Nothing written here can itself fail on the bad value: every line and every
event payload is pure ASCII.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import exc

from .batch import DELETE, END, EVENT, PARAMS, POINT, POINT_ENC, SERIES, STEP_REWIND, Op
from ..db.clock import now_ms
from ..errors import brief
from .snapshot import storable_text
from .spill import SPILL_DIR_VAR

log = logging.getLogger("runhistory_sql")

#: The event kind that records a set-aside operation.
WRITE_ERROR = "write_error"
_NAMES = {POINT: "point", POINT_ENC: "point", SERIES: "series", DELETE: "delete_metric", EVENT: "event", END: "end",
          PARAMS: "log_params", STEP_REWIND: "rewind_to_step"}
#: SQLSTATE classes worth retrying: connection, rollback (deadlock, serialisation), resources,
#: operator intervention (shutdown, statement timeout), system errors; and lock timeouts
_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")
_TRANSIENT_STATES = ("55P03", "55006")
#: what SQLite says when it is busy, locked, or its file is out of reach for a while
_SQLITE_TRANSIENT = ("locked", "busy", "disk", "i/o", "unable to open", "readonly", "interrupt")
_SHOWN_CHARS = 200


def is_transient(error: BaseException) -> bool:
    """Whether a failed commit is worth retrying as it is (else it must be split).

    The driver's own errors count as SQLAlchemy's do: points go to PostgreSQL through the raw
    driver's ``COPY``, whose errors SQLAlchemy never wraps.
    """
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    transient = (exc.InterfaceError, exc.TimeoutError, exc.DisconnectionError, exc.PendingRollbackError, OSError)
    if isinstance(error, transient):
        return True
    cause = error.orig if isinstance(error, exc.DBAPIError) else error
    kinds = {kind.__name__ for kind in type(cause).__mro__}
    if "InterfaceError" in kinds:
        return True
    if "OperationalError" not in kinds:
        return False
    state = getattr(cause, "sqlstate", None)
    if state:
        return state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES
    if type(cause).__module__.startswith("sqlite3"):
        return any(word in str(cause).lower() for word in _SQLITE_TRANSIENT)
    return True  # no SQLSTATE from a server's driver: the connection itself failed


def safe_text(text: Any, limit: int = _SHOWN_CHARS) -> str:
    """``text`` as a string any database can store: lone surrogates and NUL escaped, cut short."""
    shown = text if isinstance(text, str) else repr(text)
    if len(shown) > limit:
        shown = shown[:limit] + f"... ({len(shown)} characters)"
    return storable_text(shown)


def describe(op: Op, names: dict[int, str]) -> dict[str, Any]:
    """What the operation was, for a ``write_error`` event: storable strings only."""
    code = op[0]
    what: dict[str, Any] = {"op": _NAMES.get(code, f"op{code}")}
    if code in (POINT, POINT_ENC):
        what.update(metric=safe_text(names.get(op[1], "?")), seq=op[2], epoch=op[3], value=safe_text(op[4]))
        if len(op) > 6 and op[6] is not None:
            what["step"] = op[6]
    elif code == SERIES:
        what["metric"] = safe_text(op[2])
    elif code == DELETE:
        what["metric"] = safe_text(names.get(op[1], "?"))
    elif code == EVENT:
        what.update(kind=safe_text(op[1]), payload=safe_text(op[4]))
    else:
        what["detail"] = safe_text(op[1:])
    return what


def op_epoch(op: Op) -> int | None:
    """The epoch an operation was recorded at, where it carries one."""
    if op[0] in (POINT, POINT_ENC):
        return int(op[3])
    if op[0] == EVENT and isinstance(op[2], int):
        return op[2]
    return None


class SetAside:
    """The JSON-lines file of one run's set-aside operations, created on first use.

    :param run_id: the run, for the file name
    :param names: series token -> metric name, to say which metric a point belonged to
    """

    def __init__(self, run_id: int, names: dict[int, str]) -> None:
        self.run_id, self.names = run_id, names
        self.path: Path | None = None
        self.count = 0

    def add(self, op: Op, error: BaseException | str, *, event: bool = True) -> Op | None:
        """Write ``op`` to the file; return the ``write_error`` event to commit in its place.

        :param event: ``False`` for an operation that only follows one already recorded (a point
            of a series that could not be created): it goes to the file, with no event of its own
        :return: the event, or ``None`` (no event asked, or a ``write_error`` event that failed)
        """
        reason = safe_text(error if isinstance(error, str) else brief(error) or type(error).__name__, 1000)
        what = describe(op, self.names)
        self._write({"error": reason, **what, "recorded_at": now_ms(), "op": list(op)})
        if not event or (op[0] == EVENT and op[1] == WRITE_ERROR):
            return None
        payload = {**what, "error": reason, "file": str(self.path)}
        return (EVENT, WRITE_ERROR, op_epoch(op), now_ms(), json.dumps(payload, ensure_ascii=True))

    def _write(self, line: dict[str, Any]) -> None:
        first = self.path is None
        if self.path is None:
            folder = Path(os.environ.get(SPILL_DIR_VAR) or ".").resolve()
            folder.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%S")
            self.path = folder / f"runhistory-set-aside-{self.run_id}-{stamp}-{os.getpid()}.jsonl"
        # ASCII only, anything not JSON as its repr: this write cannot fail on the bad value
        text = json.dumps(line, ensure_ascii=True, default=repr)
        with self.path.open("a", encoding="ascii") as f:
            f.write(text + "\n")
        self.count += 1
        if first:
            log.warning(
                "runhistory-sql: the database refused an operation (%s); it is set aside in %s and "
                "recorded as a %r event; everything else is committed.", line["error"], self.path, WRITE_ERROR,
            )
