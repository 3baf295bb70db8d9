"""The demo: train a small model with the real pytorch-accelerated Trainer and record it.

Also the source of the small model and data that the tests train on.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from pytorch_accelerated import Trainer
from pytorch_accelerated.callbacks import (
    EarlyStoppingCallback,
    SaveBestModelCallback,
    TrainerCallback,
)
from pytorch_accelerated.trainer import DEFAULT_CALLBACKS
from torch import nn
from torch.utils.data import TensorDataset

from ..write.history import SQLRunHistory


def make_datasets(n_train: int = 512, n_eval: int = 128, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """Return (train, eval) datasets of a noisy linear regression with 8 features."""
    gen = torch.Generator().manual_seed(seed)
    weights = torch.randn(8, 1, generator=gen)

    def sample(n: int) -> TensorDataset:
        x = torch.randn(n, 8, generator=gen)
        return TensorDataset(x, x @ weights + 0.1 * torch.randn(n, 1, generator=gen))

    return sample(n_train), sample(n_eval)


def make_model(seed: int = 0) -> nn.Module:
    """Return a small MLP with three layer groups: ``input``, ``hidden`` and ``output``."""
    torch.manual_seed(seed)
    return _DemoModel()


class _DemoModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.input = nn.Linear(8, 32)
        self.hidden = nn.Sequential(nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.output = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden(self.input(x)))


def make_trainer(
    model: nn.Module, history: Any, *, callbacks: Sequence[Any] = (), lr: float = 0.01, default_callbacks: bool = True,
) -> Trainer:
    """Return a Trainer on ``model`` with MSE loss, SGD, the default callbacks (unless
    ``default_callbacks`` is false) and ``callbacks``."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    defaults = DEFAULT_CALLBACKS if default_callbacks else ()
    all_callbacks: list[TrainerCallback | type[TrainerCallback]] = [*defaults, *callbacks]
    return Trainer(model, loss_func=nn.MSELoss(), optimizer=optimizer, callbacks=all_callbacks, run_history=history)


@dataclass
class DemoResult:
    """What the demo did: the run it recorded and where."""

    url: str
    experiment: str
    run_name: str
    run_id: int | None
    epochs: int


def run_demo(
    url: str | None = None, *, experiment: str = "demo", run_name: str | None = None,
    num_epochs: int = 5, checkpoint_dir: str | Path | None = None,
    early_stopping_patience: int = 2, early_stopping_threshold: float = 1e-4,
) -> DemoResult:
    """Train the demo model for ``num_epochs`` epochs on CPU and record the run.

    :param url: database URL (default: ``$RUNHISTORY_SQL_URL``, else ``sqlite:///runhistory.db``)
    :param experiment: experiment to record the run in
    :param run_name: the run's name; generated when ``None``
    :param num_epochs: epochs to train
    :param checkpoint_dir: where ``SaveBestModelCallback`` keeps its checkpoint (a temp dir if
        ``None``); created if missing
    :param early_stopping_patience: epochs without improvement before ``EarlyStoppingCallback`` stops
    :param early_stopping_threshold: the smallest change of ``eval_loss_epoch`` that is an improvement
    :return: the run's coordinates; ``epochs`` is the number of epochs actually trained, which is
        fewer than ``num_epochs`` when early stopping ends the run
    """
    train_ds, eval_ds = make_datasets()
    with tempfile.TemporaryDirectory() as tmp, SQLRunHistory(url, experiment=experiment, run_name=run_name) as history:
        save_dir = Path(checkpoint_dir or tmp)
        save_dir.mkdir(parents=True, exist_ok=True)  # torch.save does not create it, and fails only after an epoch
        callbacks = [
            SaveBestModelCallback(save_path=str(save_dir / "best_model.pt")),
            EarlyStoppingCallback(
                early_stopping_patience=early_stopping_patience,
                early_stopping_threshold=early_stopping_threshold,
            ),
        ]
        trainer = make_trainer(make_model(), history, callbacks=callbacks)
        trainer.train(train_dataset=train_ds, eval_dataset=eval_ds, num_epochs=num_epochs, per_device_batch_size=32)
        # not current_epoch - 1: early stopping ends the run before the epoch counter moves on
        epochs = len(history.get_metric_values("train_loss_epoch"))
        return DemoResult(history.url, experiment, history.run_name, history.run_id, epochs)
