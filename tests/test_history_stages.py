"""Runs across processes and stages: resume modes, reset() opening a stage, _set_epoch rewinding,
delete_metric flagging (on SQLite and PostgreSQL)."""
from __future__ import annotations


import json
import re

import numpy as np
import pytest
import torch
from pytorch_accelerated.tracking import InMemoryRunHistory

from helpers import dump, query, same
from runhistory_sql import (
    RunExistsError,
    RunInUseError,
    RunNotFoundError,
    SQLRunHistory,
)

from history_support import false, history_of, metric_rows, stored_data, true


# -- 5. resume modes --------------------------------------------------------------------------


def test_resume_never_refuses_an_existing_name(url):
    SQLRunHistory(url, experiment="exp", run_name="run").close()
    before = dump(url)

    with pytest.raises(RunExistsError, match="resume='allow'") as raised:
        SQLRunHistory(url, experiment="exp", run_name="run", resume="never")

    assert "'run'" in str(raised.value) and "'exp'" in str(raised.value)
    assert dump(url) == before


def test_resume_must_refuses_a_missing_name(url):
    with pytest.raises(RunNotFoundError, match="There is no run 'ghost' in experiment 'exp'"):
        SQLRunHistory(url, experiment="exp", run_name="ghost", resume="must")

    assert query(url, "SELECT * FROM v_runs") == []


def test_resume_allow_creates_then_continues(url):
    with SQLRunHistory(url, run_name="run", resume="allow") as first:
        first.update_metric("loss", 1.0)
        first._increment_epoch()

    with SQLRunHistory(url, run_name="run", resume="allow") as second:
        second.update_metric("loss", 0.5)
        continued = (second.run_id, second.current_epoch, second.get_metric_values("loss"))

    assert continued == (first.run_id, 2, [1.0, 0.5])
    assert query(url, "SELECT run_name, status, num_stages FROM v_runs") == [("run", "finished", 1)]
    assert metric_rows(url) == [(1, "loss", 0, 1, 1.0, None), (1, "loss", 1, 2, 0.5, None)]


def test_generated_run_names_are_unique(url):
    with SQLRunHistory(url) as a, SQLRunHistory(url) as b:
        names = [a.run_name, b.run_name]

    assert names[0] != names[1]
    assert all(re.fullmatch(r"run-\d{8}-\d{6}-[0-9a-f]{6}", name) for name in names)
    assert sorted(n for (n,) in query(url, "SELECT run_name FROM v_runs")) == sorted(names)


def test_run_names_are_unique_per_experiment_only(url):
    SQLRunHistory(url, experiment="a", run_name="run").close()
    SQLRunHistory(url, experiment="b", run_name="run").close()

    with pytest.raises(RunExistsError):
        SQLRunHistory(url, experiment="a", run_name="run")

    assert query(url, "SELECT experiment, run_name FROM v_runs ORDER BY run_id") == [("a", "run"), ("b", "run")]


def test_a_run_open_in_this_process_cannot_be_opened_again(history, url):
    # two open writers of one run would write the same seq numbers, and the second would retry
    # its rejected points forever; the pid check alone cannot see this (it is our own pid)
    history.update_metric("loss", 1.0)
    history.flush()
    before = stored_data(url)

    with pytest.raises(RunInUseError, match="already open in this process"):
        SQLRunHistory(url, experiment="exp", run_name="run", resume="allow")

    assert stored_data(url) == before


def test_a_closed_run_can_be_reopened_in_the_same_process(url):
    SQLRunHistory(url, run_name="run").close()

    with SQLRunHistory(url, run_name="run", resume="must") as again:
        assert again.run_name == "run"


# -- 6. reset starts a new stage ------------------------------------------------------------


