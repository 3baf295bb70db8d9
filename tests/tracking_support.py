"""Support for the tracking tests: small scripts run as real processes, and events read back."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterable

import pytest

from helpers import is_postgres, query, script_env

#: the longest a small script may take (importing torch costs ~2 s of it)
PROCESS_TIMEOUT_S = 120


def write_script(directory: Path, name: str, source: str) -> Path:
    path = directory / f"{name}.py"
    path.write_text(source)
    return path


def start(script: Path, *args: str, stdin: bool = False) -> subprocess.Popen[str]:
    """Start ``python script args...`` with stdout and stderr captured (and stdin piped if asked)."""
    return subprocess.Popen(
        [sys.executable, str(script), *args], cwd=script.parent, env=script_env(), text=True,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


def finish(proc: subprocess.Popen[str], stdin: str | None = None, timeout: float = PROCESS_TIMEOUT_S) -> Finished:
    """Wait for ``proc`` (killing it after ``timeout`` seconds) and return what it said."""
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return Finished(proc.returncode, out, err)


def read_line(proc: subprocess.Popen[str]) -> str:
    """The next line the child prints (its stderr is shown if it ended instead)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(PROCESS_TIMEOUT_S)
        assert proc.stderr is not None
        raise AssertionError(f"the child ended (code {proc.returncode}) instead: {proc.stderr.read()}")
    return line.rstrip("\n")


def events(db: Path | str, run_id: int = 1) -> list[tuple[Any, ...]]:
    """(stage, epoch, kind, payload) of every event of the run, in the order recorded.

    ``db`` is a SQLite file or any database URL. ``v_events.event_id`` orders events recorded
    within the same millisecond.
    """
    url = f"sqlite:///{db}" if isinstance(db, Path) else db
    found = query(
        url, "SELECT stage, epoch, kind, payload FROM v_events WHERE run_id = :run_id ORDER BY event_id",
        {"run_id": run_id},
    )
    return [(stage, epoch, kind, json.loads(payload)) for stage, epoch, kind, payload in found]


def run_row(db: Path | str, run_name: str) -> tuple[Any, ...]:
    """(status, ended_at is set, current_epoch, num_stages) of the run, from ``v_runs``.

    ``db`` is a SQLite file or any database URL. "ended_at is set" is 1/0 on SQLite and a bool
    on PostgreSQL, so it is checked to be that, then given as 1/0 on both.
    """
    url = f"sqlite:///{db}" if isinstance(db, Path) else db
    ((status, ended, epoch, stages),) = query(
        url, "SELECT status, ended_at IS NOT NULL, current_epoch, num_stages FROM v_runs WHERE run_name = :name",
        {"name": run_name},
    )
    assert type(ended) is (bool if is_postgres(url) else int)
    return (status, int(ended), epoch, stages)


# -- processes launched on every backend at once --------------------------------------------

#: the backends of the ``url`` fixture, in its order
BACKENDS = ("sqlite", "postgresql")


def databases(
    request: pytest.FixtureRequest, tmp: pytest.TempPathFactory, names: Iterable[str],
) -> dict[tuple[str, str], tuple[Path, str]]:
    """(backend, name) -> (a fresh folder, a fresh database) for each name on each backend.

    For a module-scoped fixture that starts its slow processes on SQLite and PostgreSQL side by
    side (the ``url`` fixture is per test). A SQLite database is ``runs.db`` in its folder; a
    PostgreSQL one lives on the session's server and is dropped when the fixture ends. Without
    a server only SQLite is given, and the PostgreSQL tests skip in :func:`backend_of` (with
    ``$RUNHISTORY_SQL_REQUIRE_POSTGRES`` set, ``pg_server`` fails here instead).
    """
    try:
        server = request.getfixturevalue("pg_server")
    except pytest.skip.Exception:
        server = None
    found = {}
    for name in names:
        folder = tmp.mktemp(f"sqlite-{name}")
        found["sqlite", name] = (folder, f"sqlite:///{folder / 'runs.db'}")
        if server is not None:
            database = server.create_database()
            request.addfinalizer(partial(server.drop_database, database))
            found["postgresql", name] = (tmp.mktemp(f"postgresql-{name}"), server.url(database))
    return found


def backend_of(request: pytest.FixtureRequest) -> str:
    """The backend of a test parametrised over :data:`BACKENDS`; a PostgreSQL test skips without a
    server (fails in CI), with the reason the ``url`` fixture gives."""
    backend = str(request.param)
    if backend == "postgresql":
        request.getfixturevalue("pg_server")
    return backend
