"""A rank that is not world-process-zero never writes; closing a history."""
from __future__ import annotations


import json
from typing import Iterator

import pytest

from helpers import dump, is_postgres, query, same
from runhistory_sql import (
    DatabaseUnavailableError,
    RunHistorySQLError,
    SQLRunHistory,
)

from history_support import history_of, metric_rows, true


# -- 10. a rank that is not world-process-zero never writes -------------------------------------


@pytest.fixture
def no_accelerate_state() -> Iterator[None]:
    # rank.py prefers an initialised PartialState over $RANK; a Trainer test run earlier in the
    # same session would have initialised it, so hide it for the duration of the test
    from accelerate.state import PartialState

    saved = dict(PartialState._shared_state)
    PartialState._shared_state.clear()
    yield
    PartialState._shared_state.clear()
    PartialState._shared_state.update(saved)


def test_a_non_writer_rank_reads_its_mirror_and_never_writes(url, db_path, monkeypatch, no_accelerate_state):
    with SQLRunHistory(url, run_name="run") as h:
        h.update_metric("loss", 1.0)
        h._increment_epoch()
    # on SQLite, not even the file's bytes may change (no heartbeat, no "resumed" event)
    before, file_bytes = dump(url), None if is_postgres(url) else db_path.read_bytes()
    monkeypatch.setenv("RANK", "1")

    h = SQLRunHistory(url, run_name="run", resume="must")
    try:
        resumed = history_of(h)
        h.update_metric("loss", 0.5)
        h._increment_epoch()
        h.set_metric_name_prefix("eval_")
        h.update_metric("acc", 0.9)
        h.delete_metric("loss")
        h._set_epoch(2)
        h.reset()
        h.update_metric("acc", 0.95)
        assert h.flush() is True
        after = history_of(h)
    finally:
        h.close()

    assert resumed == {"names": ["loss"], "values": {"loss": [1.0]}, "latest": {"loss": 1.0}, "epoch": 2}
    assert after == {"names": ["eval_acc"], "values": {"eval_acc": [0.95]}, "latest": {"eval_acc": 0.95}, "epoch": 1}
    assert (h.is_writer, h.write_transactions) == (False, 0)
    assert dump(url) == before
    if not is_postgres(url):
        assert db_path.read_bytes() == file_bytes


def test_a_non_writer_rank_with_a_new_run_writes_nothing(url, monkeypatch, no_accelerate_state):
    SQLRunHistory(url, run_name="other").close()
    before = dump(url)
    monkeypatch.setenv("RANK", "1")

    with SQLRunHistory(url, run_name="run") as h:
        h.update_metric("loss", 1.0)
        h._increment_epoch()

    assert (h.is_writer, h.write_transactions, h.get_metric_values("loss")) == (False, 0, [1.0])
    assert dump(url) == before


# -- closing ----------------------------------------------------------------------------------


def test_close_commits_what_is_pending_and_marks_the_run_finished(url):
    h = SQLRunHistory(url, run_name="run", flush_interval=60)
    h.update_metric("loss", 1.0)

    h.close()

    assert metric_rows(url) == [(1, "loss", 0, 1, 1.0, None)]
    assert same(query(url, "SELECT status, ended_at IS NOT NULL FROM v_runs"), [("finished", true(url))])


def test_an_exception_in_the_with_block_marks_the_run_failed(url):
    with pytest.raises(RuntimeError):
        with SQLRunHistory(url, run_name="run"):
            raise RuntimeError("boom")

    assert query(url, "SELECT status FROM v_runs") == [("failed",)]


def test_an_exception_whose_message_no_database_can_store_still_marks_the_run_failed(url):
    with pytest.raises(FileNotFoundError):
        with SQLRunHistory(url, run_name="run"):
            raise FileNotFoundError("no file b'\\xff' decoded as 'x\udcff.pt'")

    (payload,) = query(url, "SELECT payload FROM v_events WHERE kind = 'exception'")[0]
    assert query(url, "SELECT status FROM v_runs") == [("failed",)]
    assert json.loads(payload)["message"] == "no file b'\\xff' decoded as 'x\\udcff.pt'"


def test_flush_after_close_returns_at_once(history):
    history.update_metric("loss", 1.0)
    history.close()

    assert history.flush() is True
    history.close()  # a second close is harmless


def test_points_recorded_after_close_are_refused_not_lost_silently(history, url):
    history.close()

    with pytest.raises(RunHistorySQLError, match="is closed"):
        history.update_metric("loss", 1.0)

    assert history.get_metric_names() == set()
    assert history.flush(timeout=5) is True
    assert metric_rows(url) == []


def test_an_unreachable_server_is_a_clear_error_without_the_password():
    with pytest.raises(DatabaseUnavailableError) as raised:
        SQLRunHistory("postgresql://trainer:s3cret@127.0.0.1:1/runs")

    message = str(raised.value)
    assert message.startswith("Cannot use database postgresql+psycopg://trainer:***@127.0.0.1:1/runs: ")
    assert message.endswith("Check that the server is running and the URL and credentials are right.")
    assert "s3cret" not in message


def test_summaries_rank_runs_by_their_best_value_in_sql_and_through_the_store(url):
    from runhistory_sql import RunStore

    for name, losses in (("a", [3.0, 1.0, 2.0]), ("b", [0.5, float("nan"), 4.0]), ("c", [2.5])):
        with SQLRunHistory(url, run_name=name) as h:
            for loss in losses:
                h.update_metric("loss", loss)
                h._increment_epoch()
    with RunStore(url) as store:
        best = store.best("loss", limit=2)
        highest = store.best("loss", mode="max", limit=1)

    in_sql = query(url, "SELECT run_name, MIN(min_value) FROM v_summaries WHERE metric = 'loss' GROUP BY run_name ORDER BY 2 LIMIT 2")
    assert best == [("default", "b", 0.5), ("default", "a", 1.0)]
    assert in_sql == [("b", 0.5), ("a", 1.0)]
    assert highest == [("default", "b", 4.0)]
    assert query(url, "SELECT run_name, n_points FROM v_summaries ORDER BY run_name") == [("a", 3), ("b", 3), ("c", 1)]
