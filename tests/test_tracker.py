"""``SQLTracker`` with a real ``Accelerator`` (CPU, this process): both construction forms, the
value rules, steps, params, rewinds, checkpoints through ``save_state``/``load_state``, and beside
accelerate's TensorBoard tracker. Multi-process launches are in test_tracker_processes.py."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from helpers import query, same
from runhistory_sql import RunStore, SQLTracker
from runhistory_sql.errors import InvalidArgumentError, RunHistorySQLError
from runhistory_sql.tracker.sqltracker import RegisteredSQLTracker


class _LazyStore:
    """A ``RunStore`` opened on first use: the database exists once a tracker has started."""

    def __init__(self, url: str) -> None:
        self.url, self.opened = url, None

    def __getattr__(self, name: str) -> Any:
        if self.opened is None:
            self.opened = RunStore(self.url)
        return getattr(self.opened, name)


@pytest.fixture
def store(url: str) -> Iterator[Any]:
    found = _LazyStore(url)
    yield found
    if found.opened is not None:
        found.opened.close()


def _accelerator(*trackers: Any, **kwargs: Any) -> Accelerator:
    return Accelerator(cpu=True, log_with=list(trackers), **kwargs)


def _steps(store: Any, run: str, metric: str) -> list[tuple[int, Any]]:
    """(step, value) of the run's effective points of ``metric``."""
    return [(step, value) for _seq, _epoch, value, _at, step in store.history(run, metric, experiment="glue")]


def _params(url: str, run: str) -> list[tuple[str, Any, bool]]:
    """(key, value, is current) of every param row of the run, in the order recorded."""
    found = query(
        url, "SELECT key, value_json, is_current FROM v_params WHERE run_name = :run ORDER BY recorded_at, key",
        {"run": run},
    )
    return [(key, json.loads(value), bool(current)) for key, value, current in found]


def _current_params(url: str, run: str) -> dict[str, Any]:
    return {key: value for key, value, current in _params(url, run) if current}


def _events(url: str, run: str, kind: str) -> list[dict[str, Any]]:
    found = query(
        url, "SELECT e.payload FROM v_events e JOIN v_runs r ON r.run_id = e.run_id "
        "WHERE r.run_name = :run AND e.kind = :kind ORDER BY e.event_id", {"run": run, "kind": kind},
    )
    return [json.loads(payload) for (payload,) in found]


def _status(url: str, run: str) -> tuple[str, str]:
    ((status, experiment),) = query(url, "SELECT status, experiment FROM v_runs WHERE run_name = :n", {"n": run})
    return status, experiment


def test_can_record_a_plain_loop_with_an_instance(url: str, store: Any) -> None:
    tracker = SQLTracker(url, experiment="glue", run_name="bert-lr3e-5")
    accelerator = _accelerator(tracker)

    accelerator.init_trackers("glue-mrpc", config={"lr": 3e-5, "epochs": 3, "model": "bert-base", "opt": {"beta1": 0.9}})
    for step in range(3):
        accelerator.log({"train_loss": 1.0 / (step + 1), "lr": 3e-5}, step=step)
    accelerator.end_training()

    assert _status(url, "bert-lr3e-5") == ("finished", "glue")
    assert _steps(store, "bert-lr3e-5", "train_loss") == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]
    assert _steps(store, "bert-lr3e-5", "lr") == [(0, 3e-5), (1, 3e-5), (2, 3e-5)]
    assert _current_params(url, "bert-lr3e-5") == {"lr": 3e-5, "epochs": 3, "model": "bert-base", "opt.beta1": 0.9}
    assert accelerator.get_tracker("runhistory_sql") is tracker


def test_can_record_with_the_registered_name_and_continue_with_a_rewind(url: str, store: Any) -> None:
    first = Accelerator(cpu=True, log_with="runhistory_sql")
    first.init_trackers("glue", config={"lr": 0.1}, init_kwargs={"runhistory_sql": {"url": url, "run_name": "r"}})
    for step in range(4):
        first.log({"loss": float(step)}, step=step)
    first.end_training()

    second = Accelerator(cpu=True, log_with="runhistory_sql")
    second.init_trackers("glue", init_kwargs={"runhistory_sql": {
        "url": url, "run_name": "r", "resume": "allow", "rewind_to_step": 2,
    }})
    tracker = second.get_tracker("runhistory_sql")
    last_after_rewind = tracker.last_step
    second.log({"loss": 20.0}, step=2)
    second.end_training()

    assert type(tracker) is RegisteredSQLTracker
    assert last_after_rewind == 1
    assert _steps(store, "r", "loss") == [(0, 0.0), (1, 1.0), (2, 20.0)]
    assert _events(url, "r", "rewind") == [{"to_step": 2, "superseded_points": 2, "rev": 1}]
    assert _status(url, "r") == ("finished", "glue")


