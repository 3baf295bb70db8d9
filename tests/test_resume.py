"""Crash and resume, end to end: a real training process killed with SIGKILL mid-epoch, restarted.

``tests/scripts/resumable_train.py`` trains the demo model for 4 epochs (16 steps each, with an
eval set) and saves the training state after every epoch (``SaveTrainingStateCallback``, which
saves in ``on_train_epoch_end`` as ``epoch_N``: after epoch N's training steps, before its eval
and before ``_increment_epoch``). Three processes, one real SQLite file:

1. ``reference``: uninterrupted, the same seeds;
2. ``crashy``: killed with SIGKILL in the middle of epoch 3 (``epoch_1`` and ``epoch_2`` saved);
3. ``crashy`` again, right after the run reads ``crashed``: ``resume="allow"`` and
   ``train(..., num_epochs=4, resume_from=".../epoch_2")``.

Observed on pytorch-accelerated 0.1.61 (pinned below):
- upstream calls ``_set_epoch(2)``: epoch 2 is run again, on weights that already had epoch 2's
  training steps, so its new values differ from the first ones; the first ones (and ``lr`` of
  epoch 3, recorded before the kill) stay in ``points`` with ``rev`` 1;
- the continued ``train(num_epochs=4)`` runs 4 loop iterations, but its step limit
  (``max_num_train_steps`` = 4 * 16 + 1 = 65) is compared with absolute steps
  (``(current_epoch - 1) * 16 + step``): epochs 2, 3 and 4 run their 16 steps, and epoch 5 stops
  after 1 step, yet is recorded as an epoch (train loss of that one step, a full eval). The run
  ends with 5 epochs of metrics and ``current_epoch`` 6, where the uninterrupted run has 4 and 5.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import rows, script_env

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "scripts" / "resumable_train.py"
NUM_EPOCHS, KILL_EPOCH, STEPS = 4, 3, 16
METRICS = ["eval_loss_epoch", "lr", "train_loss_epoch"]
#: heartbeat 0.2 s in the script, stale after 6 beats
STALE_AFTER_MS = 1200
CRASHED_DEADLINE_S = 15.0
PROCESS_TIMEOUT_S = 120

pytestmark = pytest.mark.slow




def _launch(cwd: Path, url: str, run_name: str, state_dir: Path, kill_epoch: int) -> tuple[int, int, str, str]:
    """Run the script; return (pid, returncode, stdout, stderr)."""
    command = [sys.executable, str(SCRIPT), url, run_name, str(state_dir), str(NUM_EPOCHS), str(kill_epoch)]
    with subprocess.Popen(
        command, cwd=cwd, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return proc.pid, proc.returncode, out, err


def _tagged(stdout: str, tag: str) -> dict[str, Any]:
    (line,) = [line for line in stdout.splitlines() if line.startswith(tag + " ")]
    return json.loads(line[len(tag) + 1:])


def _status(db: Path, run_name: str) -> str:
    ((status,),) = rows(db, "SELECT status FROM v_runs WHERE run_name = ?", (run_name,))
    return status


def _effective(db: Path, run_name: str) -> list[tuple[Any, ...]]:
    """(metric, seq, epoch, value) of the run's effective history, from ``v_metrics``."""
    return rows(
        db, "SELECT metric, seq, epoch, value FROM v_metrics WHERE run_name = ? ORDER BY metric, seq",
        (run_name,),
    )


def _by_metric(points: list[tuple[Any, ...]]) -> dict[str, list[tuple[int, float]]]:
    found: dict[str, list[tuple[int, float]]] = {}
    for metric, _seq, epoch, value in points:
        found.setdefault(metric, []).append((epoch, value))
    return found


