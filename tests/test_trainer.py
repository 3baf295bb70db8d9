"""The real pytorch-accelerated Trainer on CPU, with SQLRunHistory as its run history.

Nothing is mocked: a real database (a SQLite file, then a real PostgreSQL: the ``url`` fixture),
the real Trainer and callbacks, a small real model. The database is read back through SQLAlchemy
(``tests/helpers.query``); every value read here is the same on both backends.

What the Trainer really does to a run history (observed on pytorch-accelerated 0.1.61):
- ``train()`` calls ``reset()`` and ``_increment_epoch()`` after each completed epoch, so after
  3 epochs ``current_epoch`` is 4; ``EarlyStoppingCallback`` raises before the increment, so a run
  stopped during epoch 2 ends with ``current_epoch`` 2;
- ``evaluate()`` calls ``reset()`` and never increments: its ``evaluation_loss`` is at epoch 1;
- ``train(reset_run_history=False)`` continues the current stage at its current epoch, and after
  ``evaluate()`` the current stage is the evaluation's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytorch_accelerated.callbacks import EarlyStoppingCallback, SaveBestModelCallback, TrainerCallback
from pytorch_accelerated.tracking import InMemoryRunHistory, RunHistory

from runhistory_sql import RunExistsError, SQLRunHistory
from runhistory_sql.trainer.demo import DemoResult, make_datasets, make_model, make_trainer, run_demo
from helpers import query, train

TRAINING_METRICS = ("eval_loss_epoch", "train_loss_epoch")
BATCH_SIZE = 32


class Snapshot(TrainerCallback):
    """Copies what the trainer's run history holds at the end of every train() and evaluate()."""

    def __init__(self) -> None:
        self.taken: list[tuple[dict[str, list[Any]], int]] = []

    def on_training_run_end(self, trainer: Any, **kwargs: Any) -> None:
        self._take(trainer.run_history)

    def on_evaluation_run_end(self, trainer: Any, **kwargs: Any) -> None:
        self._take(trainer.run_history)

    def _take(self, history: RunHistory) -> None:
        metrics = {name: list(history.get_metric_values(name)) for name in history.get_metric_names()}
        self.taken.append((metrics, history.current_epoch))


def _trainer(
    history: RunHistory, tmp_path: Path, snapshot: Snapshot, *, patience: int = 100, threshold: float = 1e-4,
) -> Any:
    callbacks = [
        SaveBestModelCallback(save_path=str(tmp_path / "best_model.pt")),
        EarlyStoppingCallback(early_stopping_patience=patience, early_stopping_threshold=threshold),
        snapshot,
    ]
    return make_trainer(make_model(seed=0), history, callbacks=callbacks)




def _evaluate(trainer: Any) -> None:
    _, eval_ds = make_datasets()
    trainer.evaluate(eval_ds, per_device_batch_size=BATCH_SIZE)


def _points(url: str) -> list[tuple[Any, ...]]:
    """(stage, metric, seq, epoch, value, value_json) of every effective point, in order."""
    return query(
        url,
        "SELECT stage, metric, seq, epoch, value, value_json FROM v_metrics "
        "ORDER BY stage, metric, seq",
    )


def _expected(stage: int, metrics: dict[str, list[float]], epochs: dict[str, list[int]]) -> list[tuple[Any, ...]]:
    """The rows of ``_points`` for ``metrics`` of one stage, each value at the epoch given."""
    return [
        (stage, name, seq, epochs[name][seq], value, None)
        for name in sorted(metrics)
        for seq, value in enumerate(metrics[name])
    ]


def _run(url: str) -> tuple[Any, ...]:
    (row,) = query(url, "SELECT run_name, status, current_epoch, num_stages FROM v_runs")
    return row


def test_three_epochs_with_default_and_checkpoint_callbacks_are_stored_exactly(
    url: str, tmp_path: Path,
) -> None:
    history = SQLRunHistory(url, run_name="three")
    snapshot = Snapshot()
    trainer = _trainer(history, tmp_path, snapshot)

    try:
        train(trainer, 3, batch_size=BATCH_SIZE)
    finally:
        history.close()

    ((recorded, epoch),) = snapshot.taken
    assert sorted(recorded) == list(TRAINING_METRICS)
    assert [len(values) for values in recorded.values()] == [3, 3]
    assert all(type(value) is float for values in recorded.values() for value in values)
    assert epoch == 4
    assert _points(url) == _expected(1, recorded, {name: [1, 2, 3] for name in recorded})
    assert _run(url) == ("three", "finished", 4, 1)
    assert (tmp_path / "best_model.pt").is_file()


