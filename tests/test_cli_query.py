"""``runhistory-sql query``: reads print exactly; every kind of write is refused and changes nothing."""
from __future__ import annotations

import json
import math

import pytest
from helpers import dump, is_postgres, reader_url

from runhistory_sql import SQLRunHistory
from runhistory_sql.read.query import first_keyword

HINT = "Runs are recorded by SQLRunHistory; to remove one, use: runhistory-sql delete RUN"
ALLOWED = "allowed: EXPLAIN, PRAGMA, SELECT, SHOW, TABLE, VALUES, WITH"


def _record_odd_values(url: str) -> str:
    """One run whose loss has NaN, +inf and -0.0; the URL that reads it (PostgreSQL: as a reader)."""
    with SQLRunHistory(url, experiment="exp", run_name="odd") as history:
        for value in (1.5, math.nan, math.inf, -0.0):
            history.update_metric("loss", value)
        history._increment_epoch()
    return reader_url(url)


@pytest.fixture
def readable(trained_any):
    """The trained runs, on PostgreSQL as a role that may only read them."""
    return reader_url(trained_any)


@pytest.fixture
def odd_values(url):
    """A private database (SQLite file, then PostgreSQL) with odd values."""
    return _record_odd_values(url)


@pytest.fixture
def odd_sqlite(db_url):
    return _record_odd_values(db_url)


@pytest.fixture
def odd_postgres(pg_url):
    return _record_odd_values(pg_url)


def test_can_select_from_a_view(run, readable):
    result = run("query", "--url", readable, "SELECT run_id, run_name, status, current_epoch FROM v_runs ORDER BY run_id")

    assert result.exit_code == 0
    assert result.output == (
        "┏━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━━━━━━┓\n"
        "┃ run_id ┃ run_name ┃ status   ┃ current_epoch ┃\n"
        "┡━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━━━━━━┩\n"
        "│ 1      │ baseline │ finished │ 1             │\n"
        "│ 2      │ fast     │ finished │ 4             │\n"
        "│ 3      │ finetune │ finished │ 6             │\n"
        "│ 4      │ resumed  │ finished │ 6             │\n"
        "│ 5      │ solo     │ finished │ 2             │\n"
        "└────────┴──────────┴──────────┴───────────────┘\n"
    )


def test_can_print_csv_with_exact_values(run, readable):
    sql = "SELECT epoch, value FROM v_metrics WHERE run_name = 'baseline' AND metric = 'eval_loss_epoch' ORDER BY seq"

    result = run("query", "--url", readable, "--format", "csv", sql)

    assert result.output == "epoch,value\n1,9.308703422546387\n2,7.274295330047607\n3,2.8346123695373535\n"


def test_can_aggregate_to_json(run, readable):
    sql = (
        "SELECT run_name, COUNT(*) AS points, SUM(epoch) AS epochs FROM v_metrics "
        "WHERE metric = 'eval_loss_epoch' AND experiment = 'cli' GROUP BY run_name ORDER BY run_name"
    )

    result = run("query", "--url", readable, "--format", "json", sql)

    assert json.loads(result.output) == [
        {"run_name": "baseline", "points": 3, "epochs": 6},
        {"run_name": "fast", "points": 3, "epochs": 6},
        {"run_name": "finetune", "points": 5, "epochs": 15},
        {"run_name": "resumed", "points": 5, "epochs": 15},
    ]


def test_percent_signs_and_colons_are_literal(run, readable):
    sql = "SELECT run_name || ':%' AS label FROM v_runs WHERE run_name LIKE 'f%' ORDER BY run_id"

    result = run("query", "--url", readable, "--format", "csv", sql)

    assert result.output == "label\nfast:%\nfinetune:%\n"


def test_nan_infinity_and_negative_zero_print_sensibly(run, odd_values):
    table = run("query", "--url", odd_values, "SELECT seq, value FROM v_metrics ORDER BY seq")
    as_json = run("query", "--url", odd_values, "--format", "json", "SELECT seq, value FROM v_metrics ORDER BY seq")

    # SQLite has no NaN: its view shows NULL (the points table keeps it in its special column);
    # -0.0 keeps its sign in both views
    postgres = is_postgres(odd_values)
    nan, zero = ("nan", "-0") if postgres else ("", "-0")
    assert table.output == (
        "┏━━━━━┳━━━━━━━┓\n"
        "┃ seq ┃ value ┃\n"
        "┡━━━━━╇━━━━━━━┩\n"
        "│ 0   │ 1.5   │\n"
        f"│ 1   │ {nan:<5} │\n"
        "│ 2   │ inf   │\n"
        f"│ 3   │ {zero:<5} │\n"
        "└─────┴───────┘\n"
    )
    values = json.dumps([row["value"] for row in json.loads(as_json.output)])
    assert values == ('[1.5, "NaN", "Infinity", -0.0]' if postgres else '[1.5, null, "Infinity", -0.0]')


def test_a_statement_that_returns_no_rows_prints_its_columns(run, readable):
    result = run("query", "--url", readable, "--format", "csv", "SELECT run_name FROM v_runs WHERE run_id = 99")

    assert result.output == "run_name\n"