def _as_points(mirror: dict[str, list[float]], epochs: dict[str, list[int]]) -> list[tuple[Any, ...]]:
    return [
        (metric, seq, epochs[metric][seq], value)
        for metric in sorted(mirror) for seq, value in enumerate(mirror[metric])
    ]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the reference, the crash and the restart once; the tests below read what happened."""
    tmp = tmp_path_factory.mktemp("resume")
    db = tmp / "runs.db"
    url = f"sqlite:///{db}"
    seen: dict[str, Any] = {"db": db, "host": socket.gethostname()}

    _, code, out, err = _launch(tmp, url, "reference", tmp / "reference_state", 0)
    assert code == 0, err[-4000:]
    seen["reference"] = _tagged(out, "RESULT")

    state = tmp / "state"
    pid, code, out, err = _launch(tmp, url, "crashy", state, KILL_EPOCH)
    reaped_at = time.monotonic()
    seen["kill"] = {
        "pid": pid, "returncode": code, "before": _tagged(out, "BEFORE_KILL") if "BEFORE_KILL" in out else None,
        "stderr": err[-4000:], "saved_states": sorted(p.name for p in state.iterdir()),
        "effective": _effective(db, "crashy"),
        "runs_row": rows(
            db, "SELECT status, pid, host, heartbeat_at, stale_after_ms, ended_at, current_epoch "
            "FROM runs WHERE name = 'crashy'",
        ),
    }
    # the run must read `crashed` once its heartbeat is older than the bound (1.2 s), never stay `running`
    statuses = []
    while time.monotonic() - reaped_at < CRASHED_DEADLINE_S:
        statuses.append(_status(db, "crashy"))
        if statuses[-1] == "crashed":
            break
        time.sleep(0.05)
    seen["kill"]["statuses"], seen["kill"]["crashed_after_s"] = statuses, time.monotonic() - reaped_at

    pid, code, out, err = _launch(tmp, url, "crashy", state, 0)
    seen["resume"] = {
        "pid": pid, "returncode": code, "stderr": err[-4000:],
        "result": _tagged(out, "RESULT") if code == 0 else None,
    }
    return seen


def test_the_killed_run_reads_crashed_with_its_finished_epochs_committed(story: dict[str, Any]) -> None:
    kill = story["kill"]
    assert kill["returncode"] == -9, kill["stderr"]
    before = kill["before"]
    assert (before["epoch"], before["step"]) == (KILL_EPOCH, STEPS // 2)
    assert kill["saved_states"] == ["epoch_1", "epoch_2"]

    # nobody closed the run: the table still says running, held by the dead pid on this host, and
    # its heartbeat was fresh at the kill, so it read `running` until then
    ((status, pid, host, heartbeat_at, stale_after_ms, ended_at, current_epoch),) = kill["runs_row"]
    assert (status, pid, host, stale_after_ms, ended_at, current_epoch) == (
        "running", kill["pid"], story["host"], STALE_AFTER_MS, None, KILL_EPOCH,
    )
    assert 0 <= before["time_ms"] - heartbeat_at < STALE_AFTER_MS
    assert kill["statuses"][-1] == "crashed", kill["statuses"]
    assert set(kill["statuses"][:-1]) <= {"running"}

    # durability: when _increment_epoch returned, every point of the epoch was committed (read
    # from inside at each epoch start, before anything else was recorded in that epoch)
    assert before["committed"] == [
        [1, {}],
        [2, {metric: [1] for metric in METRICS}],
        [3, {metric: [1, 2] for metric in METRICS}],
    ]
    # at the kill: epochs 1 and 2 of everything, and `lr` of epoch 3 (flushed just before the kill)
    epochs = {"eval_loss_epoch": [1, 2], "lr": [1, 2, 3], "train_loss_epoch": [1, 2]}
    assert kill["effective"] == _as_points(before["mirror"], epochs)


def test_the_restart_continues_the_same_run_and_finishes(story: dict[str, Any]) -> None:
    resume, db = story["resume"], story["db"]
    assert resume["returncode"] == 0, resume["stderr"]
    result = resume["result"]
    assert result["resumed_from"] == "epoch_2"
    assert result["epoch_at_open"] == KILL_EPOCH  # the run's epoch when the process died
    assert result["status_at_start"] == "running"
    assert rows(db, "SELECT run_name, status, current_epoch, num_stages FROM v_runs ORDER BY run_id") == [
        ("reference", "finished", 5, 1),
        ("crashy", "finished", 6, 1),
    ]
    assert rows(db, "SELECT pid, host FROM runs WHERE name = 'crashy'") == [(resume["pid"], story["host"])]

    events = rows(
        db,
        "SELECT e.epoch, e.kind, e.payload FROM v_events e JOIN v_runs r ON r.run_id = e.run_id "
        "WHERE r.run_name = 'crashy' ORDER BY e.recorded_at, e.epoch",
    )
    by_kind: dict[str, list[tuple[int, Any]]] = {}
    for epoch, kind, payload in events:
        by_kind.setdefault(kind, []).append((epoch, json.loads(payload)))
    assert by_kind["resumed"] == [(KILL_EPOCH, {
        "host": story["host"], "pid": resume["pid"], "from_epoch": KILL_EPOCH, "stage": 1,
        "previous_status": "crashed",
    })]
    assert by_kind["rewind"] == [(2, {"to_epoch": 2, "superseded_points": 4, "rev": 1})]
    assert sorted(epoch for epoch, _ in by_kind["epoch_end"]) == [1, 2, 2, 3, 4, 5]
    assert [epoch for epoch, _ in by_kind["training_run_start"]] == [1, 2]
    assert by_kind["training_run_end"] == [(6, {"epoch": 6})]
    assert set(by_kind) == {"training_run_start", "epoch_end", "resumed", "rewind", "training_run_end"}


def test_the_effective_history_has_each_epoch_once_and_matches_the_uninterrupted_run(story: dict[str, Any]) -> None:
    db, result = story["db"], story["resume"]["result"]
    reference = story["reference"]["mirror"]
    effective = _effective(db, "crashy")
    by_metric = _by_metric(effective)

    # exactly one point per metric and epoch, epochs contiguous from 1, seq contiguous from 0
    assert sorted(by_metric) == METRICS
    for metric, points in by_metric.items():
        assert [epoch for epoch, _ in points] == [1, 2, 3, 4, 5], metric
    assert [seq for _, seq, _, _ in effective] == [0, 1, 2, 3, 4] * len(METRICS)

    # the resumed process's mirror is exactly the effective history
    assert effective == _as_points(result["mirror"], {metric: [1, 2, 3, 4, 5] for metric in METRICS})

    # epochs before the resumed one (2) are identical to the uninterrupted run, bit for bit;
    # the killed process had matched it up to the kill (epochs 1-2, and lr up to epoch 3)
    for metric in METRICS:
        assert result["mirror"][metric][:1] == reference[metric][:1], metric
    before = story["kill"]["before"]["mirror"]
    assert before == {
        "eval_loss_epoch": reference["eval_loss_epoch"][:2], "lr": reference["lr"][:3],
        "train_loss_epoch": reference["train_loss_epoch"][:2],
    }
    # the re-run epoch 2 trained on weights that already had epoch 2's steps: new values
    for metric in ("eval_loss_epoch", "train_loss_epoch"):
        assert result["mirror"][metric][1] != reference[metric][1], metric


def test_points_recorded_before_the_kill_are_kept_superseded(story: dict[str, Any]) -> None:
    db, reference = story["db"], story["reference"]["mirror"]
    superseded = rows(
        db,
        "SELECT m.name, p.seq, p.epoch, p.rev, p.value FROM points p "
        "JOIN series s ON s.id = p.series_id JOIN metrics m ON m.id = s.metric_id "
        "JOIN runs r ON r.id = s.run_id WHERE r.name = 'crashy' AND p.rev > 0 ORDER BY m.name, p.seq",
    )
    assert superseded == [
        ("eval_loss_epoch", 1, 2, 1, reference["eval_loss_epoch"][1]),
        ("lr", 1, 2, 1, reference["lr"][1]),
        ("lr", 2, 3, 1, reference["lr"][2]),
        ("train_loss_epoch", 1, 2, 1, reference["train_loss_epoch"][1]),
    ]
    # nothing was deleted: 15 effective points and the 4 superseded ones
    assert rows(
        db, "SELECT COUNT(*) FROM points p JOIN series s ON s.id = p.series_id "
        "JOIN runs r ON r.id = s.run_id WHERE r.name = 'crashy'",
    ) == [(19,)]


def test_the_continued_train_runs_epochs_by_upstreams_absolute_step_count(story: dict[str, Any]) -> None:
    reference, result = story["reference"], story["resume"]["result"]
    assert reference["epochs_run"] == [[1, STEPS], [2, STEPS], [3, STEPS], [4, STEPS]]
    assert reference["current_epoch"] == 5
    # asked for 4 epochs from epoch 2: epochs 2-4 in full, then epoch 5 stops after one step,
    # because max_num_train_steps (4 * 16 + 1) is compared with absolute steps
    assert (result["num_epochs_asked"], result["run_config_num_epochs"]) == (4, 4)
    assert (result["max_num_train_steps"], result["num_update_steps_per_epoch"]) == (NUM_EPOCHS * STEPS + 1, STEPS)
    assert result["epochs_run"] == [[2, STEPS], [3, STEPS], [4, STEPS], [5, 1]]
    assert result["current_epoch"] == 6

    # inside the resumed process, from its second epoch on, every finished epoch was committed
    # when the next one started (its first epoch start may still see the rewind pending)
    assert result["committed"][1:] == [
        [3, {metric: [1, 2] for metric in METRICS}],
        [4, {metric: [1, 2, 3] for metric in METRICS}],
        [5, {metric: [1, 2, 3, 4] for metric in METRICS}],
    ]
