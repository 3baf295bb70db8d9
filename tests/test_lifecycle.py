"""How a run ends, seen from real processes: finished, failed, or crashed, and continued.

Every scenario is a small script run by a fresh interpreter, on a real SQLite file and on a
real PostgreSQL database. The scripts that end by themselves run side by side (a module fixture
starts those of one backend all at once), so the ~2 s each one spends importing torch is paid in
parallel.

Liveness (``runs.stale_after_ms`` = 6 x ``heartbeat_interval``): a ``running`` run whose last
heartbeat is older than that reads as ``crashed`` in ``v_runs``. The SIGKILL test samples
``v_runs`` together with the database's own clock, so each sample's expected status is exact on
SQLite and bracketed by two clock readings on PostgreSQL (see ``_sample``).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from runhistory_sql import RunInUseError, SQLRunHistory
from helpers import dump, execute, is_postgres, query
from tracking_support import (
    BACKENDS, Finished, backend_of, databases, events, finish, read_line, run_row, start,
    write_script,
)

#: the heartbeat of the scripts that are killed, and the stale bound it gives (6 beats)
HEARTBEAT_S = 0.1
STALE_AFTER_MS = 600
#: how long the crash may take to show, well beyond the bound (a loaded machine)
CRASHED_DEADLINE_S = 10.0

pytestmark = pytest.mark.slow  # every test here launches real processes

PRELUDE = """
import sys
from runhistory_sql import SQLRunHistory

url = sys.argv[1]


def two_epochs(history):
    history.update_metric("loss", 0.5)
    history._increment_epoch()
    history.update_metric("loss", 0.25)
"""

TRAIN_PRELUDE = PRELUDE + """
import torch
from pytorch_accelerated import Trainer
from pytorch_accelerated.callbacks import TrainerCallback
from pytorch_accelerated.trainer import DEFAULT_CALLBACKS
from torch import nn

from runhistory_sql import RunTrackingCallback
from runhistory_sql.trainer.demo import make_datasets, make_model


def train(history, *callbacks):
    model = make_model()
    trainer = Trainer(
        model, loss_func=nn.MSELoss(), optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        callbacks=[*DEFAULT_CALLBACKS, RunTrackingCallback(), *callbacks], run_history=history,
    )
    train_ds, _ = make_datasets(n_train=64)
    trainer.train(train_dataset=train_ds, num_epochs=2, per_device_batch_size=32,
                  train_dataloader_kwargs={"num_workers": 0})
"""

#: name -> (script, expected return code, expected v_runs status, expected events)
ENDINGS: dict[str, tuple[str, int, str, list[tuple[Any, ...]]]] = {
    "close": (PRELUDE + """
history = SQLRunHistory(url, run_name="r")
two_epochs(history)
history.close()
""", 0, "finished", []),
    "with_block": (PRELUDE + """
with SQLRunHistory(url, run_name="r") as history:
    two_epochs(history)
""", 0, "finished", []),
    "exit_after_training_without_close": (TRAIN_PRELUDE + """
history = SQLRunHistory(url, run_name="r")
train(history)
""", 0, "finished", [
        (1, 1, "training_run_start", {"num_epochs": 2}),
        (1, 1, "epoch_end", {"epoch": 1}),
        (1, 2, "epoch_end", {"epoch": 2}),
        (1, 3, "training_run_end", {"epoch": 3}),
    ]),
    "exception": (PRELUDE + """
history = SQLRunHistory(url, run_name="r")
two_epochs(history)
raise RuntimeError("boom in epoch 2")
""", 1, "failed", [(1, 2, "exception", {"type": "builtins.RuntimeError", "message": "boom in epoch 2"})]),
    "exception_in_with_block": (PRELUDE + """
with SQLRunHistory(url, run_name="r") as history:
    two_epochs(history)
    raise ValueError("bad value")
""", 1, "failed", [(1, 2, "exception", {"type": "builtins.ValueError", "message": "bad value"})]),
    "exit_3": (PRELUDE + """
history = SQLRunHistory(url, run_name="r")
two_epochs(history)
sys.exit(3)
""", 3, "failed", [(1, 2, "exit", {"code": 3})]),
    "exit_3_in_with_block": (PRELUDE + """
with SQLRunHistory(url, run_name="r") as history:
    two_epochs(history)
    sys.exit(3)
