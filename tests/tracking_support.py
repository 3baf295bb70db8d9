"""Support for the tracking tests: small scripts run as real processes, and events read back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import query, rows

ROOT = Path(__file__).resolve().parent.parent
#: the longest a small script may take (importing torch costs ~2 s of it)
PROCESS_TIMEOUT_S = 120


def env() -> dict[str, str]:
    """The environment of a child: this checkout importable, one thread, no inherited run settings."""
    child = {
        **os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    for name in ("RUNHISTORY_SQL_URL", "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        child.pop(name, None)
    return child


def write_script(directory: Path, name: str, source: str) -> Path:
    path = directory / f"{name}.py"
    path.write_text(source)
    return path


def start(script: Path, *args: str, stdin: bool = False) -> subprocess.Popen[str]:
    """Start ``python script args...`` with stdout and stderr captured (and stdin piped if asked)."""
    return subprocess.Popen(
        [sys.executable, str(script), *args], cwd=script.parent, env=env(), text=True,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


def finish(proc: subprocess.Popen[str], stdin: str | None = None) -> Finished:
    """Wait for ``proc`` (killing it after the timeout) and return what it said."""
    try:
        out, err = proc.communicate(stdin, timeout=PROCESS_TIMEOUT_S)
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

    ``db`` is a SQLite file or any database URL. ``v_events`` has no column that orders events
    recorded within the same millisecond, so the order comes from the ``events`` table's key;
    the rows themselves must be ``v_events``'s.
    """
    url = f"sqlite:///{db}" if isinstance(db, Path) else db
    ordered = query(
        url,
        "SELECT st.idx, ev.epoch, ev.kind, ev.payload FROM events ev "
        "LEFT JOIN stages st ON st.id = ev.stage_id WHERE ev.run_id = :run_id ORDER BY ev.id",
        {"run_id": run_id},
    )
    public = query(url, "SELECT stage, epoch, kind, payload FROM v_events WHERE run_id = :run_id", {"run_id": run_id})
    assert sorted(public, key=repr) == sorted(ordered, key=repr)
    return [(stage, epoch, kind, json.loads(payload)) for stage, epoch, kind, payload in ordered]


def run_row(db: Path, run_name: str) -> tuple[Any, ...]:
    """(status, ended_at is set, current_epoch, num_stages) of the run, from ``v_runs``."""
    ((row),) = rows(
        db, "SELECT status, ended_at IS NOT NULL, current_epoch, num_stages FROM v_runs WHERE run_name = ?",
        (run_name,),
    )
    return tuple(row)
