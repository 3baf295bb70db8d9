"""Running one SQL statement that only reads, for ``runhistory-sql query``.

Three guards, each enough for the common case and together for the rest:

1. the statement must start with a reading keyword (``SELECT``, ``WITH``, ``VALUES``, ``TABLE``,
   ``EXPLAIN``, ``SHOW``, ``PRAGMA``): this refuses at once what a read-only transaction would
   let through on PostgreSQL, such as ``COPY ... TO PROGRAM`` run by a superuser, or ``COMMIT``;
2. the database is opened read-only (:func:`~runhistory_sql.engine.make_engine`): SQLite with
   ``mode=ro`` and an authorizer that refuses ``ATTACH`` and PRAGMAs that set, PostgreSQL in a
   session whose transactions are read-only, and this one explicitly ``READ ONLY`` as well;
3. one statement only: sqlite3 refuses a second one, and on PostgreSQL the statement is
   prepared, which the server refuses for ``SELECT 1; DELETE ...`` (the simple protocol would
   run both, and a ``COMMIT`` between them would leave the read-only transaction).

The transaction is always rolled back. A function with side effects outside the database
(``lo_export`` as a superuser) is beyond what a read-only transaction stops: for a hard
guarantee on a shared server, connect as a role that may only ``SELECT``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .engine import make_engine, mask, report_unreachable, resolve_url
from .errors import QueryError, brief

#: The keywords a reading statement starts with.
READING_KEYWORDS = frozenset({"select", "with", "values", "table", "explain", "show", "pragma"})

_WRITING_HINT = (
    "Runs are recorded by SQLRunHistory; to remove one, use: runhistory-sql delete RUN"
)
# What is skipped before the first keyword: blanks, comments, opening parentheses.
_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_]+")



@dataclass(frozen=True)
class QueryResult:
    """What a statement returned: its column names and rows, as the driver gave them."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def first_keyword(sql: str) -> str:
    """The statement's first keyword in lower case, after blanks, comments and ``(``; ``""``
    when there is none."""
    match = _WORD.match(sql, _LEADING.match(sql).end())  # type: ignore[union-attr]
    return match.group().lower() if match else ""


def check_reading(sql: str) -> None:
    """Refuse a statement that does not start like a read.

    :raises QueryError: the statement is empty or starts with a keyword that writes
    """
    keyword = first_keyword(sql)
    if not keyword:
        raise QueryError("There is no SQL statement to run. Example: runhistory-sql query \"SELECT * FROM v_runs\"")
    if keyword not in READING_KEYWORDS:
        raise QueryError(
            f"runhistory-sql query only reads, and {keyword.upper()} is not a read "
            f"(allowed: {', '.join(sorted(k.upper() for k in READING_KEYWORDS))}). {_WRITING_HINT}"
        )


def run_query(sql: str, url: str | None = None) -> QueryResult:
    """Run one reading statement on a read-only connection and return its result.

    Example::

        result = run_query("SELECT run_name, status FROM v_runs", "sqlite:///runs.db")
        print(result.columns, result.rows)

    :param sql: one SQL statement that reads; no parameters (``%`` and ``:name`` are literal)
    :param url: database URL; else ``$RUNHISTORY_SQL_URL``; else ``sqlite:///runhistory.db``
    :return: the column names and rows (empty for a statement that returns none)
    :raises QueryError: the statement writes, is more than one, or failed in the database
    """
    check_reading(sql)
    engine = make_engine(url, read_only=True)
    report_unreachable(engine, mask(resolve_url(url)))
    try:
        with engine.connect() as conn:
            dbapi = conn.connection.dbapi_connection
            cursor = dbapi.cursor()  # type: ignore[union-attr]
            try:
                _execute(cursor, sql, postgres=engine.dialect.name == "postgresql")
                columns = [d[0] for d in cursor.description or ()]
                rows = [tuple(row) for row in cursor.fetchall()] if cursor.description else []
            except engine.dialect.loaded_dbapi.Error as e:
                raise _refused(e) from e
            finally:
                cursor.close()
                conn.rollback()
    finally:
        engine.dispose()
    return QueryResult(columns, rows)


def _execute(cursor: Any, sql: str, *, postgres: bool) -> None:
    if postgres:
        cursor.execute("SET TRANSACTION READ ONLY")  # whatever the role's default may become
        cursor.execute(sql, prepare=True)  # prepared: the server refuses a second statement
    else:
        cursor.execute(sql)  # sqlite3 refuses a second statement itself


# How each driver says "this writes" or "this is more than one statement".
_WRITE_SIGNS = ("readonly database", "read-only transaction", "not authorized", "query_only")
_MULTIPLE_SIGNS = ("one statement at a time", "multiple commands")


def _refused(error: Exception) -> QueryError:
    message = brief(error)
    lowered = message.lower()
    if any(sign in lowered for sign in _MULTIPLE_SIGNS):
        return QueryError(
            "runhistory-sql query runs a single statement; give one (nothing after its ';')."
        )
    if any(sign in lowered for sign in _WRITE_SIGNS):
        return QueryError(f"runhistory-sql query only reads, and the database refused a write ({message}). {_WRITING_HINT}")
    return QueryError(f"The query failed: {message}")
