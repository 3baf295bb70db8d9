"""How a run ends, seen from real processes: finished, failed, or crashed, and continued.

Every scenario is a small script run by a fresh interpreter on a real SQLite file. The scripts
that end by themselves run side by side (a module fixture starts them all at once), so the ~2 s
each one spends importing torch is paid in parallel.

Liveness (``runs.stale_after_ms`` = 6 x ``heartbeat_interval``): a ``running`` run whose last
heartbeat is older than that reads as ``crashed`` in ``v_runs``. The SIGKILL test samples
``v_runs`` together with SQLite's own clock, so each sample's expected status is exact.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from runhistory_sql import RunHistorySQLError, RunInUseError, SQLRunHistory
from tests.helpers import dump, rows
from tests.tracking_support import Finished, events, finish, read_line, run_row, start, write_script

#: the heartbeat of the scripts that are killed, and the stale bound it gives (6 beats)
HEARTBEAT_S = 0.1
STALE_AFTER_MS = 600
#: how long the crash may take to show, well beyond the bound (a loaded machine)
CRASHED_DEADLINE_S = 10.0

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
from runhistory_sql.demo import make_datasets, make_model


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


@pytest.fixture(scope="module")
def endings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Finished]]:
    """Run every script of ENDINGS at once, each on its own database; name -> (db, result)."""
    started = {}
    for name, (source, *_) in ENDINGS.items():
        directory = tmp_path_factory.mktemp(name)
        db = directory / "runs.db"
        started[name] = (db, start(write_script(directory, name, source), f"sqlite:///{db}"))
    return {name: (db, finish(proc)) for name, (db, proc) in started.items()}


@pytest.mark.parametrize("name", list(ENDINGS))
def test_how_the_process_ends_decides_the_status(endings: dict[str, tuple[Path, Finished]], name: str) -> None:
    _, returncode, status, expected_events = ENDINGS[name]
    db, result = endings[name]

    assert result.returncode == returncode, result.stderr
    assert run_row(db, "r")[:2] == (status, 1)
    found = events(db)
    for event in found:
        event[3].pop("traceback", None)  # checked below
    assert found == expected_events
    if "training" not in name:
        # every point is committed, whatever the ending
        assert rows(db, "SELECT epoch, value FROM v_metrics ORDER BY seq") == [(1, 0.5), (2, 0.25)]


def test_an_exception_event_carries_the_traceback(endings: dict[str, tuple[Path, Finished]]) -> None:
    db, result = endings["exception"]

    ((payload,),) = rows(db, "SELECT payload FROM v_events WHERE kind = 'exception'")
    script = db.parent / "exception.py"
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
def holder(tmp_path: Path, db_url: str) -> Iterator[Any]:
    """Start the holder script with a given heartbeat; it prints ``ready`` once its run is committed."""
    procs: list[subprocess.Popen[str]] = []

    def launch(heartbeat: float) -> subprocess.Popen[str]:
        proc = start(write_script(tmp_path, "holder", HOLDER), db_url, str(heartbeat), stdin=True)
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


def _sample(db: Path) -> tuple[int, str]:
    """(SQLite's clock in ms, status) of the run, read in one statement (one value of 'now')."""
    ((now, status),) = rows(
        db, "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), status FROM v_runs",
    )
    return now, status


def test_a_killed_process_reads_running_until_its_heartbeat_is_stale_then_crashed(holder: Any, db_path: Path) -> None:
    proc = holder(HEARTBEAT_S)
    assert _sample(db_path)[1] == "running"

    _kill(proc)
    ((heartbeat_at, stale_after_ms),) = rows(db_path, "SELECT heartbeat_at, stale_after_ms FROM runs")
    samples = [_sample(db_path)]
    deadline = time.monotonic() + CRASHED_DEADLINE_S
    while samples[-1][1] != "crashed" and time.monotonic() < deadline:
        samples.append(_sample(db_path))

    assert stale_after_ms == STALE_AFTER_MS
    bound = heartbeat_at + stale_after_ms
    # every sample reads exactly what the bound says at that instant
    assert [status for _, status in samples] == ["crashed" if now > bound else "running" for now, _ in samples]
    assert samples[0][1] == "running" and samples[-1][1] == "crashed"
    assert rows(db_path, "SELECT status FROM runs") == [("running",)]  # only the view says crashed
    assert run_row(db_path, "held") == ("crashed", 0, 3, 1)


def test_a_run_killed_a_moment_ago_is_continued_at_once_on_the_same_host(holder: Any, tmp_path: Path, db_url: str, db_path: Path) -> None:
    # a 30 s heartbeat: the run would read running for 180 s; the dead pid frees it at once
    _kill(holder(30.0))
    assert _sample(db_path)[1] == "running"

    resumer = start(write_script(tmp_path, "resumer", RESUMER), db_url, stdin=True)
    try:
        said = json.loads(read_line(resumer))
        running = run_row(db_path, "held")
        resumed = events(db_path)
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
    assert run_row(db_path, "held") == ("finished", 1, 4, 1)
    assert rows(db_path, "SELECT epoch, value FROM v_metrics ORDER BY seq") == [(1, 0.5), (2, 0.25), (3, 0.125)]
    # the new holder's own bound (its heartbeat is 1 s) and pid
    assert rows(db_path, "SELECT stale_after_ms, pid FROM runs") == [(6000, resumer.pid)]


def test_a_crashed_run_continued_by_a_new_process_reads_running_then_finished(holder: Any, tmp_path: Path, db_url: str, db_path: Path) -> None:
    _kill(holder(HEARTBEAT_S))
    deadline = time.monotonic() + CRASHED_DEADLINE_S
    while _sample(db_path)[1] != "crashed" and time.monotonic() < deadline:
        pass
    assert run_row(db_path, "held") == ("crashed", 0, 3, 1)

    resumer = start(write_script(tmp_path, "resumer", RESUMER), db_url, stdin=True)
    try:
        said = json.loads(read_line(resumer))
        while_running = run_row(db_path, "held")
    finally:
        result = finish(resumer, "\n")

    assert said["epoch"] == 3
    assert while_running == ("running", 0, 3, 1)
    assert result.returncode == 0, result.stderr
    assert run_row(db_path, "held") == ("finished", 1, 4, 1)
    ((payload,),) = rows(db_path, "SELECT payload FROM v_events WHERE kind = 'resumed'")
    assert json.loads(payload)["previous_status"] == "crashed"


def test_a_run_held_by_a_live_process_is_refused_and_left_unchanged(holder: Any, db_url: str, db_path: Path) -> None:
    # a 30 s heartbeat: nothing is written while the holder sleeps, so the database must not change
    proc = holder(30.0)
    before = dump(db_path)

    for resume in ("allow", "must"):
        with pytest.raises(RunInUseError) as raised:
            SQLRunHistory(db_url, run_name="held", resume=resume)
        assert str(raised.value) == (
            f"Run 'held' is held by live process {proc.pid} on {socket.gethostname()}. Wait for it "
            "to end, or start a new run with another run_name."
        )

    assert dump(db_path) == before
    result = finish(proc, "\n")  # the holder goes on and ends cleanly
    assert result.returncode == 0, result.stderr
    assert run_row(db_path, "held") == ("finished", 1, 3, 1)


def test_on_another_host_the_heartbeat_decides(db_url: str, db_path: Path) -> None:
    SQLRunHistory(db_url, run_name="far").close()
    now_ms = time.time_ns() // 1_000_000
    with sqlite3.connect(str(db_path)) as conn:  # the run as another machine holds it
        conn.execute("UPDATE runs SET status = 'running', host = 'elsewhere', pid = 1, heartbeat_at = ?", (now_ms,))
    before = dump(db_path)

    with pytest.raises(RunInUseError, match="Run 'far' is held by live process 1 on elsewhere"):
        SQLRunHistory(db_url, run_name="far", resume="allow")
    assert dump(db_path) == before

    with sqlite3.connect(str(db_path)) as conn:  # 61 s of silence: past its 60 s bound
        conn.execute("UPDATE runs SET heartbeat_at = ?", (now_ms - 61_000,))
    with SQLRunHistory(db_url, run_name="far", resume="allow") as history:
        history.flush()
        assert run_row(db_path, "far")[0] == "running"
    ((payload,),) = rows(db_path, "SELECT payload FROM v_events WHERE kind = 'resumed'")
    assert json.loads(payload)["previous_status"] == "crashed"
    assert rows(db_path, "SELECT status, host FROM runs") == [("finished", socket.gethostname())]


# -- users' own events ----------------------------------------------------------------------


def test_log_event_records_user_events_at_the_current_stage_and_epoch(db_url: str, db_path: Path) -> None:
    with SQLRunHistory(db_url, run_name="own") as history:
        history.log_event("note", text="before any metric")
        history.update_metric("loss", 1.0)
        history._increment_epoch()
        history.log_event("lr_change", old=0.1, new=0.01, groups=[0, 1])
        history.reset()
        history.update_metric("loss", 0.5)
        history.log_event("checkpoint", path="ckpt/epoch_1", best=True, metrics={"loss": 0.5})

    assert events(db_path) == [
        (1, 1, "note", {"text": "before any metric"}),
        (1, 2, "lr_change", {"old": 0.1, "new": 0.01, "groups": [0, 1]}),
        (2, 1, "checkpoint", {"path": "ckpt/epoch_1", "best": True, "metrics": {"loss": 0.5}}),
    ]


def test_log_event_refuses_bad_kinds_and_payloads_and_records_nothing(db_url: str, db_path: Path) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with SQLRunHistory(db_url, run_name="bad") as history:
        history.flush()
        before = dump(db_path)
        for kind, message in [
            ("", "An event kind must be a non-empty str, not ''."),
            (3, "An event kind must be a non-empty str, not 3."),
            (None, "An event kind must be a non-empty str, not None."),
        ]:
            with pytest.raises(TypeError) as raised:
                history.log_event(kind, x=1)  # type: ignore[arg-type]
            assert str(raised.value) == message
        with pytest.raises(TypeError, match=r"^The payload of event 'loop' cannot be stored as JSON: Circular reference detected$"):
            history.log_event("loop", items=loop)
        history.flush()
        assert {t: r for t, r in dump(db_path).items() if t != "runs"} == {t: r for t, r in before.items() if t != "runs"}
    assert events(db_path) == []


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def test_log_event_payloads_are_always_valid_json(db_url: str, db_path: Path) -> None:
    with SQLRunHistory(db_url, run_name="nan") as history:
        history.log_event("fine", lr=0.1)
        try:
            history.log_event("lr_change", lr=float("nan"), top=float("inf"))
        except TypeError:
            pass  # refusing it at the call site is as good as storing it as valid JSON

    for (payload,) in rows(db_path, "SELECT payload FROM v_events"):
        json.loads(payload, parse_constant=_no_constants)
    assert ("fine", 0.1) in rows(db_path, "SELECT kind, json_extract(payload, '$.lr') FROM v_events")


def test_recording_into_a_closed_history_is_an_error(db_url: str, db_path: Path) -> None:
    history = SQLRunHistory(db_url, run_name="closed")
    history.update_metric("loss", 1.0)
    history.close()
    before = dump(db_path)

    with pytest.raises(RunHistorySQLError, match="is closed"):
        history.log_event("late", x=1)
    with pytest.raises(RunHistorySQLError, match="is closed"):
        history.update_metric("loss", 2.0)
    assert dump(db_path) == before
