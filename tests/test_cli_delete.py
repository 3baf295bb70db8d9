"""``runhistory-sql delete``: asks first, removes exactly one run, and never a live one."""
from __future__ import annotations

import pytest
from helpers import dump, query
from helpers import execute

from runhistory_sql import SQLRunHistory
from runhistory_sql.db.clock import now_ms

BASELINE = "run 'baseline' (id 1, experiment 'cli', finished)"
ASKED = f"This deletes {BASELINE}: 7 points, 2 configs, 7 events, 2 stages.\nDelete it? This cannot be undone [y/N]: "


@pytest.fixture
def two_runs(url):
    """A private database (SQLite, then PostgreSQL) with runs 'keep' and 'doomed'."""
    for name in ("keep", "doomed"):
        with SQLRunHistory(url, experiment="exp", run_name=name) as history:
            history.update_metric("loss", 1.0)
            history.log_event("checkpoint", path=f"{name}.pt")
            history._increment_epoch()
    return url


def metrics_of_other_runs(url: str, run_id: int) -> list[tuple]:
    return query(url, "SELECT * FROM v_metrics WHERE run_id <> :id ORDER BY run_id, stage, metric, seq", {"id": run_id})


def test_declining_deletes_nothing(run, trained_url):
    before = dump(trained_url)

    result = run("delete", "baseline", "--url", trained_url, input="n\n")

    assert result.exit_code == 0
    assert result.output == ASKED + "n\nNothing deleted.\n"
    assert dump(trained_url) == before


def test_can_delete_after_saying_yes(run, trained_url):
    others = metrics_of_other_runs(trained_url, 1)

    result = run("delete", "baseline", "--url", trained_url, input="y\n")

    assert result.output == ASKED + f"y\nDeleted {BASELINE}: 7 points, 2 configs, 7 events, 2 stages.\n"
    assert query(trained_url, "SELECT run_name FROM v_runs ORDER BY run_id") == [("fast",), ("finetune",), ("resumed",), ("solo",)]
    assert query(trained_url, "SELECT COUNT(*) FROM series WHERE run_id = 1") == [(0,)]
    assert metrics_of_other_runs(trained_url, 1) == others


def test_yes_skips_the_question(run, two_runs):
    others = metrics_of_other_runs(two_runs, 2)

    result = run("delete", "doomed", "--yes", "--url", two_runs)

    assert result.output == "Deleted run 'doomed' (id 2, experiment 'exp', finished): 1 point, 0 configs, 1 event, 1 stage.\n"
    assert query(two_runs, "SELECT run_name FROM v_runs") == [("keep",)]
    assert query(two_runs, "SELECT COUNT(*) FROM points") == [(1,)]
    assert metrics_of_other_runs(two_runs, 2) == others


def test_a_run_open_in_this_process_is_refused(run, two_runs):
    with SQLRunHistory(two_runs, experiment="exp", run_name="live") as history:
        history.update_metric("loss", 1.0)
        history.flush()

        result = run("delete", "live", "--yes", "--url", two_runs)

        assert result.exit_code == 1
        assert result.output == "Error: Run 'live' is open for writing in this process. close() its SQLRunHistory first, then delete it.\n"
    assert query(two_runs, "SELECT run_name FROM v_runs ORDER BY run_id") == [("keep",), ("doomed",), ("live",)]


def test_a_run_another_machine_holds_is_refused(run, trained_url):
    execute(trained_url, "UPDATE runs SET status = 'running', host = 'elsewhere', heartbeat_at = :now, ended_at = NULL WHERE id = 2", {"now": now_ms()})
    before = dump(trained_url)

    result = run("delete", "fast", "--yes", "--url", trained_url)

    assert result.exit_code == 1
    assert result.output == "Error: Run 'fast' is held by live process 4242 on elsewhere. Wait for it to end (or stop it), then delete the run.\n"
    assert dump(trained_url) == before


def test_an_unknown_run_is_a_one_line_error(run, trained_url):
    result = run("delete", "nope", "--url", trained_url)

    assert result.exit_code == 1
    assert result.output == "Error: There is no run named 'nope'. List them with: runhistory-sql runs\n"


def test_a_run_can_be_chosen_by_id_and_experiment(run, trained_url):
    result = run("delete", "id:5", "-e", "other", "--yes", "--url", trained_url)

    assert result.output == "Deleted run 'solo' (id 5, experiment 'other', finished): 2 points, 1 config, 3 events, 1 stage.\n"
