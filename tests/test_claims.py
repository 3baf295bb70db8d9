"""Claiming a run is atomic: of 4 processes racing ``resume="allow"`` on one finished run, exactly
one continues it; the others get ``RunInUseError`` at once and write nothing.

Four long-lived racers (``tests/scripts/claim_race.py``) play 50 rounds per backend. In each round
the test releases them together (a file they poll for every millisecond), each constructs
``SQLRunHistory(resume="allow")`` and reports; the winner records the round number, and once all
four have reported it closes the run (``finished`` again) for the next round.

A writer whose run another process has continued meanwhile (its heartbeat went stale) commits
nothing more into it.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runhistory_sql import SQLRunHistory
from helpers import dump, query, script_env
from helpers import execute

ROOT = Path(__file__).resolve().parent.parent
RACER = ROOT / "tests" / "scripts" / "claim_race.py"
RACERS, ROUNDS = 4, 50
RUN = "contested"
DEADLINE_S = 240.0
#: "at once": a loser is refused well before any timeout (busy timeout, close timeout: 60 s)
REFUSED_WITHIN_S = 10.0
#: the outcomes of a round, sorted: one winner, three refused
WON = ["claimed"] + ["in_use"] * (RACERS - 1)


def _wait_for(paths: list[Path], procs: list[subprocess.Popen[bytes]], deadline: float, errs: list[Path]) -> None:
    while not all(p.exists() for p in paths):
        for proc, err in zip(procs, errs):
            assert proc.poll() is None, f"racer {proc.pid} ended ({proc.returncode}): {err.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {[p.name for p in paths if not p.exists()]}"
        time.sleep(0.002)


def _race(url: str, folder: Path) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]], list[int], list[str]]:
    """Run the rounds; return each round's reports (by racer), closings, the racers' pids and stderr."""
    deadline = time.monotonic() + DEADLINE_S
    errs = [folder / f"racer-{i}.err" for i in range(RACERS)]
    procs = []
    try:
        for i in range(RACERS):
            with errs[i].open("w") as err:
                procs.append(subprocess.Popen(
                    [sys.executable, str(RACER), url, RUN, str(i), str(ROUNDS), str(folder)],
                    cwd=folder, env=script_env(), stdout=subprocess.DEVNULL, stderr=err,
                ))
        _wait_for([folder / f"ready-{i}" for i in range(RACERS)], procs, deadline, errs)
        reports, closings = [], []
        for r in range(ROUNDS):
            (folder / f"go-{r}").touch()
            paths = [folder / f"{r}-{i}.json" for i in range(RACERS)]
            _wait_for(paths, procs, deadline, errs)
            reports.append([json.loads(p.read_text()) for p in paths])
            (folder / f"end-{r}").touch()
            # fail at the first bad round (a second claimant's close would take its 5 s timeout)
            assert sorted(x["outcome"] for x in reports[-1]) == WON, f"round {r}: {reports[-1]}"
            claimed = [i for i, x in enumerate(reports[-1]) if x["outcome"] == "claimed"]
            closed = [folder / f"closed-{r}-{i}.json" for i in claimed]
            _wait_for(closed, procs, deadline, errs)
            closings.append([json.loads(p.read_text()) for p in closed])
        codes = [proc.wait(max(1.0, deadline - time.monotonic())) for proc in procs]
        assert codes == [0] * RACERS, [e.read_text()[-3000:] for e in errs]
        return reports, closings, [proc.pid for proc in procs], [e.read_text() for e in errs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_four_processes_racing_for_one_finished_run_exactly_one_wins_each_round(url: str, tmp_path: Path) -> None:
    SQLRunHistory(url, experiment="race", run_name=RUN).close()  # a finished run to fight over

    reports, closings, pids, stderr = _race(url, tmp_path)

    assert [sorted(x["outcome"] for x in round_) for round_ in reports] == [WON] * ROUNDS
    winners = [pids[[x["outcome"] for x in round_].index("claimed")] for round_ in reports]
    host = socket.gethostname()
    for round_, winner in zip(reports, winners):
        refused = [x for x in round_ if x["outcome"] == "in_use"]
        assert [x["message"] for x in refused] == [
            f"Run {RUN!r} is held by live process {winner} on {host}. Wait for it to end, or start a "
            "new run with another run_name."
        ] * (RACERS - 1)
        assert max(x["seconds"] for x in refused) < REFUSED_WITHIN_S
    assert [x["message"] for round_ in reports for x in round_ if x["outcome"] == "claimed"] == ["flushed=True"] * ROUNDS
    assert closings == [[{"spilled": None}]] * ROUNDS
    assert stderr == [""] * RACERS
    # the run holds one resume per round, by its winner, and the winners' points, each once
    resumed = query(url, "SELECT payload FROM events WHERE kind = 'resumed' ORDER BY id")
    assert [json.loads(p)["pid"] for (p,) in resumed] == winners
    assert query(url, "SELECT seq, value FROM v_metrics WHERE metric = 'round' ORDER BY seq") == [
        (r, float(r)) for r in range(ROUNDS)
    ]
    assert query(url, "SELECT COUNT(*) FROM points") == [(ROUNDS,)]
    assert query(url, "SELECT status, pid FROM runs") == [("finished", winners[-1])]
    seconds = sorted(x["seconds"] for round_ in reports for x in round_)
    print(f"\n{ROUNDS} rounds x {RACERS} racers: constructor median {seconds[len(seconds) // 2]:.3f} s, "
          f"max {seconds[-1]:.3f} s; wins per racer {[winners.count(p) for p in pids]}")


def test_a_writer_whose_run_was_continued_elsewhere_writes_nothing_more_into_it(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNHISTORY_SQL_SPILL_DIR", str(tmp_path))
    history = SQLRunHistory(url, run_name="taken", heartbeat_interval=30.0)
    history.update_metric("loss", 1.0)
    assert history.flush(30)
    # another machine continued the run, as it may once this process's heartbeat is stale
    execute(url, "UPDATE runs SET host = 'elsewhere', pid = 1")
    before = dump(url)

    history.update_metric("loss", 2.0)
    history.log_event("checkpoint", path="ckpt.pt")
    committed = history._writer.flush(30, give_up_on_error=True)
    error = history._writer.last_error_text
    spilled = history.close(timeout=0.5)

    assert not committed
    assert error == (
        f"Run 'taken' is now held by process 1 on elsewhere, not by this one ({os.getpid()} on "
        f"{socket.gethostname()}): its heartbeat went stale and another process continued the run. "
        "Nothing more of this process is written to it; stop this process."
    )
    assert dump(url) == before  # neither the point, the event, nor the end: the run is not ours
    assert spilled is not None and spilled.parent == tmp_path  # kept, not lost