""", 3, "failed", [(1, 2, "exit", {"code": 3})]),
    "exit_message": (PRELUDE + """
history = SQLRunHistory(url, run_name="r")
two_epochs(history)
sys.exit("cannot go on")
""", 1, "failed", [(1, 2, "exit", {"code": "cannot go on"})]),
    "exit_0": (PRELUDE + """
history = SQLRunHistory(url, run_name="r")
two_epochs(history)
sys.exit(0)
""", 0, "finished", []),
    "exit_0_during_training": (TRAIN_PRELUDE + """
class Quit(TrainerCallback):
    def on_train_epoch_end(self, trainer, **kwargs):
        sys.exit(0)


history = SQLRunHistory(url, run_name="r")
train(history, Quit())
""", 0, "failed", [
        (1, 1, "training_run_start", {"num_epochs": 2}),
        (1, 1, "interrupted", {"reason": "the process ended during a training or evaluation run"}),
    ]),
    "exit_0_in_a_thread": (PRELUDE + """
import threading

history = SQLRunHistory(url, run_name="r")
two_epochs(history)
worker = threading.Thread(target=sys.exit, args=(5,))  # ends the thread only, not the process
worker.start()
worker.join()
""", 0, "finished", []),
}


Ending = tuple[Path, str, Finished]


@pytest.fixture(scope="module")
def endings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
) -> dict[tuple[str, str], Ending]:
    """Run every script of ENDINGS on its own database, those of one backend at once, then the
    next backend; (backend, name) -> (the script's folder, its database URL, its result)."""
    found = databases(request, tmp_path_factory, ENDINGS)
    ended = {}
    for backend in BACKENDS:
        started = {
            key: (folder, url, start(write_script(folder, key[1], ENDINGS[key[1]][0]), url))
            for key, (folder, url) in found.items() if key[0] == backend
        }
        ended.update({key: (folder, url, finish(proc)) for key, (folder, url, proc) in started.items()})
    return ended


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return backend_of(request)


@pytest.mark.parametrize("name", list(ENDINGS))
def test_how_the_process_ends_decides_the_status(
    endings: dict[tuple[str, str], Ending], backend: str, name: str,
) -> None:
    _, returncode, status, expected_events = ENDINGS[name]
    _, url, result = endings[backend, name]

    assert result.returncode == returncode, result.stderr
    assert run_row(url, "r")[:2] == (status, 1)
    found = events(url)
    for event in found:
        event[3].pop("traceback", None)  # checked below
    assert found == expected_events
    # every point is committed, whatever the ending
    if "training" in name:  # the real Trainer's epoch losses (the exit comes after epoch 1's)
        epochs = 2 if name == "exit_after_training_without_close" else 1
        stored = query(url, "SELECT metric, epoch FROM v_metrics ORDER BY seq")
        assert stored == [("train_loss_epoch", epoch) for epoch in range(1, epochs + 1)]
    else:
        assert query(url, "SELECT epoch, value FROM v_metrics ORDER BY seq") == [(1, 0.5), (2, 0.25)]


def test_an_exception_event_carries_the_traceback(endings: dict[tuple[str, str], Ending], backend: str) -> None:
    folder, url, result = endings[backend, "exception"]

    ((payload,),) = query(url, "SELECT payload FROM v_events WHERE kind = 'exception'")
    script = folder / "exception.py"
    line = script.read_text().splitlines().index('raise RuntimeError("boom in epoch 2")') + 1
    assert json.loads(payload)["traceback"] == (
        "Traceback (most recent call last):\n"
        f'  File "{script}", line {line}, in <module>\n'
        '    raise RuntimeError("boom in epoch 2")\n'
        "RuntimeError: boom in epoch 2\n"
    )
    assert result.stderr.endswith("RuntimeError: boom in epoch 2\n")  # the usual report still appears


# -- a process that dies without a word ---------------------------------------------------

HOLDER = PRELUDE + """
history = SQLRunHistory(url, run_name="held", heartbeat_interval=float(sys.argv[2]))
two_epochs(history)
history._increment_epoch()
history.flush()
print("ready", flush=True)
# hold the run until stdin ends (or we are killed); "flush" commits, which refreshes the heartbeat
for line in sys.stdin:
    history.flush()
    print("flushed", flush=True)
history.close()
"""

RESUMER = PRELUDE + """
import json, os

history = SQLRunHistory(url, run_name="held", resume="allow", heartbeat_interval=1.0)
history.flush()
print(json.dumps({"pid": os.getpid(), "epoch": history.current_epoch,
                  "loss": history.get_metric_values("loss")}), flush=True)
sys.stdin.readline()
history.update_metric("loss", 0.125)
history._increment_epoch()
history.close()
"""


@pytest.fixture
def holder(tmp_path: Path, url: str) -> Iterator[Any]:
    """Start the holder script with a given heartbeat; it prints ``ready`` once its run is committed."""
    procs: list[subprocess.Popen[str]] = []

    def launch(heartbeat: float) -> subprocess.Popen[str]:
        proc = start(write_script(tmp_path, "holder", HOLDER), url, str(heartbeat), stdin=True)
        procs.append(proc)
        assert read_line(proc) == "ready"
        return proc

    yield launch
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL ``proc`` right after a commit of its writer (so its heartbeat is fresh), and reap it."""
    assert proc.stdin is not None
    proc.stdin.write("flush\n")
    proc.stdin.flush()
    assert read_line(proc) == "flushed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()  # reaped: until then the pid is a zombie, which kill(pid, 0) still finds


#: the database's clock in ms, as ``v_runs`` reads it
SQLITE_NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
POSTGRES_NOW_MS = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"


def _sample(url: str) -> tuple[int, str, int]:
    """(earliest, status, latest): the run's status in ``v_runs`` and two readings of the
    database's clock in ms, between which ``v_runs`` read its own.

    SQLite's 'now' is one value for a whole statement, so one statement reads it exactly
    (earliest == latest). PostgreSQL's ``clock_timestamp()`` moves within a statement, and the
    view computes its status before the outer select list: the latest reading follows it, the
    earliest is a statement of its own, sent just before.
    """
    if is_postgres(url):
        ((earliest,),) = query(url, f"SELECT {POSTGRES_NOW_MS}")
        ((status, latest),) = query(url, f"SELECT status, {POSTGRES_NOW_MS} FROM v_runs")
        return earliest, status, latest
    ((now, status),) = query(url, f"SELECT {SQLITE_NOW_MS}, status FROM v_runs")
    return now, status, now


def test_a_killed_process_reads_running_until_its_heartbeat_is_stale_then_crashed(holder: Any, url: str) -> None:
    proc = holder(HEARTBEAT_S)
    assert _sample(url)[1] == "running"

    _kill(proc)
    ((heartbeat_at, stale_after_ms),) = query(url, "SELECT heartbeat_at, stale_after_ms FROM runs")
    samples = [_sample(url)]
    deadline = time.monotonic() + CRASHED_DEADLINE_S
    while samples[-1][1] != "crashed" and time.monotonic() < deadline:
        samples.append(_sample(url))

    assert stale_after_ms == STALE_AFTER_MS
    bound = heartbeat_at + stale_after_ms
    # every sample reads what the bound says at that instant: exactly on SQLite; on PostgreSQL,
    # when the two readings straddle the bound, the view's own clock may be on either side
    for earliest, status, latest in samples:
        assert status in {"crashed" if now > bound else "running" for now in (earliest, latest)}, samples
    assert samples[0][1] == "running" and samples[-1][1] == "crashed"
    assert query(url, "SELECT status FROM runs") == [("running",)]  # only the view says crashed
    assert run_row(url, "held") == ("crashed", 0, 3, 1)


def test_a_run_killed_a_moment_ago_is_continued_at_once_on_the_same_host(holder: Any, tmp_path: Path, url: str) -> None:
    # a 30 s heartbeat: the run would read running for 180 s; the dead pid frees it at once
    _kill(holder(30.0))
    assert _sample(url)[1] == "running"

    resumer = start(write_script(tmp_path, "resumer", RESUMER), url, stdin=True)
    try:
        said = json.loads(read_line(resumer))
        running = run_row(url, "held")
        resumed = events(url)
    finally:
        result = finish(resumer, "\n")

    assert said == {"pid": resumer.pid, "epoch": 3, "loss": [0.5, 0.25]}
    assert running == ("running", 0, 3, 1)
    assert resumed == [
        (1, 3, "resumed", {
            "host": socket.gethostname(), "pid": resumer.pid, "from_epoch": 3, "stage": 1,
            "previous_status": "crashed",
        }),
    ]
    assert result.returncode == 0, result.stderr
    assert run_row(url, "held") == ("finished", 1, 4, 1)
    assert query(url, "SELECT epoch, value FROM v_metrics ORDER BY seq") == [(1, 0.5), (2, 0.25), (3, 0.125)]
    # the new holder's own bound (its heartbeat is 1 s) and pid
    assert query(url, "SELECT stale_after_ms, pid FROM runs") == [(6000, resumer.pid)]


def test_a_crashed_run_continued_by_a_new_process_reads_running_then_finished(holder: Any, tmp_path: Path, url: str) -> None:
    _kill(holder(HEARTBEAT_S))
    deadline = time.monotonic() + CRASHED_DEADLINE_S
    while _sample(url)[1] != "crashed" and time.monotonic() < deadline:
        pass
    assert run_row(url, "held") == ("crashed", 0, 3, 1)

    resumer = start(write_script(tmp_path, "resumer", RESUMER), url, stdin=True)
    try:
        said = json.loads(read_line(resumer))
        while_running = run_row(url, "held")
    finally:
        result = finish(resumer, "\n")

    assert said["epoch"] == 3
    assert while_running == ("running", 0, 3, 1)
    assert result.returncode == 0, result.stderr
    assert run_row(url, "held") == ("finished", 1, 4, 1)
    ((payload,),) = query(url, "SELECT payload FROM v_events WHERE kind = 'resumed'")
    assert json.loads(payload)["previous_status"] == "crashed"


def test_a_run_held_by_a_live_process_is_refused_and_left_unchanged(holder: Any, url: str) -> None:
    # a 30 s heartbeat: nothing is written while the holder sleeps, so the database must not change
    proc = holder(30.0)
    before = dump(url)

    for resume in ("allow", "must"):
        with pytest.raises(RunInUseError) as raised:
            SQLRunHistory(url, run_name="held", resume=resume)
        assert str(raised.value) == (
            f"Run 'held' is held by live process {proc.pid} on {socket.gethostname()}. Wait for it "
            "to end, or start a new run with another run_name."
        )

    assert dump(url) == before
    result = finish(proc, "\n")  # the holder goes on and ends cleanly
    assert result.returncode == 0, result.stderr
    assert run_row(url, "held") == ("finished", 1, 3, 1)


def test_on_this_host_a_live_pid_whose_heartbeat_is_silent_is_not_the_holder(url: str) -> None:
    SQLRunHistory(url, run_name="reused").close()
    # the pid is alive (our parent) but is not a writer: as when a dead holder's pid is reused
    execute(
        url, "UPDATE runs SET status = 'running', host = :host, pid = :pid, heartbeat_at = :then",
        {"host": socket.gethostname(), "pid": os.getppid(), "then": time.time_ns() // 1_000_000 - 61_000},
    )
    assert run_row(url, "reused")[0] == "crashed"

    with SQLRunHistory(url, run_name="reused", resume="allow") as history:
        history.flush()
        assert run_row(url, "reused")[0] == "running"

    ((payload,),) = query(url, "SELECT payload FROM v_events WHERE kind = 'resumed'")
    assert json.loads(payload)["previous_status"] == "crashed"


def test_on_another_host_the_heartbeat_decides(url: str) -> None:
    SQLRunHistory(url, run_name="far").close()
    now_ms = time.time_ns() // 1_000_000
    execute(  # the run as another machine holds it
        url, "UPDATE runs SET status = 'running', host = 'elsewhere', pid = 1, heartbeat_at = :now",
        {"now": now_ms},
    )
    before = dump(url)

    with pytest.raises(RunInUseError, match="Run 'far' is held by live process 1 on elsewhere"):
        SQLRunHistory(url, run_name="far", resume="allow")
    assert dump(url) == before

    # 61 s of silence: past its 60 s bound
    execute(url, "UPDATE runs SET heartbeat_at = :then", {"then": now_ms - 61_000})
    with SQLRunHistory(url, run_name="far", resume="allow") as history:
        history.flush()
        assert run_row(url, "far")[0] == "running"
    ((payload,),) = query(url, "SELECT payload FROM v_events WHERE kind = 'resumed'")
    assert json.loads(payload)["previous_status"] == "crashed"
    assert query(url, "SELECT status, host FROM runs") == [("finished", socket.gethostname())]