def test_the_registered_form_takes_the_experiment_from_the_project_name() -> None:
    with pytest.raises(InvalidArgumentError, match="project name of init_trackers is the experiment"):
        RegisteredSQLTracker("glue", experiment="other")


def test_numbers_are_floats_exactly_and_other_values_json(url: str, store: Any) -> None:
    tracker = SQLTracker(url, experiment="glue", run_name="values")
    accelerator = _accelerator(tracker)
    accelerator.init_trackers("p")
    values = {
        "nan": math.nan, "inf": math.inf, "ninf": -math.inf, "negzero": -0.0, "int": 3,
        "np": np.float32(0.5), "tensor": torch.tensor(2.5), "text": "warmup", "dict": {"f1": 0.8, "acc": 0.9},
    }

    accelerator.log(values, step=7)
    accelerator.end_training()

    found = {m: _steps(store, "values", m) for m in values}
    assert {m: [step for step, _ in points] for m, points in found.items()} == {m: [7] for m in values}
    stored = {m: points[0][1] for m, points in found.items()}
    assert same(stored, {
        "nan": math.nan, "inf": math.inf, "ninf": -math.inf, "negzero": -0.0, "int": 3.0,
        "np": 0.5, "tensor": 2.5, "text": "warmup", "dict": {"f1": 0.8, "acc": 0.9},
    })


def test_a_log_without_a_step_gets_the_next_step(url: str, store: Any) -> None:
    tracker = SQLTracker(url, experiment="glue", run_name="steps")
    accelerator = _accelerator(tracker)
    accelerator.init_trackers("p")

    accelerator.log({"a": 1.0})
    accelerator.log({"a": 2.0}, step=5)
    accelerator.log({"a": 3.0})
    with pytest.raises(ValueError, match=r"at step 6 already.*rewind_to_step\(2\) first"):
        accelerator.log({"a": 4.0}, step=2)
    accelerator.end_training()

    assert _steps(store, "steps", "a") == [(0, 1.0), (5, 2.0), (6, 3.0)]


def test_a_value_of_another_type_is_an_error_naming_its_key(url: str) -> None:
    tracker = SQLTracker(url, experiment="glue", run_name="bad")
    accelerator = _accelerator(tracker)
    accelerator.init_trackers("p")

    with pytest.raises(TypeError, match="'weights'"):
        accelerator.log({"loss": 1.0, "weights": {1, 2}}, step=0)
    with pytest.raises(TypeError, match="takes no options"):
        accelerator.log({"loss": 1.0}, step=0, log_kwargs={"runhistory_sql": {"walltime": 3}})
    accelerator.log({"loss": 2.0}, step=1)
    accelerator.end_training()

    assert query(url, "SELECT metric, step, value FROM v_metrics WHERE run_name = 'bad'") == [("loss", 1, 2.0)]


def test_construction_touches_no_database_and_checks_its_arguments(tmp_path: Path) -> None:
    db = tmp_path / "never.db"

    SQLTracker(f"sqlite:///{db}", run_name="r")
    SQLTracker("postgresql+psycopg://nobody@127.0.0.1:1/nothing", run_name="r")  # no server there

    assert not db.exists()
    with pytest.raises(ValueError, match="resume must be one of"):
        SQLTracker(f"sqlite:///{db}", resume="sometimes")
    with pytest.raises(InvalidArgumentError, match="rewind_to_step continues a run"):
        SQLTracker(f"sqlite:///{db}", run_name="r", rewind_to_step=3)
    with pytest.raises(InvalidArgumentError, match="rewind_to_step must be a non-negative int"):
        SQLTracker(f"sqlite:///{db}", run_name="r", resume="allow", rewind_to_step=-1)
    with pytest.raises(RunHistorySQLError, match=r"log\(\) before the tracker started"):
        SQLTracker(f"sqlite:///{db}").log({"a": 1.0}, step=0)
    assert not db.exists()


def test_params_are_the_config_and_log_params(url: str, store: Any) -> None:
    tracker = SQLTracker(url, experiment="glue", run_name="params")
    accelerator = _accelerator(tracker)
    accelerator.init_trackers("p", config={"lr": 0.1, "seed": 1})

    tracker.log_params({"lr": 0.01, "data": {"version": "v2"}})
    current = tracker.params
    accelerator.end_training()

    assert current == {"lr": 0.01, "seed": 1, "data.version": "v2"}
    assert [p for p in _params(url, "params") if p[0] == "lr"] == [("lr", 0.1, False), ("lr", 0.01, True)]


