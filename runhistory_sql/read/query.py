"""Running one SQL statement that only reads, for ``runhistory-sql query``.

What decides is who runs the statement, not what it says:

1. on PostgreSQL the session's role must be one that can do nothing but read
   (:func:`~runhistory_sql.read.readers.check_reader`; ``runhistory-sql db create-reader`` makes one):
   a superuser's ``lo_export`` or ``pg_terminate_backend`` is beyond what a read-only transaction
   stops. On SQLite the file is opened with ``mode=ro`` and an authorizer that refuses ``ATTACH``
   and PRAGMAs that set (:func:`~runhistory_sql.db.engine.make_engine`);
2. the transaction is read-only (PostgreSQL), and always rolled back;
3. one statement only: sqlite3 refuses a second one, and on PostgreSQL the statement is
   prepared, which the server refuses for ``SELECT 1; DELETE ...``;
4. the statement must start with a reading keyword (``SELECT``, ``WITH``, ``VALUES``, ``TABLE``,
   ``EXPLAIN``, ``SHOW``, ``PRAGMA``), which gives a clear message for the common mistakes;
5. limits: a time limit (SQLite: a progress handler; PostgreSQL: ``statement_timeout``, set
   again before each fetch), a row cap (rows are fetched a batch at a time, from a server-side
   cursor on PostgreSQL), and a cap on the bytes of the result and (SQLite) of any one value.
"""
from __future__ import annotations

import difflib
import re
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..db.engine import make_engine
from ..errors import QueryError, brief
from .readers import check_reader

if TYPE_CHECKING:
    from .store import RunStore

#: The keywords a reading statement starts with.
READING_KEYWORDS = frozenset({"select", "with", "values", "table", "explain", "show", "pragma"})
#: Statement keywords of SQLite and PostgreSQL that do not read.
OTHER_KEYWORDS = frozenset({
    "abort", "alter", "analyze", "analyse", "attach", "begin", "call", "checkpoint", "close", "cluster",
    "comment", "commit", "copy", "create", "deallocate", "declare", "delete", "detach", "discard", "do",
    "drop", "end", "execute", "fetch", "grant", "import", "insert", "listen", "load", "lock", "merge",
    "move", "notify", "prepare", "reassign", "refresh", "reindex", "release", "replace", "reset",
    "revoke", "rollback", "savepoint", "security", "set", "start", "truncate", "unlisten", "update",
    "upsert", "vacuum",
})
#: What ``run_query`` allows by default: seconds, and rows.
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_LIMIT = 1000
#: The most bytes of text and binary values a result may hold (SQLite: also any one value).
MAX_RESULT_BYTES = 64 * 1024 * 1024

_REMOVING = frozenset({"delete", "update", "drop", "truncate", "alter"})
_WRITING_HINT = "Runs are recorded by SQLRunHistory; to remove one, use: runhistory-sql delete RUN"
# What is skipped before the first keyword: blanks, comments, opening parentheses.
_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_]+")
_BATCH = 100  # rows fetched at a time
_CURSOR = "runhistory_sql_query"  # the PostgreSQL server-side cursor
_DECLARABLE = frozenset({"select", "with", "values", "table"})


@dataclass(frozen=True)
class QueryResult:
    """What a statement returned: its column names and rows, as the driver gave them.

    ``truncated`` is true when the statement had more rows than the ``limit`` asked for:
    ``rows`` then holds the first ``limit``.
    """

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False


def first_keyword(sql: str) -> str:
    """The statement's first keyword in lower case, after blanks, comments and ``(``; ``""``
    when there is none."""
    match = _WORD.match(sql, _LEADING.match(sql).end())  # type: ignore[union-attr]
    return match.group().lower() if match else ""


def check_reading(sql: str) -> None:
    """Refuse a statement that does not start like a read.

    :raises QueryError: the statement is empty, starts with a keyword that does not read, or
        with a word that starts no SQL statement
    """
    keyword = first_keyword(sql)
    allowed = ", ".join(sorted(k.upper() for k in READING_KEYWORDS))
    if not keyword:
        raise QueryError("There is no SQL statement to run. Example: runhistory-sql query \"SELECT * FROM v_runs\"")
    if keyword in READING_KEYWORDS:
        return
    if keyword in OTHER_KEYWORDS:
        hint = f" {_WRITING_HINT}" if keyword in _REMOVING else ""
        raise QueryError(f"runhistory-sql query only reads, and {keyword.upper()} is not a read (allowed: {allowed}).{hint}")
    close = difflib.get_close_matches(keyword, READING_KEYWORDS, n=1)
    guess = f" Did you mean {close[0].upper()}?" if close else ""
    raise QueryError(f"{keyword.upper()} does not start a SQL statement; a query starts with one of {allowed}.{guess}")


def run_query(store: RunStore, sql: str, *, timeout: float = DEFAULT_TIMEOUT_S,
              limit: int = DEFAULT_LIMIT) -> QueryResult:
    """Run one reading statement on a read-only connection and return its result.

    On PostgreSQL the URL's role must be one that can only read (``runhistory-sql db
    create-reader`` makes one); a superuser is refused.

    Example::

        with RunStore("sqlite:///runs.db") as store:
            result = run_query(store, "SELECT run_name, status FROM v_runs", limit=10)   # or store.query(...)
        print(result.columns, result.rows, "(more rows)" if result.truncated else "")

    :param store: the store to read; the statement runs on a read-only connection even when
        the store was opened with ``read_only=False``
    :param sql: one SQL statement that reads; no parameters (``%`` and ``:name`` are literal)
    :param timeout: seconds the statement may run, fetching included, before it is stopped
    :param limit: the most rows returned; ``truncated`` says there were more
    :return: the column names and rows (empty for a statement that returns none)
    :raises QueryError: the statement writes, is more than one, failed in the database, ran
        out of time or bytes, or (PostgreSQL) the role may do more than read
    """
    check_reading(sql)
    _check_limits(timeout, limit)
    engine = store.engine if store.read_only else make_engine(store.url, read_only=True)
    deadline = time.monotonic() + timeout
    try:
        with engine.connect() as conn:
            dbapi = conn.connection.dbapi_connection
            cursor = dbapi.cursor()  # type: ignore[union-attr]
            try:
                if engine.dialect.name == "postgresql":
                    check_reader(cursor, engine.url)
                    return _run_postgres(cursor, sql, deadline, limit)
                return _run_sqlite(dbapi, cursor, sql, deadline, limit)
            except engine.dialect.loaded_dbapi.Error as e:
                raise _refused(e, timeout) from e
            finally:
                cursor.close()
                conn.rollback()
    finally:
        if engine is not store.engine:
            engine.dispose()