def test_reset_starts_a_new_stage_and_keeps_rows(history, url):
    history.set_metric_name_prefix("train_")
    history.update_metric("loss", 1.0)
    history._increment_epoch()
    history.update_metric("loss", 0.8)

    history.reset()
    history.update_metric("loss", 0.7)
    history.flush()

    assert (history.current_epoch, history.metric_name_prefix) == (1, "train_")
    assert history.get_metric_values("train_loss") == [0.7]
    assert metric_rows(url) == [
        (1, "train_loss", 0, 1, 1.0, None),
        (1, "train_loss", 1, 2, 0.8, None),
        (2, "train_loss", 0, 1, 0.7, None),
    ]
    assert query(url, "SELECT num_stages, current_epoch FROM v_runs") == [(2, 1)]


def test_reset_of_a_stage_without_points_reuses_it(history, url):
    history._increment_epoch()

    history.reset()
    history.reset()
    history.update_metric("loss", 1.0)
    history.flush()

    assert query(url, "SELECT num_stages, current_epoch FROM v_runs") == [(1, 1)]
    assert metric_rows(url) == [(1, "loss", 0, 1, 1.0, None)]


def test_reset_after_a_new_stage_without_points_reuses_that_stage(history, url):
    history.update_metric("loss", 1.0)

    history.reset()
    history.reset()
    history.flush()

    assert query(url, "SELECT num_stages FROM v_runs") == [(2,)]


def test_resume_continues_the_latest_stage(url):
    with SQLRunHistory(url, run_name="run") as h:
        h.update_metric("loss", 1.0)
        h.reset()
        h.update_metric("acc", 0.5)
        h._increment_epoch()

    with SQLRunHistory(url, run_name="run", resume="must") as resumed:
        assert history_of(resumed) == {
            "names": ["acc"], "values": {"acc": [0.5]}, "latest": {"acc": 0.5}, "epoch": 2,
        }


# -- 7. _set_epoch rewinds ------------------------------------------------------------------


def record_three_epochs(h: SQLRunHistory) -> None:
    for epoch in (1, 2, 3):
        h.update_metric("loss", float(epoch))
        h.update_metric("lr", 0.1 * epoch)
        if epoch < 3:
            h._increment_epoch()


def test_set_epoch_supersedes_points_of_that_epoch_and_later(history, url):
    record_three_epochs(history)

    history._set_epoch(2)
    history.update_metric("loss", 2.5)
    history.flush()

    assert (history.current_epoch, history.get_metric_values("loss")) == (2, [1.0, 2.5])
    assert history.get_metric_values("lr") == [0.1]
    assert metric_rows(url) == [
        (1, "loss", 0, 1, 1.0, None), (1, "loss", 1, 2, 2.5, None), (1, "lr", 0, 1, 0.1, None),
    ]
    assert query(url, "SELECT m.name, p.seq, p.rev, p.epoch, p.value FROM points p "
                      "JOIN series s ON s.id = p.series_id JOIN metrics m ON m.id = s.metric_id "
                      "ORDER BY m.name, p.rev, p.seq") == [
        ("loss", 0, 0, 1, 1.0), ("loss", 1, 0, 2, 2.5), ("loss", 1, 1, 2, 2.0), ("loss", 2, 1, 3, 3.0),
        ("lr", 0, 0, 1, 0.1), ("lr", 1, 1, 2, 0.2), ("lr", 2, 1, 3, 0.30000000000000004),
    ]
    events = query(url, "SELECT stage, epoch, kind, payload FROM v_events WHERE kind = 'rewind'")
    assert [(s, e, k, json.loads(p)) for s, e, k, p in events] == [
        (1, 2, "rewind", {"to_epoch": 2, "superseded_points": 4, "rev": 1}),
    ]
    assert query(url, "SELECT current_epoch FROM v_runs") == [(2,)]