def test_rewind_supersedes_the_steps_from_it(url: str, store: Any) -> None:
    tracker = SQLTracker(url, experiment="glue", run_name="rw")
    accelerator = _accelerator(tracker)
    accelerator.init_trackers("p")
    for step in range(5):
        accelerator.log({"loss": float(step)}, step=step)

    tracker.rewind(step=3)
    at_rewind = _steps(store, "rw", "loss")  # committed before rewind() returned
    accelerator.log({"loss": 30.0})
    accelerator.end_training()

    assert at_rewind == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert _steps(store, "rw", "loss") == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 30.0)]
    assert query(url, "SELECT p.step, p.rev, p.value FROM points p WHERE p.rev > 0 ORDER BY p.step") == [
        (3, 1, 3.0), (4, 1, 4.0),
    ]


# -- checkpoints: save_state / load_state -----------------------------------------------


def _checkpointed_run(url: str, tmp_path: Path, name: str) -> Path:
    """A run that logs steps 0-2, saves the state (its step: 2), logs 3-4 and ends."""
    tracker = SQLTracker(url, experiment="glue", run_name=name)
    accelerator = _accelerator(tracker, project_dir=str(tmp_path))
    accelerator.register_for_checkpointing(tracker)
    accelerator.init_trackers("p")
    for step in range(5):
        accelerator.log({"loss": float(step), "acc": step / 10}, step=step)
        if step == 2:
            accelerator.save_state(str(tmp_path / "ckpt"))
    accelerator.end_training()
    return tmp_path / "ckpt"


def test_load_state_rewinds_to_the_checkpoint_step(url: str, store: Any, tmp_path: Path) -> None:
    ckpt = _checkpointed_run(url, tmp_path, "ck")
    tracker = SQLTracker(url, experiment="glue", run_name="ck", resume="allow")
    accelerator = _accelerator(tracker, project_dir=str(tmp_path))
    accelerator.register_for_checkpointing(tracker)
    accelerator.init_trackers("p")

    accelerator.load_state(str(ckpt))
    resumed_at = tracker.last_step
    accelerator.log({"loss": 33.0, "acc": 3.3})  # the step after the checkpoint's
    accelerator.end_training()

    assert resumed_at == 2
    assert _steps(store, "ck", "loss") == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 33.0)]
    assert _events(url, "ck", "rewind") == [{"to_step": 3, "superseded_points": 4, "rev": 1}]


def test_a_checkpoint_loaded_before_init_trackers_rewinds_at_start(url: str, store: Any, tmp_path: Path) -> None:
    ckpt = _checkpointed_run(url, tmp_path, "early")
    tracker = SQLTracker(url, experiment="glue", run_name="early", resume="allow")
    accelerator = _accelerator(tracker, project_dir=str(tmp_path))
    accelerator.register_for_checkpointing(tracker)

    accelerator.load_state(str(ckpt))
    before_start = tracker.last_step
    accelerator.init_trackers("p")
    accelerator.end_training()

    assert before_start == 2
    assert _steps(store, "early", "loss") == [(0, 0.0), (1, 1.0), (2, 2.0)]


def test_a_checkpoint_of_another_run_is_refused(url: str, store: Any, tmp_path: Path) -> None:
    ckpt = _checkpointed_run(url, tmp_path, "mine")
    tracker = SQLTracker(url, experiment="glue", run_name="other")
    accelerator = _accelerator(tracker, project_dir=str(tmp_path))
    accelerator.register_for_checkpointing(tracker)
    accelerator.init_trackers("p")

    with pytest.raises(InvalidArgumentError, match="belongs to run 'mine' of experiment 'glue'.*run_name='mine'"):
        accelerator.load_state(str(ckpt))
    accelerator.end_training()

    assert [s for s, _ in _steps(store, "mine", "loss")] == [0, 1, 2, 3, 4]


# -- beside accelerate's own trackers -------------------------------------------------


def test_works_beside_the_tensorboard_tracker(db_url: str, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tracker = SQLTracker(db_url, experiment="glue", run_name="both")
    accelerator = Accelerator(cpu=True, log_with=["tensorboard", tracker], project_dir=str(tmp_path))
    accelerator.init_trackers("tb-project", config={"lr": 0.5})
    for step in range(3):
        accelerator.log({"loss": 0.5 * step}, step=step)
    accelerator.end_training()

    events = EventAccumulator(str(tmp_path / "tb-project"))
    events.Reload()
    assert [(s.step, s.value) for s in events.Scalars("loss")] == [(0, 0.0), (1, 0.5), (2, 1.0)]
    assert _steps(_LazyStore(db_url), "both", "loss") == [(0, 0.0), (1, 0.5), (2, 1.0)]
    assert _current_params(db_url, "both") == {"lr": 0.5}
