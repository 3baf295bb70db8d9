"""One of the 16 jobs of tests/test_concurrency.py: writes its own run, starting at a common signal.

    python tests/scripts/concurrent_job.py URL RUN_NAME INDEX EPOCHS POINTS READY_DIR GO_FILE MODE

- Imports everything first (torch included; a training job also builds its model, optimizer and
  data), then creates ``READY_DIR/RUN_NAME`` and waits until
  ``GO_FILE`` exists, so that all jobs open their history (and, on an empty database, race to
  create the schema) at the same moment.
- MODE ``write``: ``SQLRunHistory(URL, experiment="concurrency", run_name=RUN_NAME)``; for each of
  EPOCHS epochs, POINTS rounds of ``update_metric`` on the metrics ``a``, ``b`` and ``c`` with the
  values of :func:`value`, then ``_increment_epoch()``.
- MODE ``train``: the real pytorch-accelerated Trainer on the demo model and a small slice of the
  demo data (64 train / 32 eval samples, batch 32: 2 steps per epoch) for EPOCHS epochs, with
  ``RunTrackingCallback``. The default callbacks minus ``ProgressBarCallback``, whose tqdm bars
  would fill stderr (the test wants stderr empty).
- ``close()`` must return ``None`` (nothing spilled). At the end it prints ``RESULT {json}``: the
  mirror, the epoch, the number of write transactions and the times it opened and closed.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from pytorch_accelerated import Trainer
from pytorch_accelerated.callbacks import ProgressBarCallback
from pytorch_accelerated.trainer import DEFAULT_CALLBACKS
from torch import nn

from runhistory_sql import RunTrackingCallback, SQLRunHistory
from runhistory_sql.trainer.demo import make_datasets, make_model

METRICS = ("a", "b", "c")
GO_DEADLINE_S = 120.0


def value(index: int, epoch: int, i: int, metric: str) -> float:
    """The value job ``index`` writes for ``metric`` in round ``i`` of ``epoch`` (exact in binary)."""
    return index * 1_000_000 + epoch * 1_000 + i + METRICS.index(metric) * 0.25


def wait_for_go(ready_dir: Path, name: str, go_file: Path) -> None:
    (ready_dir / name).touch()
    deadline = time.monotonic() + GO_DEADLINE_S
    while not go_file.exists():
        if time.monotonic() > deadline:
            sys.exit(f"{go_file} did not appear within {GO_DEADLINE_S} s")
        time.sleep(0.01)


def write(history: SQLRunHistory, index: int, epochs: int, points: int) -> None:
    for epoch in range(1, epochs + 1):
        for i in range(points):
            for metric in METRICS:
                history.update_metric(metric, value(index, epoch, i, metric))
        history._increment_epoch()


def prepare(index: int) -> tuple[Any, ...]:
    """The training job's model, optimizer and data, made before the start signal (the first
    optimizer imports torch._dynamo, seconds of CPU that would otherwise delay the others)."""
    torch.manual_seed(index)
    train_ds, eval_ds = make_datasets(n_train=64, n_eval=32, seed=index)
    model = make_model(seed=index)
    return model, torch.optim.SGD(model.parameters(), lr=0.01), train_ds, eval_ds


def train(history: SQLRunHistory, epochs: int, prepared: tuple[Any, ...]) -> None:
    model, optimizer, train_ds, eval_ds = prepared
    callbacks = [cb for cb in DEFAULT_CALLBACKS if cb is not ProgressBarCallback]
    trainer = Trainer(
        model, loss_func=nn.MSELoss(), optimizer=optimizer,
        callbacks=[*callbacks, RunTrackingCallback()], run_history=history,
    )
    trainer.train(train_dataset=train_ds, eval_dataset=eval_ds, num_epochs=epochs, per_device_batch_size=32)


def main(url: str, name: str, index: int, epochs: int, points: int, ready_dir: Path, go_file: Path, mode: str) -> None:
    prepared = prepare(index) if mode == "train" else ()
    wait_for_go(ready_dir, name, go_file)
    opened_at = time.time()
    history = SQLRunHistory(url, experiment="concurrency", run_name=name)
    if mode == "write":
        write(history, index, epochs, points)
    else:
        train(history, epochs, prepared)
    mirror = {m: history.get_metric_values(m) for m in sorted(history.get_metric_names())}
    epoch = history.current_epoch
    spilled = history.close()
    assert spilled is None, f"points were spilled to {spilled}"
    print("RESULT " + json.dumps({
        "run_id": history.run_id, "mirror": mirror, "epoch": epoch,
        "transactions": history.write_transactions, "opened_at": opened_at, "closed_at": time.time(),
    }), flush=True)


def _args(argv: list[str]) -> tuple[Any, ...]:
    url, name, index, epochs, points, ready_dir, go_file, mode = argv
    assert mode in ("write", "train"), mode
    return url, name, int(index), int(epochs), int(points), Path(ready_dir), Path(go_file), mode


if __name__ == "__main__":
    main(*_args(sys.argv[1:]))