def test_early_stopping_ends_the_run_at_the_epoch_it_stopped_in(
    url: str, tmp_path: Path,
) -> None:
    # no change of eval_loss_epoch can beat a threshold of 100: the second epoch stops the run
    history = SQLRunHistory(url, run_name="stopped")
    snapshot = Snapshot()
    trainer = _trainer(history, tmp_path, snapshot, patience=1, threshold=100.0)

    try:
        train(trainer, 3, batch_size=BATCH_SIZE)
    finally:
        history.close()

    ((recorded, epoch),) = snapshot.taken
    assert [len(recorded[name]) for name in TRAINING_METRICS] == [2, 2]
    assert epoch == 2
    assert _points(url) == _expected(1, recorded, {name: [1, 2] for name in recorded})
    assert _run(url) == ("stopped", "finished", 2, 1)


def test_the_sql_history_does_not_change_the_training(url: str, tmp_path: Path) -> None:
    in_memory, in_memory_snapshot = InMemoryRunHistory(), Snapshot()
    sql = SQLRunHistory(url, run_name="same")
    sql_snapshot = Snapshot()

    train(_trainer(in_memory, tmp_path, in_memory_snapshot), 3, batch_size=BATCH_SIZE)
    try:
        train(_trainer(sql, tmp_path, sql_snapshot), 3, batch_size=BATCH_SIZE)
    finally:
        sql.close()

    ((expected, expected_epoch),) = in_memory_snapshot.taken
    assert sql_snapshot.taken == [(expected, expected_epoch)]
    assert [len(expected[name]) for name in TRAINING_METRICS] == [3, 3]
    assert _points(url) == _expected(1, expected, {name: [1, 2, 3] for name in expected})


def test_evaluate_after_train_opens_a_second_stage(url: str, tmp_path: Path) -> None:
    history = SQLRunHistory(url, run_name="eval")
    snapshot = Snapshot()
    trainer = _trainer(history, tmp_path, snapshot)

    try:
        train(trainer, 3, batch_size=BATCH_SIZE)
        _evaluate(trainer)
    finally:
        history.close()

    (trained, trained_epoch), (evaluated, evaluated_epoch) = snapshot.taken
    assert (trained_epoch, evaluated_epoch) == (4, 1)
    assert sorted(evaluated) == ["evaluation_loss"]
    assert len(evaluated["evaluation_loss"]) == 1
    assert _points(url) == [
        *_expected(1, trained, {name: [1, 2, 3] for name in trained}),
        (2, "evaluation_loss", 0, 1, evaluated["evaluation_loss"][0], None),
    ]
    assert _run(url) == ("eval", "finished", 1, 2)


def test_train_without_reset_continues_the_stage_and_its_epochs(
    url: str, tmp_path: Path,
) -> None:
    history = SQLRunHistory(url, run_name="continued")
    snapshot = Snapshot()
    trainer = _trainer(history, tmp_path, snapshot)

    try:
        train(trainer, 2, batch_size=BATCH_SIZE)
        train(trainer, 1, batch_size=BATCH_SIZE, reset_run_history=False)
    finally:
        history.close()

    (first, first_epoch), (both, both_epoch) = snapshot.taken
    assert (first_epoch, both_epoch) == (3, 4)
    assert {name: values[:2] for name, values in both.items()} == first
    assert [len(both[name]) for name in TRAINING_METRICS] == [3, 3]
    assert _points(url) == _expected(1, both, {name: [1, 2, 3] for name in both})
    assert _run(url) == ("continued", "finished", 4, 1)


def test_train_with_reset_opens_a_new_stage_at_epoch_one(url: str, tmp_path: Path) -> None:
    history = SQLRunHistory(url, run_name="twice")
    snapshot = Snapshot()
    trainer = _trainer(history, tmp_path, snapshot)

    try:
        train(trainer, 2, batch_size=BATCH_SIZE)
        train(trainer, 1, batch_size=BATCH_SIZE)
    finally:
        history.close()

    (first, first_epoch), (second, second_epoch) = snapshot.taken
    assert (first_epoch, second_epoch) == (3, 2)
    assert _points(url) == [
        *_expected(1, first, {name: [1, 2] for name in first}),
        *_expected(2, second, {name: [1] for name in second}),
    ]
    assert _run(url) == ("twice", "finished", 2, 2)


