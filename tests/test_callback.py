"""RunTrackingCallback with the real pytorch-accelerated Trainer on CPU and a real database.

The database is the ``url`` fixture: a SQLite file, then a real PostgreSQL.

What was observed (pytorch-accelerated 0.1.61):
- ``train()`` snapshots into the stage its ``reset()`` opened, ``evaluate()`` into the next one;
  ``evaluate()`` leaves upstream's ``train_dl_kwargs`` of the last ``train()`` in ``run_config``;
- with a ``sampler`` in ``train_dataloader_kwargs`` upstream drops ``shuffle`` from the defaults;
- ``collate_fn`` cannot go in ``train_dataloader_kwargs`` (upstream passes its own ``collate_fn=``
  to ``DataLoader`` too: "got multiple values for keyword argument"), so functions are exercised
  through ``worker_init_fn``;
- ``TrainerRunConfig.to_dict()`` raises ``TypeError`` without an eval set;
- ``EarlyStoppingCallback`` raises in ``on_training_run_epoch_end``: that epoch's ``epoch_end`` is
  recorded (the callback runs first), the epoch counter does not move on;
- ``TerminateOnNaNCallback`` raises ``StopTrainingError`` at the first NaN step, then calls
  ``sys.exit("Exiting due to NaN loss")`` in ``on_training_run_end``: exit code 1.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from pytorch_accelerated import Trainer
from pytorch_accelerated.callbacks import (
    EarlyStoppingCallback,
    LogMetricsCallback,
    MoveModulesToDeviceCallback,
    PrintProgressCallback,
    ProgressBarCallback,
    TerminateOnNaNCallback,
    TrainerCallback,
)
from pytorch_accelerated.run_config import TrainerRunConfig
from pytorch_accelerated.tracking import InMemoryRunHistory
from torch.utils.data import Sampler

from runhistory_sql import RunTrackingCallback, SQLRunHistory
from runhistory_sql.trainer.demo import make_datasets, make_model, make_trainer
from runhistory_sql.write.snapshot import jsonable
from helpers import is_postgres, query
from tracking_support import events, finish, run_row, start, write_script

BATCH = 32
NO_WORKERS = {"num_workers": 0}
BOOL_FIELDS = {"is_local_process_zero", "is_world_process_zero", "is_distributed"}
DL_FIELDS = {"train_dl_kwargs", "eval_dl_kwargs"}
FIELDS = [field.name for field in dataclasses.fields(TrainerRunConfig)]


def _seed_worker(worker_id: int) -> None:
    """A named worker_init_fn, stored by its qualified name."""


_WORKER_LAMBDA = lambda worker_id: None  # noqa: E731 - a lambda on purpose


class _EvenSampler(Sampler[int]):
    """A user's own sampler: stored by its type."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Iterator[int]:
        return iter(range(0, self.n, 2))

    def __len__(self) -> int:
        return len(range(0, self.n, 2))


class _Configs(TrainerCallback):
    """Keeps each run's ``trainer.run_config`` object, as the trainer holds it at the run's end."""

    def __init__(self) -> None:
        self.seen: list[TrainerRunConfig] = []

    def on_training_run_end(self, trainer: Any, **kwargs: Any) -> None:
        self.seen.append(trainer.run_config)

    def on_evaluation_run_end(self, trainer: Any, **kwargs: Any) -> None:
        self.seen.append(trainer.run_config)


def _trainer(history: Any, callbacks: list[Any]) -> Trainer:
    """A trainer with exactly ``callbacks``: these tests place the default ones themselves."""
    return make_trainer(make_model(), history, callbacks=callbacks, default_callbacks=False)


def _defaults_around(callback: Any, position: str) -> list[Any]:
    defaults: list[Any] = [
        MoveModulesToDeviceCallback, TerminateOnNaNCallback, PrintProgressCallback,
        ProgressBarCallback, LogMetricsCallback,
    ]
    at = {"first": 0, "after TerminateOnNaNCallback": 2, "last": len(defaults)}[position]
    return [*defaults[:at], callback, *defaults[at:]]


def _configs(url: str) -> list[dict[str, Any]]:
    columns = ["run_id", "stage", "kind", *FIELDS]
    found = query(url, f"SELECT {', '.join(columns)} FROM v_configs ORDER BY stage, captured_at")
    return [dict(zip(columns, row)) for row in found]


def _expected_row(
    url: str, config: TrainerRunConfig, stage: int, kind: str, dl_json: dict[str, Any],
) -> dict[str, Any]:
    """The v_configs row of ``config``: each field as the trainer holds it, the kwargs as given."""
    row: dict[str, Any] = {"run_id": 1, "stage": stage, "kind": kind}
    for name in FIELDS:
        value = getattr(config, name)
        if name in DL_FIELDS:
            row[name] = dl_json[name]
        elif name in BOOL_FIELDS:
            # PostgreSQL gives booleans back; SQLite has none: 0/1
            row[name] = value if is_postgres(url) else int(value)
        else:
            row[name] = value
    return row


