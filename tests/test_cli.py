"""The runhistory-sql command, run in-process with click's CliRunner."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from helpers import rows
from pg_server import free_port

from runhistory_sql.db import migrate
from runhistory_sql.cli import iter_commands, main


@pytest.mark.parametrize("path", list(iter_commands(main)))
def test_every_command_has_help_with_an_example(run, path):
    result = run(*path, "--help")

    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "runhistory-sql " + " ".join(path) in result.output


def test_can_create_check_and_show_the_schema(run, db_url):
    created = run("db", "upgrade", db_url)
    again = run("db", "upgrade", db_url)
    current = run("db", "current", db_url)
    checked = run("db", "check", db_url)

    head = migrate.head_revision()
    assert created.output == f"Upgraded {db_url} from revision (empty) to {head}.\n"
    assert again.output == f"{db_url} is already at revision {head}.\n"
    assert current.output == f"{db_url}: revision {head} (up to date)\n"
    assert checked.output == f"{db_url}: schema OK at revision {head}\n"


def test_check_fails_on_an_old_database_with_the_command_that_fixes_it(run, db_url, engine):
    migrate.upgrade(engine, "0001")

    result = run("db", "check", db_url)

    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert f"run: runhistory-sql db upgrade {db_url}" in result.output


def test_url_comes_from_the_environment(run, db_url, monkeypatch):
    monkeypatch.setenv("RUNHISTORY_SQL_URL", db_url)

    result = run("db", "upgrade")

    assert result.output.startswith(f"Upgraded {db_url} from revision (empty)")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:////no/such/dir/runs.db", "Error: The directory /no/such/dir of database URL"),
        ("foo://x", "Error: Unknown database dialect 'foo'"),
        ("not a url", "Error: Could not parse database URL 'not a url'"),
        ("mysql://u:s3cret@h/db", "Error: runhistory-sql supports SQLite and PostgreSQL, not mysql (URL mysql://u:***@h/db). "
         "Use sqlite:///path.db or postgresql://user@host/dbname.\n"),
        ("mysql+pymysql://h/db", "Error: runhistory-sql supports SQLite and PostgreSQL, not mysql (URL mysql+pymysql://h/db). "
         "Use sqlite:///path.db or postgresql://user@host/dbname.\n"),
        ("postgresql://u:p@ss@h/db", "Error: The user name or password in database URL postgresql://u:***@h/db has an '@' "
         "that is not percent-encoded, so its tail reads as the host. Write each '@' in it as %40 "
         "(e.g. postgresql://user:s3cr%40t@host/dbname).\n"),
    ],
)
def test_bad_urls_are_one_line_errors(run, url, message):
    result = run("db", "current", url)

    assert result.exit_code == 1
    assert result.output.startswith(message)
    assert result.output.count("\n") == 1


@pytest.mark.parametrize("command", [("runs",), ("show", "baseline"), ("db", "upgrade")])
def test_a_file_that_is_not_a_database_is_one_line(run, tmp_path, command):
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n")

    result = run(*command, "--url", f"sqlite:///{path}")

    assert (result.exit_code, result.output) == (1, (
        f"Error: The file {path} is not a SQLite database (URL sqlite:///{path}). Point --url / "
        "$RUNHISTORY_SQL_URL at a runhistory-sql database, or at a new file to create one there.\n"
    ))
    assert path.read_text() == "not a database\n"


def test_demo_trains_records_and_shows_a_query(run, db_url, db_path):
    result = run("demo", "--url", db_url, "--epochs", "2", "--run-name", "demo-run")

    assert result.exit_code == 0
    assert f"Recorded run demo-run (2 epochs, experiment 'demo') in {db_url} (file {db_path})" in result.output
    assert "FROM v_metrics" in result.output
    stored = rows(db_path, "SELECT epoch, metric FROM v_metrics WHERE run_name = 'demo-run' ORDER BY epoch, metric")
    assert stored == [(1, "eval_loss_epoch"), (1, "train_loss_epoch"), (2, "eval_loss_epoch"), (2, "train_loss_epoch")]
    assert rows(db_path, "SELECT status FROM v_runs") == [("finished",)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("runs", "--status", "bogus"),
         "Error: Invalid value for '--status': 'bogus' is not one of 'running', 'finished', 'failed', 'crashed'. "
         "(see: runhistory-sql runs --help)\n"),
        (("history",), "Error: Missing argument 'RUN'. (see: runhistory-sql history --help)\n"),
        (("nosuch",), "Error: No such command 'nosuch'. (see: runhistory-sql --help)\n"),
        (("db", "current", "a", "b"), "Error: Got unexpected extra argument (b) (see: runhistory-sql db current --help)\n"),
        (("--url", "sqlite:///x.db", "runs", "--format", "csv"),
         "Error: --url goes after the command: runhistory-sql runs --format csv --url URL (see: runhistory-sql --help)\n"),
        (("--url=postgresql://u:s3cret@h/db", "show", "baseline"),
         "Error: --url goes after the command: runhistory-sql show baseline --url URL (see: runhistory-sql --help)\n"),
        (("--url", "sqlite:///x.db"),
         "Error: --url goes after the command: runhistory-sql COMMAND --url URL (see: runhistory-sql --help)\n"),
        (("db", "--url", "sqlite:///x.db", "upgrade"),
         "Error: --url goes after the command: runhistory-sql db upgrade --url URL (see: runhistory-sql db --help)\n"),
    ],
)
def test_usage_errors_are_one_line_naming_the_help(args, message):
    result = CliRunner().invoke(main, list(args), prog_name="runhistory-sql")

    assert (result.exit_code, result.output) == (2, message)


@pytest.mark.parametrize("command", [("runs",), ("show", "baseline"), ("query", "SELECT 1")])
def test_an_unreachable_server_is_one_line_with_the_password_masked(run, command):
    port = free_port()  # nothing listens there

    result = run(*command, "--url", f"postgresql://user:s3cret@127.0.0.1:{port}/runs")

    assert result.exit_code == 1
    assert result.output.startswith(f"Error: Cannot use database postgresql://user:***@127.0.0.1:{port}/runs: ")
    assert result.output.endswith("Check that the server is running and the URL and credentials are right.\n")
    assert "s3cret" not in result.output and result.output.count("\n") == 1


def _record(url: str, run_name: str) -> None:
    from runhistory_sql import SQLRunHistory

    with SQLRunHistory(url, experiment="exp", run_name=run_name) as history:
        history.update_metric("loss", 1.0)


@pytest.mark.parametrize(("name", "in_url"), [("a#b.db", "a#b.db"), ("a?b.db", "a%3Fb.db"), ("a%41.db", "a%2541.db")])
def test_a_sqlite_path_with_hash_question_mark_or_percent_opens_that_file(run, tmp_path, name, in_url):
    _record(f"sqlite:///{tmp_path / 'a'}", "decoy")  # the file the path names up to '#' or '?'
    _record(f"sqlite:///{tmp_path / in_url}", "real")

    result = run("query", "--url", f"sqlite:///{tmp_path / in_url}", "--format", "csv", "SELECT run_name FROM v_runs")

    assert result.output == "run_name\nreal\n"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == sorted(["a", name])


@pytest.mark.parametrize("command", ["current", "check"])
def test_db_current_and_check_create_no_file(run, db_path, db_url, command):
    result = run("db", command, db_url)

    assert result.exit_code == 1
    assert result.output.startswith(f"Error: There is no database at {db_path} (URL {db_url}).")
    assert not db_path.exists()
