"""One of the 4 racers of tests/test_claims.py: in every round, try to claim one finished run.

    python tests/scripts/claim_race.py URL RUN_NAME INDEX ROUNDS DIR

One long-lived process runs all ROUNDS rounds (importing torch once), synchronised with the test
and the other racers through files in DIR:

- once imported, it creates ``DIR/ready-INDEX``;
- in round R it waits for ``DIR/go-R``, then constructs
  ``SQLRunHistory(URL, experiment="race", run_name=RUN_NAME, resume="allow")``. If that claims the
  run, it records ``round`` = R and flushes, so that a second claimant's point would collide with
  it (same series, same seq);
- it reports ``DIR/R-INDEX.json``: ``{"outcome": "claimed" | "in_use" | "<error type>",
  "message": ..., "seconds": how long the constructor took}``;
- a claimant then waits for ``DIR/end-R`` (the test creates it once all four have reported), closes
  the history with a 5 s timeout and reports ``DIR/closed-R-INDEX.json``: ``{"spilled": path or null}``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from runhistory_sql import RunInUseError, SQLRunHistory

WAIT_DEADLINE_S = 120.0


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT_DEADLINE_S
    while not path.exists():
        if time.monotonic() > deadline:
            sys.exit(f"{path} did not appear within {WAIT_DEADLINE_S} s")
        time.sleep(0.001)


def report(path: Path, data: dict[str, object]) -> None:
    part = path.with_suffix(".part")
    part.write_text(json.dumps(data))
    part.rename(path)  # the test never reads half a report


def race(url: str, run_name: str, round_: int) -> tuple[SQLRunHistory | None, dict[str, object]]:
    started = time.monotonic()
    try:
        history = SQLRunHistory(url, experiment="race", run_name=run_name, resume="allow")
    except RunInUseError as e:
        return None, {"outcome": "in_use", "message": str(e), "seconds": time.monotonic() - started}
    except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
        return None, {"outcome": type(e).__name__, "message": str(e), "seconds": time.monotonic() - started}
    seconds = time.monotonic() - started
    history.update_metric("round", float(round_))
    flushed = history.flush(10.0)
    return history, {"outcome": "claimed", "message": f"flushed={flushed}", "seconds": seconds}


def main(url: str, run_name: str, index: int, rounds: int, folder: Path) -> None:
    (folder / f"ready-{index}").touch()
    for round_ in range(rounds):
        wait_for(folder / f"go-{round_}")
        history, result = race(url, run_name, round_)
        report(folder / f"{round_}-{index}.json", result)
        if history is not None:
            wait_for(folder / f"end-{round_}")
            spilled = history.close(timeout=5.0)
            report(folder / f"closed-{round_}-{index}.json", {"spilled": str(spilled) if spilled else None})


if __name__ == "__main__":
    url_, name_, index_, rounds_, folder_ = sys.argv[1:6]
    main(url_, name_, int(index_), int(rounds_), Path(folder_))