def _decoded(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {name: (json.loads(value) if name in DL_FIELDS and value is not None else value) for name, value in row.items()}
        for row in found
    ]


# -- config snapshots ---------------------------------------------------------------------


def test_each_train_and_evaluate_snapshots_its_run_config_into_its_stage(url: str) -> None:
    train_ds, eval_ds = make_datasets()
    generator = torch.Generator().manual_seed(7)
    sampler = _EvenSampler(len(train_ds))
    train_kwargs = {"sampler": sampler, "generator": generator, "worker_init_fn": _WORKER_LAMBDA, **NO_WORKERS}
    eval_kwargs = {"worker_init_fn": _seed_worker, **NO_WORKERS}
    given_train, given_eval = dict(train_kwargs), dict(eval_kwargs)
    configs = _Configs()
    history = SQLRunHistory(url, run_name="snap")
    trainer = _trainer(history, _defaults_around(RunTrackingCallback(), "last") + [configs])

    try:
        trainer.train(
            train_dataset=train_ds, eval_dataset=eval_ds, num_epochs=2, per_device_batch_size=BATCH,
            gradient_clip_value=torch.tensor(0.5), train_dataloader_kwargs=train_kwargs,
            eval_dataloader_kwargs=eval_kwargs,
        )
        trainer.evaluate(eval_ds, per_device_batch_size=16, dataloader_kwargs=NO_WORKERS)
    finally:
        history.close()

    trained, evaluated = configs.seen
    train_json = {
        "pin_memory": False, "batch_size": BATCH, "num_workers": 0,
        "worker_init_fn": f"{__name__}.<lambda>",
        "sampler": f"<{__name__}._EvenSampler>",
        "generator": "<torch._C.Generator>",
    }
    eval_json = {
        "shuffle": False, "pin_memory": False, "batch_size": BATCH, "num_workers": 0,
        "worker_init_fn": f"{__name__}._seed_worker",
    }
    evaluate_json = {
        "shuffle": False, "pin_memory": False, "batch_size": 16, "num_workers": 0,
        "worker_init_fn": "pytorch_accelerated.utils.worker_init_fn",
    }
    expected_train = _expected_row(url, trained, 1, "train", {"train_dl_kwargs": train_json, "eval_dl_kwargs": eval_json})
    expected_train["gradient_clip_value"] = 0.5  # a 0-dim tensor, stored as its plain value
    assert _decoded(_configs(url)) == [
        expected_train,
        _expected_row(url, evaluated, 2, "evaluate", {"train_dl_kwargs": train_json, "eval_dl_kwargs": evaluate_json}),
    ]
    # the values that matter, spelt out (the same row as above)
    assert (trained.num_epochs, trained.num_update_steps_per_epoch, trained.max_num_train_steps) == (2, 8, 17)
    assert (evaluated.num_epochs, evaluated.num_update_steps_per_epoch, evaluated.max_num_train_steps) == (1, 0, 1)
    # nothing the trainer or the user holds was changed by the snapshot
    assert train_kwargs == given_train and eval_kwargs == given_eval
    assert trainer.run_config is evaluated
    live = trained.train_dl_kwargs
    assert live["sampler"] is sampler and live["generator"] is generator and live["worker_init_fn"] is _WORKER_LAMBDA
    assert sorted(live) == sorted(train_json)


def test_a_run_without_eval_set_is_snapshotted_where_to_dict_raises(url: str) -> None:
    train_ds, _ = make_datasets()
    configs = _Configs()
    history = SQLRunHistory(url, run_name="no-eval")
    trainer = _trainer(history, _defaults_around(RunTrackingCallback(), "first") + [configs])

    try:
        trainer.train(train_dataset=train_ds, num_epochs=1, per_device_batch_size=BATCH, train_dataloader_kwargs=NO_WORKERS)
    finally:
        history.close()

    (config,) = configs.seen
    with pytest.raises(TypeError, match="argument of type 'NoneType' is not iterable"):
        config.to_dict()  # upstream's own conversion: what the callback must not use
    train_json = {
        "shuffle": True, "pin_memory": False, "batch_size": BATCH, "num_workers": 0,
        "worker_init_fn": "pytorch_accelerated.utils.worker_init_fn",
    }
    assert _decoded(_configs(url)) == [
        _expected_row(url, config, 1, "train", {"train_dl_kwargs": train_json, "eval_dl_kwargs": None}),
    ]
    assert config.eval_dl_kwargs is None
    assert events(url) == [
        (1, 1, "training_run_start", {"num_epochs": 1}),
        (1, 1, "epoch_end", {"epoch": 1}),
        (1, 2, "training_run_end", {"epoch": 2}),
    ]
    assert run_row(url, "no-eval") == ("finished", 1, 2, 1)


