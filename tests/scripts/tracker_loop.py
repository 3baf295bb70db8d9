"""A plain accelerate training loop that logs with ``SQLTracker``, for tests/test_tracker_processes.py.

    PYTHONPATH=. python tests/scripts/tracker_loop.py URL RUN_NAME WORKDIR STEPS STOP_AT HOW
    ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 tests/scripts/tracker_loop.py ...

- A linear model on synthetic data, on CPU; the batch of step ``s`` is drawn from a generator
  seeded with ``s``, so that a step computes the same values whichever process runs it.
- ``SQLTracker(URL, experiment="loops", run_name=RUN_NAME, resume="allow", heartbeat_interval=0.2)``
  in ``log_with``, registered for checkpointing; ``init_trackers`` with a config.
- Every step logs ``loss``, ``lr`` and ``w0`` (a weight) at its step; after steps 4, 9, 14, ...
  it saves the state to WORKDIR/state/step_N (after logging the step: the checkpoint's step).
- When WORKDIR/state holds ``step_*`` folders, it loads the newest with ``accelerator.load_state``
  (which rewinds the run by itself) and goes on at ``tracker.last_step + 1``.
- After logging step STOP_AT (>= 0), HOW says how the process ends: ``kill`` commits what it
  has, prints ``BEFORE_KILL {json}`` (the points it logged) and SIGKILLs itself; ``raise``
  raises a RuntimeError out of the script. Else it runs to STEPS, calls ``tracker.finish()``, meets the other
  ranks (``wait_for_everyone``) and calls ``end_training()``.
- Every rank writes WORKDIR/rank{N}.json: its rank, whether it is the main process, whether its
  tracker opened a history, the SQL statements it sent, the step it started at, what it logged.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from sqlalchemy import Engine, event

from runhistory_sql import SQLTracker

SAVE_EVERY = 5
statements: Counter[str] = Counter()


@event.listens_for(Engine, "before_cursor_execute")
def _count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
    statements["all"] += 1


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    x = torch.randn(8, 4, generator=g)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(8, 1, generator=g)


def newest_state(state_dir: Path) -> Path | None:
    saved = [p for p in state_dir.glob("step_*") if p.is_dir()] if state_dir.is_dir() else []
    return max(saved, key=lambda p: int(p.name.split("_", 1)[1]), default=None)


def main(url: str, run_name: str, workdir: Path, steps: int, stop_at: int, how: str) -> None:
    torch.manual_seed(0)
    tracker = SQLTracker(url, experiment="loops", run_name=run_name, resume="allow", heartbeat_interval=0.2)
    accelerator = Accelerator(log_with=[tracker])
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(tracker)
    accelerator.init_trackers("ignored-by-instances", config={"lr": 0.05, "model": "linear", "data": {"batch": 8}})
    resumed_from = newest_state(workdir / "state")
    if resumed_from is not None:
        accelerator.load_state(str(resumed_from))
    start = 0 if tracker.last_step is None else tracker.last_step + 1
    logged: dict[str, list[list[Any]]] = {}
    for step in range(start, steps):
        x, y = batch(step)
        loss = torch.nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        values = {"loss": loss.item(), "lr": optimizer.param_groups[0]["lr"],
                  "w0": accelerator.unwrap_model(model).weight[0, 0].item()}
        accelerator.log(values, step=step)
        for key, value in values.items():
            logged.setdefault(key, []).append([step, value])
        if step % SAVE_EVERY == SAVE_EVERY - 1:
            accelerator.save_state(str(workdir / "state" / f"step_{step}"))
        if step == stop_at and how == "kill":
            assert tracker.tracker is not None and tracker.tracker.flush(60.0)
            print(f"\nBEFORE_KILL {json.dumps({'start': start, 'logged': logged})}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        if step == stop_at and how == "raise":
            raise RuntimeError(f"the loss exploded at step {step}")
    (workdir / f"rank{accelerator.process_index}.json").write_text(json.dumps({
        "rank": accelerator.process_index, "num_processes": accelerator.num_processes,
        "is_main": accelerator.is_main_process, "opened": tracker.tracker is not None,
        "statements": statements["all"], "resumed_from": resumed_from.name if resumed_from else None,
        "start": start, "logged": logged,
    }))
    # Finish first, then meet: end_training() destroys the gloo group, and a rank that leaves it
    # while the main one is still committing can abort at exit ("terminate called without an
    # active exception", torch 2.13, seen in CI about 1 run in 10). finish() is a no-op off the
    # main process and a second finish() inside end_training() is a no-op too.
    tracker.finish()
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    url_, name_, workdir_, steps_, stop_, how_ = sys.argv[1:7]
    main(url_, name_, Path(workdir_), int(steps_), int(stop_), how_)
