"""On PostgreSQL, ``runhistory-sql query`` runs user SQL only as a role that can do nothing but
read: a superuser is refused with the fix, and the role ``db create-reader`` makes cannot reach
outside the database (other sessions, server files, replication slots, server functions)."""
from __future__ import annotations

import psycopg
import pytest
from helpers import READER, dump, reader_url
from sqlalchemy.engine import make_url

from runhistory_sql import RunStore, SQLRunHistory
from runhistory_sql.errors import QueryError
from runhistory_sql.read.query import run_query
from runhistory_sql.read.readers import check_reader, create_reader


@pytest.fixture
def admin_url(pg_url):
    """A database with one run, and its superuser URL."""
    with SQLRunHistory(pg_url, experiment="exp", run_name="one") as history:
        history.update_metric("loss", 1.0)
    return pg_url


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _refusal(admin_url: str, role: str, what: str) -> str:
    reader = admin_url.replace(f"{role}@", "reader@")
    admin = admin_url if what == "is a superuser" else "ADMIN_URL"
    return (
        f"Error: runhistory-sql query runs user SQL only as a read-only role, and {role} {what}. Create one "
        f"with: runhistory-sql db create-reader reader --url {admin}, then use --url {reader}\n"
    )


def test_a_superuser_is_refused_with_the_fix(run, admin_url):
    result = run("query", "--url", admin_url, "SELECT run_name FROM v_runs")

    assert result.exit_code == 1
    assert result.output == _refusal(admin_url, "postgres", "is a superuser")


def test_a_role_that_may_write_is_refused(run, admin_url, pg_server):
    pg_server.admin("DROP ROLE IF EXISTS rh_writer")
    pg_server.admin("CREATE ROLE rh_writer LOGIN")
    with psycopg.connect(_dsn(admin_url), autocommit=True) as conn:
        conn.execute("GRANT SELECT, INSERT ON points, runs TO rh_writer")
    writer_url = admin_url.replace("postgres@", "rh_writer@")

    result = run("query", "--url", writer_url, "SELECT run_name FROM v_runs")

    assert result.output == _refusal(writer_url, "rh_writer", "may write to points, may write to runs")


def test_a_set_role_to_a_reader_is_not_enough(admin_url):
    reader_url(admin_url)
    with psycopg.connect(_dsn(admin_url)) as conn, conn.cursor() as cursor:
        cursor.execute(f"SET ROLE {READER}")

        with pytest.raises(QueryError) as refused:
            check_reader(cursor, make_url(admin_url))

    assert f"{_refusal(admin_url, 'postgres', 'is a superuser')}" == f"Error: {refused.value}\n"


def test_can_create_a_reader_that_only_reads(run, admin_url, pg_server):
    role = "rh_made_reader"
    pg_server.admin(f"DROP ROLE IF EXISTS {role}")

    made = run("db", "create-reader", role, "--url", admin_url, "--password", input="s3cret\ns3cret\n")
    again = run("db", "create-reader", role, admin_url)
    reader = admin_url.replace("postgres@", f"{role}@")
    selected = run("query", "--url", reader, "--format", "csv", "SELECT run_name, metric, value FROM v_metrics")

    assert made.output.endswith(f"Created role {role} read-only access (18 tables and views). Use: runhistory-sql query --url {reader} \"SQL\"\n")
    assert again.output == f"Granted existing role {role} read-only access (18 tables and views). Use: runhistory-sql query --url {reader} \"SQL\"\n"
    assert selected.output == "run_name,metric,value\none,loss,1.0\n"
    with psycopg.connect(_dsn(admin_url)) as conn:
        attributes = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, "
            "rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s", (role,)).fetchall()
    assert attributes == [(True, False, False, False, False, False, True)]


def test_a_reader_can_read_tables_created_after_it(admin_url, pg_server):
    url = reader_url(admin_url)
    with psycopg.connect(_dsn(admin_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE later (x int)")
        conn.execute("INSERT INTO later VALUES (7)")

    with RunStore(url) as store:
        assert run_query(store, "SELECT x FROM later").rows == [(7,)]


def test_an_existing_superuser_is_not_made_a_reader(run, admin_url):
    result = run("db", "create-reader", "postgres", "--url", admin_url)

    assert result.exit_code == 1
    assert result.output == "Error: Role postgres cannot be made read-only: it is a superuser. Choose a new role name.\n"


def test_create_reader_is_for_postgres_only(run, db_path, db_url):
    result = run("db", "create-reader", "reader", "--url", db_url)

    assert result.output == (
        "Error: runhistory-sql db create-reader is for PostgreSQL; runhistory-sql query already opens "
        f"a SQLite file read-only ({db_url}).\n"
    )
    assert not db_path.exists()


def test_create_reader_is_a_library_function(admin_url):
    made = create_reader(admin_url, READER)

    assert (made.role, made.url, made.tables) == (READER, admin_url.replace("postgres@", f"{READER}@"), 18)


# What a superuser's query did before (issue 10): each is refused for the superuser, and fails
# for the reader, with nothing changed outside the database either.
ATTACKS = [
    ("SELECT pg_reload_conf()", "permission denied for function pg_reload_conf"),
    ("SELECT pg_switch_wal()", "permission denied for function pg_switch_wal"),
    ("SELECT pg_stat_reset()", "permission denied for function pg_stat_reset"),
    ("SELECT pg_create_restore_point('rh')", "permission denied for function pg_create_restore_point"),
    ("SELECT pg_create_physical_replication_slot('rh_slot')", "must be superuser or replication role to use replication slots"),
    ("SELECT lo_export(lo_from_bytea(0, 'x'), '{tmp}/exported')", "permission denied for function lo_export"),
    ("SELECT set_config('role', 'postgres', true)", 'permission denied to set role "postgres"'),
]


@pytest.mark.parametrize(("attack", "error"), ATTACKS, ids=[a for a, _ in ATTACKS])
def test_server_side_effects_fail(run, admin_url, tmp_path, attack, error):
    attack = attack.format(tmp=tmp_path)
    before = dump(admin_url)

    as_superuser = run("query", "--url", admin_url, attack)
    as_reader = run("query", "--url", reader_url(admin_url), attack)

    assert as_superuser.output == _refusal(admin_url, "postgres", "is a superuser")
    assert as_reader.output == f"Error: The query failed: {error}\n"
    assert dump(admin_url) == before
    assert list(tmp_path.iterdir()) == []
    with psycopg.connect(_dsn(admin_url)) as conn:
        assert conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall() == []


def test_terminating_another_session_fails_and_it_lives_on(run, admin_url):
    with psycopg.connect(_dsn(admin_url), autocommit=True) as other:
        attack = f"SELECT pg_terminate_backend({other.info.backend_pid})"

        as_superuser = run("query", "--url", admin_url, attack)
        as_reader = run("query", "--url", reader_url(admin_url), attack)

        assert as_superuser.output == _refusal(admin_url, "postgres", "is a superuser")
        assert as_reader.output == "Error: The query failed: must be a superuser to terminate superuser process\n"
        assert other.execute("SELECT 1").fetchall() == [(1,)]


def test_create_reader_as_a_role_that_may_not_is_one_line(run, admin_url, pg_server):
    pg_server.admin("DROP ROLE IF EXISTS rh_nobody")
    pg_server.admin("CREATE ROLE rh_nobody LOGIN")

    result = run("db", "create-reader", "rh_other", "--url", admin_url.replace("postgres@", "rh_nobody@"))

    assert result.exit_code == 1
    assert result.output == (
        "Error: Could not give role rh_other read access: permission denied to create role. Run this as an admin.\n"
    )