def test_a_value_no_column_can_hold_is_stored_as_null_and_holds_nothing_back(url: str) -> None:
    # "train until early stopping says so": upstream's step limit becomes num_epochs * 16 + 1, beyond
    # any SQL integer; an insert that fails would be retried for ever, holding back every point
    train_ds, eval_ds = make_datasets()
    stopper = EarlyStoppingCallback(early_stopping_patience=1, early_stopping_threshold=100.0)
    configs = _Configs()
    history = SQLRunHistory(url, run_name="forever")
    trainer = _trainer(history, _defaults_around(RunTrackingCallback(), "last") + [stopper, configs])

    try:
        trainer.train(
            train_dataset=train_ds, eval_dataset=eval_ds, num_epochs=sys.maxsize, per_device_batch_size=BATCH,
            train_dataloader_kwargs=NO_WORKERS, eval_dataloader_kwargs=NO_WORKERS,
        )
    finally:
        history.close()

    (config,) = configs.seen
    assert config.max_num_train_steps == sys.maxsize * 16 + 1
    found = query(url, "SELECT num_epochs, max_num_train_steps, num_update_steps_per_epoch FROM v_configs")
    assert found == [(None, None, 16)]
    assert events(url)[0] == (1, 1, "training_run_start", {"num_epochs": sys.maxsize})
    assert query(url, "SELECT metric, epoch FROM v_metrics ORDER BY metric, seq") == [
        ("eval_loss_epoch", 1), ("eval_loss_epoch", 2), ("train_loss_epoch", 1), ("train_loss_epoch", 2),
    ]
    assert run_row(url, "forever") == ("finished", 1, 2, 1)


class _Callable:
    def __call__(self, batch: Any) -> Any:
        return batch

    def method(self) -> None:
        """A bound method, stored by its qualified name."""


class _Hostile:
    """Every attribute lookup it does not define fails with something other than AttributeError."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")


def test_config_values_become_plain_json_and_odd_ones_their_type_name() -> None:
    values = {
        "partial": functools.partial(_seed_worker, 3),
        "callable_object": _Callable(),
        "bound_method": _Callable().method,
        "class": _EvenSampler,
        "builtin": len,
        "numpy": [np.float32(1.5), np.int64(3), np.bool_(True), np.array([[1, 2]])],
        "torch": [torch.tensor(2), torch.tensor([0.5, -0.0]), torch.float16, torch.device("cpu")],
        "floats": [float("nan"), float("inf"), -float("inf"), -0.0, 10**30],
        "keys": {1: "one", (2, 3): "pair"},
        "set": {"b", "a"},
        "bytes": b"x",
        "hostile": _Hostile(),
        "deep": [[[[[[[[[[1]]]]]]]]]],
    }

    got = jsonable(values)

    assert got == {
        "partial": f"{__name__}._seed_worker",
        "callable_object": f"<{__name__}._Callable>",
        "bound_method": f"{__name__}._Callable.method",
        "class": f"{__name__}._EvenSampler",
        "builtin": "builtins.len",
        "numpy": [1.5, 3, True, [[1, 2]]],
        "torch": [2, [0.5, -0.0], "torch.float16", "cpu"],
        "floats": ["NaN", "Infinity", "-Infinity", -0.0, 10**30],
        "keys": {"1": "one", "(2, 3)": "pair"},
        "set": ["a", "b"],
        "bytes": "<builtins.bytes>",
        "hostile": f"<{__name__}._Hostile>",
        "deep": [[[[[[["<builtins.list>"]]]]]]],
    }
    assert json.loads(json.dumps(got, allow_nan=False)) == got  # strict JSON


# -- lifecycle events -----------------------------------------------------------------------


@pytest.mark.parametrize("position", ["first", "after TerminateOnNaNCallback", "last"])
def test_lifecycle_events_are_recorded_wherever_the_callback_is_listed(
    url: str, position: str,
) -> None:
    # no improvement can beat a threshold of 100: early stopping ends the run in epoch 2
    train_ds, eval_ds = make_datasets()
    stopper = EarlyStoppingCallback(early_stopping_patience=1, early_stopping_threshold=100.0)
    history = SQLRunHistory(url, run_name="events")
    trainer = _trainer(history, _defaults_around(RunTrackingCallback(), position) + [stopper])

    try:
        trainer.train(
            train_dataset=train_ds, eval_dataset=eval_ds, num_epochs=3, per_device_batch_size=BATCH,
            train_dataloader_kwargs=NO_WORKERS, eval_dataloader_kwargs=NO_WORKERS,
        )
        trainer.evaluate(eval_ds, per_device_batch_size=BATCH, dataloader_kwargs=NO_WORKERS)
    finally:
        history.close()

    assert events(url) == [
        (1, 1, "training_run_start", {"num_epochs": 3}),
        (1, 1, "epoch_end", {"epoch": 1}),
        (1, 2, "epoch_end", {"epoch": 2}),
        (1, 2, "stop_training", {"reason": "Stopping training due to no improvement after 1 epochs"}),
        (1, 2, "training_run_end", {"epoch": 2}),
        (2, 1, "evaluation_run_start", {}),
        (2, 1, "evaluation_run_end", {}),
    ]
    assert query(url, "SELECT stage, kind FROM v_configs ORDER BY stage") == [(1, "train"), (2, "evaluate")]
    assert query(url, "SELECT stage, metric, epoch FROM v_metrics ORDER BY stage, metric, seq") == [
        (1, "eval_loss_epoch", 1), (1, "eval_loss_epoch", 2),
        (1, "train_loss_epoch", 1), (1, "train_loss_epoch", 2),
        (2, "evaluation_loss", 1),
    ]
    assert run_row(url, "events") == ("finished", 1, 1, 2)


def test_a_full_run_ends_at_the_epoch_after_its_last(url: str) -> None:
    train_ds, eval_ds = make_datasets()
    history = SQLRunHistory(url, run_name="full")
    trainer = _trainer(history, _defaults_around(RunTrackingCallback(), "last"))

    try:
        trainer.train(
            train_dataset=train_ds, eval_dataset=eval_ds, num_epochs=2, per_device_batch_size=BATCH,
            train_dataloader_kwargs=NO_WORKERS, eval_dataloader_kwargs=NO_WORKERS,
        )
        history.log_event("checkpoint", path="best.pt")
    finally:
        history.close()

    assert events(url) == [
        (1, 1, "training_run_start", {"num_epochs": 2}),
        (1, 1, "epoch_end", {"epoch": 1}),
        (1, 2, "epoch_end", {"epoch": 2}),
        (1, 3, "training_run_end", {"epoch": 3}),
        (1, 3, "checkpoint", {"path": "best.pt"}),
    ]


def test_a_trainer_without_a_sql_run_history_gets_a_clear_type_error() -> None:
    with pytest.raises(TypeError) as raised:
        _trainer(InMemoryRunHistory(), [RunTrackingCallback()])

    assert str(raised.value) == (
        "RunTrackingCallback needs the trainer's run_history to be a SQLRunHistory, not "
        "InMemoryRunHistory. Pass run_history=SQLRunHistory(...) to the Trainer."
    )


# -- a NaN loss: TerminateOnNaNCallback calls sys.exit --------------------------------------

NAN_SCRIPT = """
import sys

