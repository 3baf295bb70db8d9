"""``runhistory-sql query`` has a time limit, a row cap and a byte cap, on both backends."""
from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import is_postgres, reader_url, script_env

from runhistory_sql import RunStore, SQLRunHistory
from runhistory_sql.read.query import run_query

TEN_THOUSAND = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 10000) SELECT x FROM r"
ENDLESS = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT COUNT(*) FROM r"
STOPPED = "Error: The query was stopped after 1 s, its time limit; give it longer with --timeout SECONDS.\n"
TOO_BIG = (
    "Error: The result is larger than 64 MB, the most runhistory-sql query returns; select fewer rows "
    "(--limit) or shorter values (e.g. substr(value_json, 1, 100)).\n"
)


@pytest.fixture
def readable(url):
    """A database with one run; on PostgreSQL as a role that may only read it."""
    with SQLRunHistory(url, experiment="exp", run_name="one") as history:
        history.update_metric("loss", 1.0)
    return reader_url(url)


def test_can_cap_the_rows_with_a_notice(run, readable):
    result = run("query", "--url", readable, "--limit", "5", "--format", "csv", TEN_THOUSAND)

    assert result.exit_code == 0
    assert result.stdout == "x\n1\n2\n3\n4\n5\n"
    assert result.stderr == "showing the first 5 rows (--limit to change)\n"


def test_a_result_of_exactly_the_limit_has_no_notice(run, readable):
    result = run("query", "--url", readable, "--limit", "10000", "--format", "csv", TEN_THOUSAND)

    assert result.stdout == "x\n" + "".join(f"{x}\n" for x in range(1, 10001))
    assert result.stderr == ""


def test_the_library_says_whether_rows_were_left_out(readable):
    with RunStore(readable) as store:
        capped = run_query(store, TEN_THOUSAND, limit=3)
        whole = store.query("SELECT run_name FROM v_runs", limit=1)

    assert (capped.columns, capped.rows, capped.truncated) == (["x"], [(1,), (2,), (3,)], True)
    assert (whole.rows, whole.truncated) == ([("one",)], False)


def test_an_endless_recursive_query_is_stopped_at_the_timeout(run, readable):
    result = run("query", "--url", readable, "--timeout", "1", ENDLESS)

    assert result.exit_code == 1
    assert result.output == STOPPED


def test_an_endless_query_is_stopped_also_while_its_rows_are_fetched(run, readable):
    # the first rows come at once; the time limit covers fetching the rest, too
    slow = ENDLESS.replace("SELECT COUNT(*) FROM r", "SELECT x FROM r WHERE x % 1000000000 = 1")

    result = run("query", "--url", readable, "--timeout", "1", slow)

    assert result.output == STOPPED


def test_pg_sleep_is_stopped_at_the_timeout_even_if_it_lifts_the_timeout(run, pg_url):
    readable = reader_url(pg_url)
    lifted = "SELECT set_config('statement_timeout', '0', true), pg_sleep(30)"

    slept = run("query", "--url", readable, "--timeout", "1", "SELECT pg_sleep(30)")
    lifting = run("query", "--url", readable, "--timeout", "1", lifted)

    assert (slept.output, lifting.output) == (STOPPED, STOPPED)


def test_a_huge_value_is_refused(run, readable):
    huge = "SELECT repeat('x', 100000000)" if is_postgres(readable) else "SELECT randomblob(1e9)"

    result = run("query", "--url", readable, huge)

    assert result.exit_code == 1
    assert result.output == TOO_BIG


def test_many_values_that_add_up_to_too_much_are_refused(run, readable):
    big_rows = TEN_THOUSAND.replace("SELECT x FROM r", "SELECT x, repeat('x', 1000000) AS pad FROM r")
    if not is_postgres(readable):  # SQLite has no repeat()
        big_rows = big_rows.replace("repeat('x', 1000000)", "zeroblob(1000000)")

    result = run("query", "--url", readable, big_rows)

    assert result.output == TOO_BIG


@pytest.mark.slow
def test_randomblob_of_a_gigabyte_fails_in_bounded_memory(db_url):
    # Before the byte cap, SELECT randomblob(1e9) took 4.9 GB and a minute; under a 1.5 GB
    # address-space limit the command must still end with the one-line message.
    with SQLRunHistory(db_url, experiment="exp", run_name="one") as history:
        history.update_metric("loss", 1.0)
    script = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20)); "
        "from runhistory_sql.cli import main; main(sys.argv[1:])"
    )

    done = subprocess.run([sys.executable, "-c", script, "query", "--url", db_url, "SELECT randomblob(1e9)"],
                          env=script_env(), capture_output=True, text=True, timeout=120)

    assert (done.returncode, done.stdout, done.stderr) == (1, "", TOO_BIG)


@pytest.mark.parametrize(("option", "value"), [("--timeout", "0"), ("--limit", "0")])
def test_limits_must_be_positive(run, db_url, option, value):
    result = run("query", "--url", db_url, option, value, "SELECT 1")

    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and f"Invalid value for '{option}'" in result.output
