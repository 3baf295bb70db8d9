"""``SQLTracker`` in real processes: ``tests/scripts/tracker_loop.py``, a plain accelerate loop,
on a real SQLite file and a real PostgreSQL database side by side.

- ``torchrun --nproc_per_node 2`` on CPU: one run, each point once, rank 1 sends no SQL at all;
  launched again, both ranks load the last checkpoint and go on at the same step;
- killed with SIGKILL after logging step 13 (states saved after steps 4 and 9), the run reads
  ``crashed``; started again, ``accelerator.load_state(step_9)`` rewinds the run by itself (the
  tracker is registered for checkpointing) and the loop goes on at step 10: each step once,
  contiguous, the points up to step 9 exactly as the dead process wrote them;
- a loop that raises: the run is ``failed`` with an ``exception`` event, as for SQLRunHistory;
- the imports: ``import runhistory_sql`` registers nothing; ``from runhistory_sql import SQLTracker``
  registers ``log_with="runhistory_sql"``.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import query, script_env
from pg_server import free_port
from tracking_support import BACKENDS, backend_of, databases, finish

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "scripts" / "tracker_loop.py"
STEPS, KILL_AT, CHECKPOINT = 20, 13, 9
#: the 2-rank run is launched again for this many steps: it goes on from its checkpoint step_19
MORE_STEPS = 25
METRICS = ["loss", "lr", "w0"]
CRASHED_DEADLINE_S = 15.0

pytestmark = pytest.mark.slow


def _start(
    folder: Path, url: str, run: str, stop_at: int, how: str, *, ranks: int = 0, steps: int = STEPS,
) -> subprocess.Popen[str]:
    launcher = [sys.executable]
    if ranks:
        launcher += ["-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
                     "--master_addr", "127.0.0.1", "--master_port", str(free_port())]
    command = [*launcher, str(SCRIPT), url, run, str(folder), str(steps), str(stop_at), how]
    return subprocess.Popen(command, cwd=folder, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _tagged(stdout: str, tag: str) -> dict[str, Any]:
    (line,) = [line for line in stdout.splitlines() if line.startswith(tag + " ")]
    return json.loads(line[len(tag) + 1:])


def _points(url: str, run: str, effective: bool = True) -> list[tuple[Any, ...]]:
    """(metric, step, value) of the run: its effective points (``v_metrics``), or all (``points``)."""
    if effective:
        sql = "SELECT metric, step, value FROM v_metrics WHERE run_name = :run ORDER BY metric, seq"
    else:
        sql = ("SELECT m.name, p.step, p.value, p.rev FROM points p JOIN series s ON s.id = p.series_id "
               "JOIN metrics m ON m.id = s.metric_id JOIN runs r ON r.id = s.run_id "
               "WHERE r.name = :run ORDER BY m.name, p.rev, p.step")
    return query(url, sql, {"run": run})


def _logged(logged: dict[str, list[list[Any]]]) -> list[tuple[Any, ...]]:
    return [(metric, step, value) for metric in sorted(logged) for step, value in logged[metric]]


def _status(url: str, run: str) -> str:
    ((status,),) = query(url, "SELECT status FROM v_runs WHERE run_name = :run", {"run": run})
    return status


def _wait_crashed(url: str, run: str) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + CRASHED_DEADLINE_S
    while time.monotonic() < deadline:
        seen.append(_status(url, run))
        if seen[-1] == "crashed":
            break
        time.sleep(0.05)
    return seen


@pytest.fixture(scope="module")
def launches(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every launch of this module, once per backend, side by side; backend -> what happened."""
    places = databases(request, tmp_path_factory, ["ddp", "resume", "fail"])
    backends = sorted({backend for backend, _ in places})
    seen: dict[str, dict[str, Any]] = {b: {"url": places[b, "resume"][1], "ddp_url": places[b, "ddp"][1]} for b in backends}

    first = {b: _start(*places[b, "ddp"], "ddp", -1, "finish", ranks=2) for b in backends}
    first |= {(b, "fail"): _start(*places[b, "fail"], "fail", 3, "raise") for b in backends}
    for key, proc in first.items():
        backend, what = key if isinstance(key, tuple) else (key, "ddp")
        seen[backend][what] = finish(proc, timeout=180)
        if what == "ddp":
            folder = places[backend, "ddp"][0]
            seen[backend]["ranks"] = {
                r: json.loads((folder / f"rank{r}.json").read_text()) for r in (0, 1) if (folder / f"rank{r}.json").is_file()
            }
            url = places[backend, "ddp"][1]  # read now: the run is launched again below
            seen[backend]["ddp_rows"] = (query(url, "SELECT run_name, status FROM v_runs"), _points(url, "ddp", effective=False),
                                         _points(url, "ddp"))
        else:
            seen[backend]["fail_url"] = places[backend, "fail"][1]

    more = {b: _start(*places[b, "ddp"], "ddp", -1, "finish", ranks=2, steps=MORE_STEPS) for b in backends}
    kills = {b: _start(*places[b, "resume"], "loop", KILL_AT, "kill") for b in backends}
    for backend, proc in more.items():
        folder = places[backend, "ddp"][0]
        seen[backend]["more"] = finish(proc, timeout=180)
        seen[backend]["more_ranks"] = {
            r: json.loads((folder / f"rank{r}.json").read_text()) for r in (0, 1) if (folder / f"rank{r}.json").is_file()
        }
    for backend, proc in kills.items():
        folder, url = places[backend, "resume"]
        done = finish(proc)
        seen[backend]["kill"] = {
            "done": done, "before": _tagged(done.stdout, "BEFORE_KILL") if "BEFORE_KILL" in done.stdout else None,
            "states": sorted(p.name for p in (folder / "state").iterdir()), "statuses": _wait_crashed(url, "loop"),
            "effective": _points(url, "loop"),
        }
    restarts = {b: _start(*places[b, "resume"], "loop", -1, "finish") for b in backends}
    for backend, proc in restarts.items():
        folder = places[backend, "resume"][0]
        seen[backend]["restart"] = finish(proc)
        report = folder / "rank0.json"
        seen[backend]["restart_report"] = json.loads(report.read_text()) if report.is_file() else None
    return seen