import torch
from pytorch_accelerated import Trainer
from pytorch_accelerated.trainer import DEFAULT_CALLBACKS
from torch import nn

from runhistory_sql import RunTrackingCallback, SQLRunHistory
from runhistory_sql.trainer.demo import make_datasets, make_model
from runhistory_sql.write.snapshot import jsonable


def nan_loss(pred, target):
    return nn.functional.mse_loss(pred, target) * float("nan")


history = SQLRunHistory(sys.argv[1], run_name="nan")
model = make_model()
trainer = Trainer(
    model, loss_func=nan_loss, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
    callbacks=[*DEFAULT_CALLBACKS, RunTrackingCallback()], run_history=history,
)
train_ds, eval_ds = make_datasets()
no_workers = {"num_workers": 0}
trainer.train(
    train_dataset=train_ds, eval_dataset=eval_ds, num_epochs=3, per_device_batch_size=32,
    train_dataloader_kwargs=no_workers, eval_dataloader_kwargs=no_workers,
)
print("after train")
"""


@pytest.mark.slow
def test_a_nan_loss_exit_through_terminate_on_nan_is_recorded_as_failed(tmp_path: Path, url: str) -> None:
    # RunTrackingCallback is listed AFTER TerminateOnNaNCallback, whose on_training_run_end exits
    result = finish(start(write_script(tmp_path, "nan_train", NAN_SCRIPT), url))

    assert result.returncode == 1, result.stderr
    assert "Exiting due to NaN loss\n" in result.stderr
    assert "after train" not in result.stdout
    assert events(url) == [
        (1, 1, "training_run_start", {"num_epochs": 3}),
        (1, 1, "stop_training", {"reason": "Stopping training due to NaN loss in training step"}),
        (1, 1, "training_run_end", {"epoch": 1}),
        (1, 1, "exit", {"code": "Exiting due to NaN loss"}),
    ]
    assert run_row(url, "nan") == ("failed", 1, 1, 1)
    assert query(url, "SELECT stage, kind, num_epochs FROM v_configs") == [(1, "train", 3)]
    assert query(url, "SELECT COUNT(*) FROM v_metrics") == [(0,)]
