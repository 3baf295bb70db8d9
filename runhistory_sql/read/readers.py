"""PostgreSQL roles that can do nothing but read, for the SQL a user types (``query``).

A read-only transaction stops writes to tables, not what a privileged role can do outside them
(a superuser's ``lo_export`` writes a server file, ``pg_terminate_backend`` ends other sessions,
``pg_create_physical_replication_slot`` leaves a slot). Parsing SQL cannot close that, privileges
can: :func:`reader_problems` lists every privilege of a role beyond reading, and
:func:`create_reader` makes a role that has none.

Example::

    reader = create_reader("postgresql://postgres@db.example/runs", "reader")
    print(reader.url)   # postgresql+psycopg://reader@db.example/runs
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL

from ..db.engine import make_engine, mask, readable_url, report_unreachable, resolve_url
from ..errors import QueryError, brief

#: Built-in roles a reader may belong to: they only let it read more.
HARMLESS_ROLES = ("pg_read_all_data", "pg_read_all_settings", "pg_read_all_stats")

# Each row is one thing the role may do beyond reading; no row, a reader. ``me`` is the role.
# Membership counts even without INHERIT: a statement can switch to the role (set_config('role')).
_PROBLEMS = """
WITH me AS (SELECT * FROM pg_roles WHERE rolname = %(role)s)
SELECT problem FROM (
SELECT 1, 'is a superuser' FROM me WHERE rolsuper
UNION ALL SELECT 2, 'may create roles' FROM me WHERE rolcreaterole
UNION ALL SELECT 3, 'may create databases' FROM me WHERE rolcreatedb
UNION ALL SELECT 4, 'may start replication' FROM me WHERE rolreplication
UNION ALL SELECT 5, 'bypasses row-level security' FROM me WHERE rolbypassrls
UNION ALL SELECT 6, 'is a member of ' || quote_ident(r.rolname) FROM me, pg_roles r
    WHERE r.oid <> me.oid AND pg_has_role(me.oid, r.oid, 'MEMBER') AND r.rolname::text <> ALL (%(harmless)s)
UNION ALL SELECT 7, 'owns ' || c.oid::regclass FROM me, pg_class c WHERE c.relowner = me.oid
UNION ALL SELECT 8, 'may write to ' || c.oid::regclass FROM me, pg_class c
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relowner <> me.oid
      AND c.oid <> 'pg_catalog.pg_settings'::regclass  -- everyone's: an UPDATE of it is a SET
      AND (has_table_privilege(me.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
           OR has_any_column_privilege(me.oid, c.oid, 'INSERT, UPDATE, REFERENCES'))
UNION ALL SELECT 9, 'may advance sequence ' || c.oid::regclass FROM me, pg_class c
    WHERE c.relkind = 'S' AND c.relowner <> me.oid AND has_sequence_privilege(me.oid, c.oid, 'USAGE, UPDATE')
UNION ALL SELECT 10, 'may create objects in schema ' || quote_ident(n.nspname) FROM me, pg_namespace n
    WHERE has_schema_privilege(me.oid, n.oid, 'CREATE')
UNION ALL SELECT 11, 'may create schemas in database ' || quote_ident(current_database()) FROM me
    WHERE has_database_privilege(me.oid, current_database(), 'CREATE')
UNION ALL SELECT 12, 'may run ' || p.oid::regprocedure FROM me, pg_proc p
    WHERE p.proacl IS NOT NULL AND has_function_privilege(me.oid, p.oid, 'EXECUTE')
      AND NOT EXISTS (SELECT FROM aclexplode(p.proacl) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
UNION ALL SELECT 13, 'may run ' || p.oid::regprocedure || ' as its owner (SECURITY DEFINER)' FROM me, pg_proc p
    WHERE p.prosecdef AND p.proowner <> me.oid AND has_function_privilege(me.oid, p.oid, 'EXECUTE')
) AS found (kind, problem) ORDER BY kind, problem
"""
_SHOWN_PROBLEMS = 3


def reader_problems(cursor: Any, role: str) -> list[str]:
    """What ``role`` may do beyond reading, in this database; empty for a read-only role.

    :param cursor: a psycopg cursor on the database
    :param role: the role to check
    :return: phrases such as ``"is a superuser"`` or ``"may write to runs"``
    """
    cursor.execute(_PROBLEMS, {"role": role, "harmless": list(HARMLESS_ROLES)})
    return [problem for (problem,) in cursor.fetchall()]


def check_reader(cursor: Any, url: URL) -> None:
    """Refuse to run user SQL on ``cursor`` unless its session is a read-only role.

    Both the role logged in and the role in effect are checked: a ``SET ROLE`` is not enough,
    as a statement can undo it (``set_config('role', 'none', true)``).

    :param cursor: a psycopg cursor on the connection that will run the user's SQL
    :param url: the connection's URL, for the fix in the message
    :raises QueryError: the role may do more than read, with the command that makes a reader
    """
    cursor.execute("SELECT session_user, current_user")
    session_role, current_role = cursor.fetchone()
    problems = reader_problems(cursor, session_role)
    if current_role != session_role:
        problems.append(f"switches to {current_role} with SET ROLE, which a statement can undo")
    if not problems:
        return
    problems = _implied(problems)
    admin = mask(readable_url(url)) if problems[0] in ("is a superuser", "may create roles") else "ADMIN_URL"
    reader = mask(readable_url(url).set(username="reader", password=None))
    raise QueryError(
        f"runhistory-sql query runs user SQL only as a read-only role, and {session_role} "
        f"{_listed(problems)}. Create one with: runhistory-sql db create-reader reader --url {admin}, "
        f"then use --url {reader}"
    )


def _implied(problems: list[str]) -> list[str]:
    """``problems`` with only "is a superuser" when it is one: that implies the rest."""
    return problems[:1] if problems[:1] == ["is a superuser"] else problems


def _listed(problems: list[str]) -> str:
    shown = ", ".join(problems[:_SHOWN_PROBLEMS])
    more = len(problems) - _SHOWN_PROBLEMS
    return f"{shown} and {more} more" if more > 0 else shown


@dataclass(frozen=True)
class Reader:
    """A role made by :func:`create_reader`: its URL (no password in it), and whether it is new."""

    role: str
    url: str
    created: bool
    tables: int


def create_reader(url: str | None, role: str, *, password: str | None = None) -> Reader:
    """Create a PostgreSQL login role that may only read the database of ``url``, or give an
    existing one read access to it.

    The role is ``LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS``, with
    ``CONNECT`` on the database, ``USAGE`` (and no ``CREATE``) on its schema, ``SELECT`` on its
    tables and views, and by default on the tables their owners create later. It is checked with
    :func:`reader_problems` before anything is committed.

    :param url: an administrator's URL (a role that may create roles and grant on the tables)
    :param role: the new role's name
    :param password: the role's password, or ``None`` for none (trust or certificate login)
    :return: the reader, with the URL to use for ``runhistory-sql query``
    :raises QueryError: the URL is not PostgreSQL, or the role exists and may do more than read
    """
    engine = make_engine(url)
    try:
        if engine.dialect.name != "postgresql":
            raise QueryError(
                "runhistory-sql db create-reader is for PostgreSQL; runhistory-sql query already "
                f"opens a SQLite file read-only ({mask(engine.url)})."
            )
        report_unreachable(engine, mask(resolve_url(url)))
        with engine.begin() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                created, tables = _grant_reading(cursor, role, password)
            except engine.dialect.loaded_dbapi.Error as e:
                raise QueryError(f"Could not give role {role} read access: {brief(e)}. Run this as an admin.") from e
            problems = _implied(reader_problems(cursor, role))
            if problems:  # leaving the block with it rolls everything back
                fix = (
                    "Revoke that from PUBLIC as an admin (e.g. REVOKE CREATE ON SCHEMA public FROM PUBLIC), "
                    "then run this again." if created else "Choose a new role name."
                )
                raise QueryError(f"Role {role} cannot be made read-only: it {_listed(problems)}. {fix}")
        return Reader(role, mask(readable_url(engine.url).set(username=role, password=None)), created, tables)
    finally:
        engine.dispose()


def _grant_reading(cursor: Any, role: str, password: str | None) -> tuple[bool, int]:
    from psycopg import sql

    name = sql.Identifier(role)
    cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,))
    created = cursor.fetchone()[0] == 0
    secret = sql.SQL(" PASSWORD {}").format(sql.Literal(password)) if password is not None else sql.SQL("")
    if created:
        cursor.execute(sql.SQL(
            "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS{}"
        ).format(name, secret))
    elif password is not None:
        cursor.execute(sql.SQL("ALTER ROLE {}{}").format(name, secret))
    cursor.execute(
        "SELECT current_database(), current_schema(), count(c.oid) FROM pg_namespace n "
        "LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm') "
        "WHERE n.nspname = current_schema() GROUP BY n.oid"
    )
    database, schema, tables = cursor.fetchone()
    for statement in (
        "GRANT CONNECT ON DATABASE {database} TO {role}",
        "GRANT USAGE ON SCHEMA {schema} TO {role}",
        "REVOKE CREATE ON SCHEMA {schema} FROM {role}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
    ):
        cursor.execute(sql.SQL(statement).format(database=sql.Identifier(database), schema=sql.Identifier(schema), role=name))
    # Tables a later migration adds: readable too, whoever of the present owners creates them.
    cursor.execute(
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
        "UNION SELECT current_user::text"
    )
    for (owner,) in cursor.fetchall():
        cursor.execute(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
            sql.Identifier(owner), sql.Identifier(schema), name))
    return created, int(tables)