@pytest.fixture(params=BACKENDS)
def launch(request: pytest.FixtureRequest, launches: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return launches[backend_of(request)]


def test_two_ranks_make_one_run_with_each_point_once(launch: dict[str, Any]) -> None:
    done = launch["ddp"]
    assert done.returncode == 0, done.stderr[-4000:]
    zero, one = launch["ranks"][0], launch["ranks"][1]
    assert (zero["num_processes"], zero["is_main"], one["is_main"]) == (2, True, False)
    assert (zero["opened"], one["opened"]) == (True, False)
    assert one["statements"] == 0  # rank 1 never sent a single SQL statement

    runs, stored, effective = launch["ddp_rows"]
    assert runs == [("ddp", "finished")]
    assert stored == [(m, s, v, 0) for m, s, v in _logged(zero["logged"])]
    assert [(m, s) for m, s, _ in effective] == [(m, s) for m in METRICS for s in range(STEPS)]


def test_two_ranks_launched_again_go_on_together_from_the_checkpoint(launch: dict[str, Any]) -> None:
    done, url = launch["more"], launch["ddp_url"]
    assert done.returncode == 0, done.stderr[-4000:]
    zero, one = launch["more_ranks"][0], launch["more_ranks"][1]
    # rank 1 never opened the run: its last_step is the checkpoint's, so both ranks start at 20
    assert [(r["resumed_from"], r["start"], r["opened"]) for r in (zero, one)] == [("step_19", 20, True), ("step_19", 20, False)]
    assert one["statements"] == 0

    assert query(url, "SELECT run_name, status FROM v_runs") == [("ddp", "finished")]
    assert [(m, s) for m, s, _ in _points(url, "ddp")] == [(m, s) for m in METRICS for s in range(MORE_STEPS)]
    assert [json.loads(p) for (p,) in query(url, "SELECT payload FROM v_events WHERE kind = 'rewind'")] == [
        {"to_step": STEPS, "superseded_points": 0, "rev": 1},
    ]


def test_a_killed_loop_leaves_a_crashed_run_with_its_points_committed(launch: dict[str, Any]) -> None:
    kill = launch["kill"]
    assert kill["done"].returncode == -9, kill["done"].stderr[-4000:]
    assert kill["states"] == ["step_4", "step_9"]
    assert kill["statuses"][-1] == "crashed" and set(kill["statuses"][:-1]) <= {"running"}
    assert kill["effective"] == _logged(kill["before"]["logged"])
    assert [s for m, s, _ in kill["effective"] if m == "loss"] == list(range(KILL_AT + 1))


def test_the_restart_rewinds_to_the_checkpoint_by_itself(launch: dict[str, Any]) -> None:
    restart, report, url = launch["restart"], launch["restart_report"], launch["url"]
    assert restart.returncode == 0, restart.stderr[-4000:]
    assert (report["resumed_from"], report["start"]) == (f"step_{CHECKPOINT}", CHECKPOINT + 1)
    assert _status(url, "loop") == "finished"

    effective = _points(url, "loop")
    dead = _logged(launch["kill"]["before"]["logged"])
    # each step once, contiguous; up to the checkpoint's step exactly as the dead process wrote them
    assert [(m, s) for m, s, _ in effective] == [(m, s) for m in METRICS for s in range(STEPS)]
    assert [p for p in effective if p[1] <= CHECKPOINT] == [p for p in dead if p[1] <= CHECKPOINT]
    assert [p for p in effective if p[1] > CHECKPOINT] == _logged(report["logged"])
    # the steps the dead process logged after the checkpoint are kept, superseded
    superseded = [p for p in _points(url, "loop", effective=False) if p[3] > 0]
    assert superseded == [(m, s, v, 1) for m, s, v in dead if s > CHECKPOINT]
    (payload,) = query(url, "SELECT payload FROM v_events WHERE kind = 'rewind'")
    assert json.loads(payload[0]) == {"to_step": CHECKPOINT + 1, "superseded_points": 3 * (KILL_AT - CHECKPOINT), "rev": 1}
    # the model state came back with the checkpoint: the re-run steps compute what they did first
    assert [p for p in effective if CHECKPOINT < p[1] <= KILL_AT] == [p for p in dead if p[1] > CHECKPOINT]


def test_a_loop_that_raises_leaves_a_failed_run_with_the_exception(launch: dict[str, Any]) -> None:
    done, url = launch["fail"], launch["fail_url"]
    assert done.returncode == 1 and "the loss exploded at step 3" in done.stderr
    assert _status(url, "fail") == "failed"
    ((kind, payload),) = query(url, "SELECT kind, payload FROM v_events WHERE kind = 'exception'")
    assert (json.loads(payload)["type"], json.loads(payload)["message"]) == ("builtins.RuntimeError", "the loss exploded at step 3")
    assert [s for m, s, _ in _points(url, "fail") if m == "loss"] == [0, 1, 2, 3]


IMPORTS = """
import sys
import runhistory_sql
from accelerate.tracking import LOGGER_TYPE_TO_CLASS
bare = ("runhistory_sql" in LOGGER_TYPE_TO_CLASS, "runhistory_sql.tracker" in sys.modules)
from runhistory_sql import SQLTracker
from accelerate import Accelerator
accelerator = Accelerator(cpu=True, log_with="runhistory_sql")
print(bare, LOGGER_TYPE_TO_CLASS["runhistory_sql"].__name__, accelerator.log_with)
"""


def test_only_importing_sqltracker_registers_it(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", IMPORTS], cwd=tmp_path, env=script_env(), capture_output=True, text=True)

    assert (done.returncode, done.stdout.strip()) == (0, "(False, False) RegisteredSQLTracker ['runhistory_sql']"), done.stderr
