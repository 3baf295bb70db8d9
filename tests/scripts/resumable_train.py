"""A training job that can be killed with SIGKILL and resumed, for tests/test_resume.py.

    PYTHONPATH=. python tests/scripts/resumable_train.py URL RUN_NAME STATE_DIR NUM_EPOCHS KILL_EPOCH

URL is any database URL (the tests run it on SQLite and PostgreSQL); it reads with ``tests.helpers``.

- Fixed seeds, the demo model and data, one process on CPU, an eval set.
- ``SQLRunHistory(URL, run_name=RUN_NAME, resume="allow", heartbeat_interval=0.2)``.
- ``SaveTrainingStateCallback`` saves the training state to STATE_DIR/epoch_N after every epoch.
- Besides the trainer's ``train_loss_epoch`` and ``eval_loss_epoch``, a callback records ``lr``
  at the start of every epoch, so that a kill mid-epoch leaves a point of that epoch behind.
- At the start of every epoch (right after ``_increment_epoch`` returned) it reads which
  (metric, epoch) points of its run are committed, on a connection of its own (any backend).
- KILL_EPOCH > 0: in the middle of epoch KILL_EPOCH (after step STEPS // 2) the process commits
  what it has (``flush()``), prints ``BEFORE_KILL {json}`` (its mirror, its epoch, the time) and
  kills itself with SIGKILL: no exception, no atexit, no closing.
- When STATE_DIR holds ``epoch_*`` folders, training continues from the newest with
  ``trainer.train(..., resume_from=that_dir)``.
- At the end it prints ``RESULT {json}``: the status of its run in ``v_runs`` as seen from inside
  the run (read at ``on_training_run_start``), the mirror (every metric's values),
  the epochs the trainer ran (with their steps), the run config's epoch and step limits, and the
  committed points seen at each epoch start.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_accelerated.callbacks import SaveTrainingStateCallback, TrainerCallback

from runhistory_sql import RunTrackingCallback, SQLRunHistory
from runhistory_sql.trainer.demo import make_datasets, make_model, make_trainer
from helpers import query

BATCH_SIZE = 32
HEARTBEAT_S = 0.2


def mirror(history: Any) -> dict[str, list[Any]]:
    return {name: history.get_metric_values(name) for name in sorted(history.get_metric_names())}


def emit(tag: str, payload: dict[str, Any]) -> None:
    print(f"\n{tag} {json.dumps(payload)}", flush=True)


class Probe(TrainerCallback):
    """Reads the database from inside the run, on a connection of its own (not the history's):
    the run's status in ``v_runs`` when the training run starts, and the committed points at
    every epoch start."""

    def __init__(self, url: str, run_name: str) -> None:
        self.url, self.run_name = url, run_name
        self.status: str | None = None
        #: [epoch, {metric: [epochs committed]}] at the start of every epoch
        self.committed: list[list[Any]] = []

    def on_training_run_start(self, trainer: Any, **kwargs: Any) -> None:
        ((self.status,),) = query(self.url, "SELECT status FROM v_runs WHERE run_name = :name", {"name": self.run_name})

    def on_train_epoch_start(self, trainer: Any, **kwargs: Any) -> None:
        found: dict[str, list[int]] = {}
        for metric, epoch in query(
            self.url,
            "SELECT metric, epoch FROM v_metrics WHERE run_name = :name ORDER BY metric, seq",
            {"name": self.run_name},
        ):
            found.setdefault(metric, []).append(epoch)
        self.committed.append([trainer.run_history.current_epoch, found])


class RecordLearningRate(TrainerCallback):
    """Records ``lr`` once per epoch, when the epoch starts (listed after ``Probe``)."""

    def on_train_epoch_start(self, trainer: Any, **kwargs: Any) -> None:
        trainer.run_history.update_metric("lr", trainer.optimizer.param_groups[0]["lr"])


class EpochCounter(TrainerCallback):
    """Records every epoch the trainer runs: its number and how many train steps it took."""

    def __init__(self) -> None:
        self.epochs: list[list[int]] = []

    def on_train_epoch_start(self, trainer: Any, **kwargs: Any) -> None:
        self.epochs.append([trainer.run_history.current_epoch, 0])

    def on_train_step_end(self, trainer: Any, **kwargs: Any) -> None:
        self.epochs[-1][1] += 1


class KillMidEpoch(TrainerCallback):
    """SIGKILLs its own process after step ``STEPS // 2`` of epoch ``kill_epoch``: no word, no atexit."""

    def __init__(self, kill_epoch: int, probe: Probe) -> None:
        self.kill_epoch, self.probe = kill_epoch, probe

    def on_train_step_end(self, trainer: Any, step: int, **kwargs: Any) -> None:
        history = trainer.run_history
        if history.current_epoch == self.kill_epoch and step == len(trainer._train_dataloader) // 2:
            # commit the points of this epoch too (``lr``), so that exactly these are left behind
            assert history.flush(60.0), "the points recorded before the kill were not committed"
            emit("BEFORE_KILL", {
                "epoch": history.current_epoch, "step": step, "mirror": mirror(history),
                "committed": self.probe.committed, "time_ms": time.time_ns() // 1_000_000,
            })
            os.kill(os.getpid(), signal.SIGKILL)


def newest_state(state_dir: Path) -> Path | None:
    saved = [p for p in state_dir.glob("epoch_*") if p.is_dir()] if state_dir.is_dir() else []
    return max(saved, key=lambda p: int(p.name.split("_", 1)[1]), default=None)


def main(url: str, run_name: str, state_dir: Path, num_epochs: int, kill_epoch: int) -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    train_ds, eval_ds = make_datasets(seed=0)
    resume_from = newest_state(state_dir)
    with SQLRunHistory(url, run_name=run_name, resume="allow", heartbeat_interval=HEARTBEAT_S) as history:
        probe, counter = Probe(url, run_name), EpochCounter()
        callbacks: list[Any] = [
            SaveTrainingStateCallback(save_dir=str(state_dir), save_every_n_epochs=1, save_at_end=False),
            RunTrackingCallback(),
            probe,
            RecordLearningRate(),
            counter,
        ]
        if kill_epoch > 0:
            callbacks.append(KillMidEpoch(kill_epoch, probe))
        trainer = make_trainer(make_model(seed=0), history, callbacks=callbacks)
        epoch_at_open = history.current_epoch
        trainer.train(
            train_dataset=train_ds, eval_dataset=eval_ds, num_epochs=num_epochs,
            per_device_batch_size=BATCH_SIZE,
            train_dataloader_kwargs={"num_workers": 0}, eval_dataloader_kwargs={"num_workers": 0},
            resume_from=str(resume_from) if resume_from is not None else None,
        )
        emit("RESULT", {
            "status_at_start": probe.status,
            "resumed_from": resume_from.name if resume_from is not None else None,
            "epoch_at_open": epoch_at_open,
            "epochs_run": counter.epochs,
            "current_epoch": history.current_epoch,
            "num_epochs_asked": num_epochs,
            "run_config_num_epochs": trainer.run_config.num_epochs,
            "max_num_train_steps": trainer.run_config.max_num_train_steps,
            "num_update_steps_per_epoch": trainer.run_config.num_update_steps_per_epoch,
            "committed": probe.committed,
            "mirror": mirror(history),
        })


if __name__ == "__main__":
    url_, name_, state_, epochs_, kill_ = sys.argv[1:6]
    main(url_, name_, Path(state_), int(epochs_), int(kill_))
