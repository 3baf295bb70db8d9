"""A real training run that goes on while its PostgreSQL server is stopped, for tests/test_outage.py.

    python tests/scripts/outage_train.py URL RUN_NAME PROGRESS_FILE EPOCHS STEPS STEP_SECONDS [WAIT_AFTER]

- The real pytorch-accelerated Trainer on the demo model, STEPS * 32 train samples (batch 32, so
  STEPS steps per epoch) and 32 eval samples, for EPOCHS epochs; the default callbacks minus the
  tqdm progress bar (stderr is checked by the test).
- After every train step a callback records ``step`` = the global step index (0, 1, 2, ...), a
  value the test knows, then sleeps STEP_SECONDS (the "compute" of a step).
- Progress lines go to PROGRESS_FILE, one per event, flushed at once, each with the wall-clock
  time: ``STEP <global step> <epoch> <unix time>``, and ``EPOCH_END <epoch> <unix time> <seconds
  spent in _increment_epoch>`` right after the trainer's ``_increment_epoch()`` returned.
- At the end (``close()`` with the default timeout; ``None`` means nothing was spilled) it prints
  ``RESULT {json}``: the mirror, the epoch and the spill path.
- With WAIT_AFTER (an epoch), the run stops in the middle of training, as if waiting to be
  preempted: when epoch WAIT_AFTER ends, it writes ``MIRROR <epoch> {json}`` (every value recorded
  so far: nothing more will be) as ``_increment_epoch()`` starts its commit (the epoch's end is
  queued by then) and, once that returns, ``WAITING <unix time>``; then it sleeps (for up to
  10 minutes) until it is signalled.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

import torch
from pytorch_accelerated import Trainer
from pytorch_accelerated.callbacks import ProgressBarCallback, TrainerCallback
from pytorch_accelerated.trainer import DEFAULT_CALLBACKS
from torch import nn

from runhistory_sql import RunTrackingCallback, SQLRunHistory
from runhistory_sql.trainer.demo import make_datasets, make_model

BATCH_SIZE = 32


class TimedHistory(SQLRunHistory):
    """Measures how long every ``_increment_epoch`` (the epoch-end commit) holds training up."""

    progress: TextIO
    wait_after: int = 0

    def _increment_epoch(self) -> None:
        waits = self.current_epoch == self.wait_after
        if waits:
            self._say_mirror_when_committing()
        started = time.time()
        super()._increment_epoch()
        ended = time.time()
        self.progress.write(f"EPOCH_END {self.current_epoch - 1} {ended:.3f} {ended - started:.3f}\n")
        self.progress.flush()
        if waits:
            self.progress.write(f"WAITING {time.time():.3f}\n")
            self.progress.flush()
            time.sleep(600)

    def _say_mirror_when_committing(self) -> None:
        """Write the MIRROR line once the epoch's end is queued, as its commit starts (which, the
        database being locked, may hang): from then on nothing more is recorded."""
        writer = self._writer
        assert writer is not None
        flush = writer.flush

        def say_then_flush(*args: Any, **kwargs: Any) -> bool:
            writer.flush = flush  # type: ignore[method-assign]
            mirror = {m: self.get_metric_values(m) for m in sorted(self.get_metric_names())}
            self.progress.write(f"MIRROR {self.current_epoch - 1} {json.dumps(mirror)}\n")
            self.progress.flush()
            return flush(*args, **kwargs)

        writer.flush = say_then_flush  # type: ignore[method-assign]


class StepProgress(TrainerCallback):
    def __init__(self, progress: TextIO, step_seconds: float) -> None:
        self.progress, self.step_seconds, self.global_step = progress, step_seconds, 0

    def on_train_step_end(self, trainer: Any, **kwargs: Any) -> None:
        history = trainer.run_history
        history.update_metric("step", self.global_step)
        time.sleep(self.step_seconds)  # the step's "compute"
        self.progress.write(f"STEP {self.global_step} {history.current_epoch} {time.time():.3f}\n")
        self.progress.flush()
        self.global_step += 1


def main(
    url: str, run_name: str, progress_file: str, epochs: int, steps: int, step_seconds: float, wait_after: int = 0,
) -> None:
    torch.manual_seed(0)
    train_ds, eval_ds = make_datasets(n_train=steps * BATCH_SIZE, n_eval=BATCH_SIZE, seed=0)
    model = make_model(seed=0)
    with open(progress_file, "a", encoding="utf-8") as progress:
        history = TimedHistory(url, experiment="outage", run_name=run_name)
        history.progress, history.wait_after = progress, wait_after
        callbacks = [cb for cb in DEFAULT_CALLBACKS if cb is not ProgressBarCallback]
        trainer = Trainer(
            model, loss_func=nn.MSELoss(), optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
            callbacks=[*callbacks, RunTrackingCallback(), StepProgress(progress, step_seconds)],
            run_history=history,
        )
        trainer.train(train_dataset=train_ds, eval_dataset=eval_ds, num_epochs=epochs, per_device_batch_size=BATCH_SIZE)
        mirror = {m: history.get_metric_values(m) for m in sorted(history.get_metric_names())}
        epoch = history.current_epoch
        progress.write(f"TRAINED {time.time():.3f}\n")
        progress.flush()
        spilled = history.close()
        progress.write(f"CLOSED {time.time():.3f}\n")
    print("RESULT " + json.dumps({
        "run_id": history.run_id, "mirror": mirror, "epoch": epoch,
        "spilled": str(spilled) if spilled else None, "transactions": history.write_transactions,
    }), flush=True)


if __name__ == "__main__":
    url_, name_, progress_, epochs_, steps_, step_s_ = sys.argv[1:7]
    main(url_, name_, progress_, int(epochs_), int(steps_), float(step_s_), int((sys.argv[7:] or ["0"])[0]))