def test_set_epoch_on_a_resumed_run_rewinds_the_stored_history(url):
    with SQLRunHistory(url, run_name="run") as h:
        record_three_epochs(h)

    with SQLRunHistory(url, run_name="run", resume="must") as resumed:
        resumed._set_epoch(1)
        resumed.update_metric("loss", 0.5)
        state = history_of(resumed)

    assert state == {"names": ["loss"], "values": {"loss": [0.5]}, "latest": {"loss": 0.5}, "epoch": 1}
    assert metric_rows(url) == [(1, "loss", 0, 1, 0.5, None)]
    assert query(url, "SELECT COUNT(*) FROM points WHERE rev > 0") == [(6,)]


def test_set_epoch_rewinds_where_in_memory_run_history_keeps_stale_points(history):
    # a documented difference: train(resume_from=...) re-runs the saved epoch, so its old
    # points must not survive; InMemoryRunHistory only moves the epoch counter
    reference = InMemoryRunHistory()
    for h in (reference, history):
        h.update_metric("loss", 1.0)
        h._increment_epoch()
        h.update_metric("loss", 2.0)

        h._set_epoch(2)

    assert (reference.current_epoch, reference.get_metric_values("loss")) == (2, [1.0, 2.0])
    assert (history.current_epoch, history.get_metric_values("loss")) == (2, [1.0])


def test_set_epoch_to_zero_rewinds_everything_as_the_trainer_may_ask(history):
    # the trainer calls _set_epoch(metadata.get("current_epoch", 0)) on resume
    history.update_metric("loss", 1.0)

    history._set_epoch(0)

    assert (history.current_epoch, history.get_metric_names()) == (0, set())


def test_set_epoch_below_zero_is_a_value_error(history):
    with pytest.raises(ValueError, match="non-negative int, not -1"):
        history._set_epoch(-1)

    assert history.current_epoch == 1


@pytest.mark.parametrize("epoch", [np.int64(2), np.uint8(2), torch.tensor(2), torch.tensor(2, dtype=torch.int32)])
def test_set_epoch_takes_any_integral_number_as_a_checkpoint_may_hold_one(history, url, epoch):
    record_three_epochs(history)

    history._set_epoch(epoch)

    assert type(history.current_epoch) is int
    assert (history.current_epoch, history.get_metric_values("loss")) == (2, [1.0])
    assert query(url, "SELECT current_epoch FROM v_runs") == [(2,)]


@pytest.mark.parametrize(
    "epoch", ["3", 2.0, True, None, np.bool_(True), np.float64(2.0), torch.tensor(2.0), torch.tensor(True), torch.tensor([2])],
)
def test_set_epoch_to_something_else_than_an_int_is_a_type_error(history, epoch):
    with pytest.raises(TypeError, match="The epoch must be a non-negative int, not "):
        history._set_epoch(epoch)

    assert history.current_epoch == 1


# -- 8. delete_metric -------------------------------------------------------------------------


def test_delete_metric_flags_rows_and_a_new_series_starts_at_zero(history, url):
    history.update_metric("loss", 1.0)
    history.update_metric("loss", 2.0)

    history.delete_metric("loss")
    history.flush()
    deleted = (history.get_metric_names(), metric_rows(url))
    history.update_metric("loss", 3.0)
    history.flush()

    assert deleted == (set(), [])
    assert history.get_metric_values("loss") == [3.0]
    assert metric_rows(url) == [(1, "loss", 0, 1, 3.0, None)]
    flags = query(url, "SELECT s.deleted, p.seq, p.value FROM points p JOIN series s ON s.id = p.series_id "
                       "ORDER BY s.id, p.seq")
    assert same(flags, [(true(url), 0, 1.0), (true(url), 1, 2.0), (false(url), 0, 3.0)])


def test_a_deleted_metric_stays_deleted_after_resume(url):
    with SQLRunHistory(url, run_name="run") as h:
        h.update_metric("loss", 1.0)
        h.update_metric("acc", 0.5)
        h.delete_metric("loss")

    with SQLRunHistory(url, run_name="run", resume="must") as resumed:
        assert resumed.get_metric_names() == {"acc"}