def _refused(statement: str) -> str:
    hint = f" {HINT}" if statement in ("UPDATE", "DELETE", "DROP") else ""  # removing: the way to delete
    return f"Error: runhistory-sql query only reads, and {statement} is not a read ({ALLOWED}).{hint}\n"


SINGLE = "Error: runhistory-sql query runs a single statement; give one (nothing after its ';').\n"
COMMON = [
    ("INSERT INTO experiments (name, created_at) VALUES ('x', 0)", _refused("INSERT")),
    ("UPDATE runs SET name = 'renamed'", _refused("UPDATE")),
    ("  delete from points", _refused("DELETE")),
    ("DROP TABLE points", _refused("DROP")),
    ("/* looks harmless */ (DELETE FROM points)", _refused("DELETE")),
    ("SELECT 1; DELETE FROM points", SINGLE),
]
SQLITE_ONLY = [
    ("ATTACH '{tmp}/attached.db' AS other", _refused("ATTACH")),
    ("PRAGMA writable_schema = 1", f"Error: runhistory-sql query only reads, and the database refused a write (not authorized). {HINT}\n"),
    ("PRAGMA journal_mode = DELETE", f"Error: runhistory-sql query only reads, and the database refused a write (not authorized). {HINT}\n"),
    ("WITH doomed AS (SELECT 1) DELETE FROM points",
     f"Error: runhistory-sql query only reads, and the database refused a write (attempt to write a readonly database). {HINT}\n"),
]
POSTGRES_ONLY = [
    ("CREATE TABLE sneaky (x int)", _refused("CREATE")),
    ("COPY (SELECT 1) TO PROGRAM 'touch {tmp}/attached.db'", _refused("COPY")),
    ("SELECT 1; COMMIT; SET default_transaction_read_only = off; DELETE FROM points", SINGLE),
    ("WITH doomed AS (DELETE FROM points RETURNING 1) SELECT COUNT(*) FROM doomed",
     f"Error: runhistory-sql query only reads, and the database refused a write (a data-modifying statement in WITH). {HINT}\n"),
]


@pytest.mark.parametrize(("statement", "message"), COMMON, ids=[s for s, _ in COMMON])
def test_a_write_is_refused_and_changes_nothing(run, odd_values, tmp_path, statement, message):
    _assert_refused(run, odd_values, statement.format(tmp=tmp_path), message, tmp_path)


@pytest.mark.parametrize(("statement", "message"), SQLITE_ONLY, ids=[s for s, _ in SQLITE_ONLY])
def test_sqlite_refuses_attach_pragmas_that_set_and_hidden_writes(run, odd_sqlite, tmp_path, statement, message):
    _assert_refused(run, odd_sqlite, statement.format(tmp=tmp_path), message, tmp_path)


@pytest.mark.parametrize(("statement", "message"), POSTGRES_ONLY, ids=[s for s, _ in POSTGRES_ONLY])
def test_postgres_refuses_ddl_copy_to_program_and_escapes_from_the_transaction(run, odd_postgres, tmp_path, statement, message):
    _assert_refused(run, odd_postgres, statement.format(tmp=tmp_path), message, tmp_path)


def _assert_refused(run, url, statement, message, tmp_path):
    before = dump(url)

    result = run("query", "--url", url, statement)

    assert result.exit_code == 1
    assert result.output == message
    assert dump(url) == before
    assert not (tmp_path / "attached.db").exists()


def test_a_database_error_is_one_line(run, readable):
    result = run("query", "--url", readable, "SELECT * FROM no_such_table")

    assert result.exit_code == 1
    assert result.output.startswith("Error: The query failed: ")
    assert "no_such_table" in result.output
    assert result.output.count("\n") == 1


def test_an_empty_statement_is_refused(run, readable):
    result = run("query", "--url", readable, " -- nothing here\n")

    assert result.exit_code == 1
    assert result.output == 'Error: There is no SQL statement to run. Example: runhistory-sql query "SELECT * FROM v_runs"\n'


def test_a_missing_sqlite_file_is_not_created(run, db_path, db_url):
    result = run("query", "--url", db_url, "SELECT 1")

    assert result.exit_code == 1
    assert result.output.startswith(f"Error: There is no database at {db_path}")
    assert not db_path.exists()


@pytest.mark.parametrize(
    ("sql", "keyword"),
    [("select 1", "select"), ("-- a\n/* b */ ((WITH x AS (SELECT 1) SELECT 1))", "with"), ("", ""), ("  ;", "")],
)
def test_first_keyword_skips_blanks_comments_and_parentheses(sql, keyword):
    assert first_keyword(sql) == keyword


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("SELEC run_name FROM v_runs", "SELEC does not start a SQL statement; a query starts with one of "
                                       "EXPLAIN, PRAGMA, SELECT, SHOW, TABLE, VALUES, WITH. Did you mean SELECT?"),
        ("frobnicate", "FROBNICATE does not start a SQL statement; a query starts with one of "
                       "EXPLAIN, PRAGMA, SELECT, SHOW, TABLE, VALUES, WITH."),
        ("VACUUM", f"runhistory-sql query only reads, and VACUUM is not a read ({ALLOWED})."),
    ],
)
def test_a_word_that_starts_no_statement_is_not_taken_for_a_write(run, db_url, statement, message):
    result = run("query", "--url", db_url, statement)

    assert (result.exit_code, result.output) == (1, f"Error: {message}\n")