def _check_limits(timeout: float, limit: int) -> None:
    if not timeout > 0:
        raise QueryError(f"The time limit must be more than 0 seconds, not {timeout!r}.")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise QueryError(f"The row limit must be a whole number of at least 1, not {limit!r}.")


def _run_sqlite(dbapi: Any, cursor: Any, sql: str, deadline: float, limit: int) -> QueryResult:
    # A value longer than this fails at once ("string or blob too big") instead of filling memory.
    dbapi.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_RESULT_BYTES)
    dbapi.set_progress_handler(lambda: time.monotonic() > deadline, 1000)  # true: interrupt
    try:
        cursor.execute(sql)  # sqlite3 refuses a second statement itself
        if not cursor.description:
            return QueryResult([], [])
        return _fetched([d[0] for d in cursor.description], cursor.fetchmany, limit)
    finally:
        dbapi.set_progress_handler(None, 1000)


def _run_postgres(cursor: Any, sql: str, deadline: float, limit: int) -> QueryResult:
    def reset_timeout() -> None:  # to the time left: our SET LOCAL beats any set_config() of the statement's
        cursor.execute(f"SET LOCAL statement_timeout = {max(1, int((deadline - time.monotonic()) * 1000))}")

    cursor.execute("SET TRANSACTION READ ONLY")  # whatever the role's default may become
    reset_timeout()
    if first_keyword(sql) not in _DECLARABLE:  # EXPLAIN, SHOW: a few rows
        cursor.execute(sql, prepare=True)  # prepared: the server refuses a second statement
        columns = [d[0] for d in cursor.description or ()]
        return _fetched(columns, cursor.fetchmany, limit) if cursor.description else QueryResult([], [])
    # A server-side cursor: rows come a batch at a time, not the whole result at once.
    cursor.execute(f"DECLARE {_CURSOR} NO SCROLL CURSOR FOR {sql}", prepare=True)

    def fetch(size: int) -> list[Any]:
        reset_timeout()
        cursor.execute(f"FETCH FORWARD {size} FROM {_CURSOR}")
        return list(cursor.fetchall())

    first = fetch(min(_BATCH, limit + 1))
    columns = [d[0] for d in cursor.description or ()]
    return _fetched(columns, fetch, limit, first)


def _fetched(columns: list[str], fetch: Callable[[int], list[Any]], limit: int,
             first: list[Any] | None = None) -> QueryResult:
    """Up to ``limit`` rows from ``fetch`` (which returns at most the rows asked for, none at
    the end), and whether there were more; ``first``: a batch already fetched."""
    rows: list[tuple[Any, ...]] = []
    size = 0
    batch = first if first is not None else fetch(min(_BATCH, limit + 1))
    while batch:
        size += sum(map(_bytes, batch))
        if size > MAX_RESULT_BYTES:
            raise QueryError(_too_big())
        rows.extend(tuple(row) for row in batch)
        if len(rows) > limit:
            break
        batch = fetch(min(_BATCH, limit + 1 - len(rows)))
    return QueryResult(columns, rows[:limit], len(rows) > limit)


def _bytes(row: Any) -> int:
    return sum(len(v) if isinstance(v, (str, bytes, bytearray, memoryview)) else 8 for v in row)


def _too_big() -> str:
    return (
        f"The result is larger than {MAX_RESULT_BYTES // 2**20} MB, the most runhistory-sql query "
        "returns; select fewer rows (--limit) or shorter values (e.g. substr(value_json, 1, 100))."
    )


# How each driver says "this writes", "this is more than one statement", "out of time".
_WRITE_SIGNS = ("readonly database", "read-only transaction", "not authorized", "query_only", "data-modifying")
_MULTIPLE_SIGNS = ("one statement at a time", "multiple commands")
_TIMEOUT_SIGNS = ("interrupted", "statement timeout")
_TOO_BIG_SIGNS = ("string or blob too big",)


def _refused(error: Exception, timeout: float) -> QueryError:
    message = brief(error)
    lowered = message.lower()
    if any(sign in lowered for sign in _MULTIPLE_SIGNS):
        return QueryError(
            "runhistory-sql query runs a single statement; give one (nothing after its ';')."
        )
    if "data-modifying" in lowered:  # what the server-side cursor says of WITH ... DELETE
        message = "a data-modifying statement in WITH"
    if any(sign in lowered for sign in _WRITE_SIGNS):
        return QueryError(f"runhistory-sql query only reads, and the database refused a write ({message}). {_WRITING_HINT}")
    if any(sign in lowered for sign in _TIMEOUT_SIGNS):
        return QueryError(
            f"The query was stopped after {timeout:g} s, its time limit; give it longer with --timeout SECONDS."
        )
    if any(sign in lowered for sign in _TOO_BIG_SIGNS):
        return QueryError(_too_big())
    return QueryError(f"The query failed: {message}")