def test_train_without_reset_after_evaluate_continues_the_evaluation_stage(
    url: str, tmp_path: Path,
) -> None:
    # evaluate() reset the history and left it at epoch 1, so the continued training writes its
    # epoch 1 beside evaluation_loss, in stage 2, exactly as InMemoryRunHistory would hold it
    history = SQLRunHistory(url, run_name="eval-then-train")
    snapshot = Snapshot()
    trainer = _trainer(history, tmp_path, snapshot)

    try:
        train(trainer, 2, batch_size=BATCH_SIZE)
        _evaluate(trainer)
        train(trainer, 1, batch_size=BATCH_SIZE, reset_run_history=False)
    finally:
        history.close()

    (trained, _), (evaluated, _), (continued, continued_epoch) = snapshot.taken
    assert sorted(continued) == ["eval_loss_epoch", "evaluation_loss", "train_loss_epoch"]
    assert continued["evaluation_loss"] == evaluated["evaluation_loss"]
    assert continued_epoch == 2
    assert _points(url) == [
        *_expected(1, trained, {name: [1, 2] for name in trained}),
        *_expected(2, continued, {name: [1] for name in continued}),
    ]
    assert _run(url) == ("eval-then-train", "finished", 2, 2)


def test_run_demo_records_a_finished_run(url: str) -> None:
    result = run_demo(url, num_epochs=2, run_name="d")

    assert result == DemoResult(url=url, experiment="demo", run_name="d", run_id=1, epochs=2)
    assert query(url, "SELECT run_id, experiment, run_name, status, current_epoch, num_stages FROM v_runs") == [
        (1, "demo", "d", "finished", 3, 1),
    ]
    assert query(
        url, "SELECT metric, COUNT(*), MIN(epoch), MAX(epoch) FROM v_metrics GROUP BY metric ORDER BY metric",
    ) == [("eval_loss_epoch", 2, 1, 2), ("train_loss_epoch", 2, 1, 2)]


def test_run_demo_counts_the_epochs_trained_when_early_stopping_ends_it(url: str) -> None:
    # with patience 2 and an unreachable threshold, epochs 2 and 3 bring no improvement: stop in 3
    result = run_demo(url, num_epochs=5, run_name="early", early_stopping_threshold=100.0)

    assert result.epochs == 3
    assert query(url, "SELECT run_name, status, current_epoch, num_stages FROM v_runs") == [
        ("early", "finished", 3, 1),
    ]
    assert query(url, "SELECT metric, MAX(epoch) FROM v_metrics GROUP BY metric ORDER BY metric") == [
        ("eval_loss_epoch", 3), ("train_loss_epoch", 3),
    ]


def test_run_demo_creates_a_missing_checkpoint_directory(db_url: str, tmp_path: Path) -> None:
    checkpoint_dir = tmp_path / "not" / "there"

    result = run_demo(db_url, num_epochs=1, run_name="ckpt", checkpoint_dir=checkpoint_dir)

    assert result.epochs == 1
    assert (checkpoint_dir / "best_model.pt").is_file()


def test_run_demo_refuses_an_existing_run_name_before_training(url: str) -> None:
    run_demo(url, num_epochs=1, run_name="taken")
    before = query(url, "SELECT stage, metric, seq, epoch, value FROM v_metrics ORDER BY 1, 2, 3")

    with pytest.raises(RunExistsError, match="Run 'taken' already exists in experiment 'demo'"):
        run_demo(url, num_epochs=1, run_name="taken")

    assert query(url, "SELECT stage, metric, seq, epoch, value FROM v_metrics ORDER BY 1, 2, 3") == before


def test_resume_from_a_checkpoint_whose_epoch_is_a_tensor(url: str, tmp_path: Path) -> None:
    # save_training_state merges the user's checkpoint_kwargs into the metadata train() resumes from
    import torch

    history = SQLRunHistory(url, run_name="tensor-epoch")
    trainer = _trainer(history, tmp_path, Snapshot())
    try:
        train(trainer, 3, batch_size=BATCH_SIZE)
        trainer.save_training_state(str(tmp_path / "state"), checkpoint_kwargs={"current_epoch": torch.tensor(2)})
        train(trainer, 1, batch_size=BATCH_SIZE, resume_from=str(tmp_path / "state"))
    finally:
        history.close()

    epochs = {name: [epoch for _, metric, _, epoch, _, _ in _points(url) if metric == name] for name in TRAINING_METRICS}
    assert epochs == {name: [1, 2] for name in TRAINING_METRICS}
    assert _run(url) == ("tensor-epoch", "finished", 3, 1)
