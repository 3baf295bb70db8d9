"""Crash and resume, end to end: a real training process killed with SIGKILL mid-epoch, restarted.

``tests/scripts/resumable_train.py`` trains the demo model for 4 epochs (16 steps each, with an
eval set) and saves the training state after every epoch (``SaveTrainingStateCallback``, which
saves in ``on_train_epoch_end`` as ``epoch_N``: after epoch N's training steps, before its eval
and before ``_increment_epoch``). Three processes, one database (a real SQLite file, and a
real PostgreSQL database: the two stories run side by side, each step of one beside the same step
of the other):

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

from helpers import query, script_env
from tracking_support import BACKENDS, Finished, backend_of, databases, finish

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "scripts" / "resumable_train.py"
NUM_EPOCHS, KILL_EPOCH, STEPS = 4, 3, 16
METRICS = ["eval_loss_epoch", "lr", "train_loss_epoch"]
#: heartbeat 0.2 s in the script, stale after 6 beats
STALE_AFTER_MS = 1200
CRASHED_DEADLINE_S = 15.0

pytestmark = pytest.mark.slow

#: backend -> (its folder, its database URL)
Places = dict[str, tuple[Path, str]]


def _launch_all(places: Places, run_name: str, state: str, kill_epoch: int) -> dict[str, tuple[int, Finished]]:
    """Run the script on every backend at once (its state in the backend's folder / ``state``);
    return backend -> (pid, what it did)."""
    procs = {
        backend: subprocess.Popen(
            [sys.executable, str(SCRIPT), url, run_name, str(folder / state), str(NUM_EPOCHS), str(kill_epoch)],
            cwd=folder, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for backend, (folder, url) in places.items()
    }
    return {backend: (proc.pid, finish(proc)) for backend, proc in procs.items()}


def _tagged(stdout: str, tag: str) -> dict[str, Any]:
    (line,) = [line for line in stdout.splitlines() if line.startswith(tag + " ")]
    return json.loads(line[len(tag) + 1:])


def _status(url: str, run_name: str) -> str:
    ((status,),) = query(url, "SELECT status FROM v_runs WHERE run_name = :name", {"name": run_name})
    return status


def _effective(url: str, run_name: str) -> list[tuple[Any, ...]]:
    """(metric, seq, epoch, value) of the run's effective history, from ``v_metrics``."""
    return query(
        url, "SELECT metric, seq, epoch, value FROM v_metrics WHERE run_name = :name ORDER BY metric, seq",
        {"name": run_name},
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
def stories(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Run the reference, the crash and the restart once on every backend; backend -> what
    happened, which the tests below read."""
    places = {backend: place for (backend, _), place in databases(request, tmp_path_factory, ["resume"]).items()}
    seen: dict[str, dict[str, Any]] = {
        backend: {"url": url, "host": socket.gethostname()} for backend, (_, url) in places.items()
    }

    for backend, (_, done) in _launch_all(places, "reference", "reference_state", 0).items():
        assert done.returncode == 0, done.stderr[-4000:]
        seen[backend]["reference"] = _tagged(done.stdout, "RESULT")

    for backend, (pid, done) in _launch_all(places, "crashy", "state", KILL_EPOCH).items():
        folder, url = places[backend]
        seen[backend]["kill"] = {
            "pid": pid, "returncode": done.returncode, "stderr": done.stderr[-4000:],
            "before": _tagged(done.stdout, "BEFORE_KILL") if "BEFORE_KILL" in done.stdout else None, "saved_states": sorted(p.name for p in (folder / "state").iterdir()),
            "effective": _effective(url, "crashy"),
            "runs_row": query(
                url, "SELECT status, pid, host, heartbeat_at, stale_after_ms, ended_at, current_epoch "
                "FROM runs WHERE name = 'crashy'",
            ),
        }
    reaped_at = time.monotonic()
    for backend, (_, url) in places.items():
        # the run must read `crashed` once its heartbeat is older than the bound (1.2 s), never stay `running`
        statuses = []
        while time.monotonic() - reaped_at < CRASHED_DEADLINE_S:
            statuses.append(_status(url, "crashy"))
            if statuses[-1] == "crashed":
                break
            time.sleep(0.05)
        seen[backend]["kill"]["statuses"] = statuses

    for backend, (pid, done) in _launch_all(places, "crashy", "state", 0).items():
        seen[backend]["resume"] = {
            "pid": pid, "returncode": done.returncode, "stderr": done.stderr[-4000:],
            "result": _tagged(done.stdout, "RESULT") if done.returncode == 0 else None,
        }
    return seen


@pytest.fixture(params=BACKENDS)
def story(request: pytest.FixtureRequest, stories: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What happened on the backend of this test."""
    return stories[backend_of(request)]


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
    resume, url = story["resume"], story["url"]
    assert resume["returncode"] == 0, resume["stderr"]
    result = resume["result"]
    assert result["resumed_from"] == "epoch_2"
    assert result["epoch_at_open"] == KILL_EPOCH  # the run's epoch when the process died
    assert result["status_at_start"] == "running"
    assert query(url, "SELECT run_name, status, current_epoch, num_stages FROM v_runs ORDER BY run_id") == [
        ("reference", "finished", 5, 1),
        ("crashy", "finished", 6, 1),
    ]
    assert query(url, "SELECT pid, host FROM runs WHERE name = 'crashy'") == [(resume["pid"], story["host"])]

    events = query(
        url,
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
    url, result = story["url"], story["resume"]["result"]
    reference = story["reference"]["mirror"]
    effective = _effective(url, "crashy")
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
    url, reference = story["url"], story["reference"]["mirror"]
    superseded = query(
        url,
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
    assert query(
        url, "SELECT COUNT(*) FROM points p JOIN series s ON s.id = p.series_id "
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
