"""Turning a URL into a configured SQLAlchemy engine.

One way to configure: an explicit URL (or ``Engine``) beats ``$RUNHISTORY_SQL_URL``, which beats
the default ``sqlite:///runhistory.db`` in the working directory.
"""
from __future__ import annotations

import os
import sqlite3
import time
import re
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, unquote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from ..errors import DatabaseURLError, unreachable

ENV_VAR = "RUNHISTORY_SQL_URL"
DEFAULT_URL = "sqlite:///runhistory.db"
SQLITE_BUSY_TIMEOUT_S = 60.0


def resolve_url(url: str | URL | None = None) -> str:
    """Return the URL to use: ``url`` if given, else ``$RUNHISTORY_SQL_URL``, else the default.

    :param url: an explicit URL, or ``None``
    :return: the URL as a string
    """
    if url is not None:
        return url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    return os.environ.get(ENV_VAR) or DEFAULT_URL


#: Query parameters that carry a secret (libpq and psycopg accept ``?password=...``).
_SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword"})


def mask(url: str | URL) -> str:
    """Return ``url`` with its password (also one given as a query parameter) replaced by
    ``***``, for messages and logs."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return "<unparseable URL>"
    hidden = {key: "***" for key in parsed.query if key.lower() in _SECRET_QUERY_KEYS}
    if hidden:
        parsed = parsed.update_query_dict(hidden)
    if parsed.host and "@" in parsed.host:  # the password had an unencoded "@": its tail is no host
        parsed = parsed.set(host=parsed.host.rpartition("@")[2])
    return parsed.render_as_string(hide_password=True).replace("=%2A%2A%2A", "=***")


# For a URL that does not parse: "scheme://user:SECRET@..." (up to the last "@") and
# "password=SECRET" parameters.
_USERINFO_SECRET = re.compile(r"(://[^:/?#@]*:).*@", re.DOTALL)
_QUERY_SECRET = re.compile(rf"((?:{'|'.join(sorted(_SECRET_QUERY_KEYS))})=)[^&]*", re.IGNORECASE)


def _mask_text(text: str) -> str:
    """Mask what looks like a password in ``text``, a URL that may not parse."""
    return _QUERY_SECRET.sub(r"\1***", _USERINFO_SECRET.sub(r"\1***@", text))


def _parse(url: str) -> URL:
    if not isinstance(url, str) or not url.strip():
        raise DatabaseURLError(
            f"Database URL {url!r} is not a URL. Use e.g. sqlite:///runs.db or "
            "postgresql+psycopg://user@host/dbname."
        )
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as e:  # ValueError: a port that is not a number
        raise DatabaseURLError(
            f"Could not parse database URL {_mask_text(url)!r}. Use e.g. sqlite:///runs.db or "
            "postgresql+psycopg://user@host/dbname."
        ) from e
    backend, plus, driver = parsed.drivername.partition("+")
    if backend == "postgres":  # what libpq, psql and most tools accept for PostgreSQL
        parsed = parsed.set(drivername=f"postgresql{plus}{driver}")
    if parsed.host and "@" in parsed.host:
        raise DatabaseURLError(
            f"The user name or password in database URL {mask(parsed)} has an '@' that is not "
            "percent-encoded, so its tail reads as the host. Write each '@' in it as %40 "
            "(e.g. postgresql://user:s3cr%40t@host/dbname)."
        )
    return parsed


def _check_sqlite_path(parsed: URL, shown: str) -> None:
    database = parsed.database
    if not database or database == ":memory:" or parsed.query.get("mode") == "memory":
        raise DatabaseURLError(
            f"Database URL {shown} is an in-memory SQLite database, which vanishes with the "
            "process. Give a file, e.g. sqlite:///runs.db, or use InMemoryRunHistory."
        )
    if database.startswith("file:"):
        return
    directory = Path(database).expanduser().resolve().parent
    if not directory.is_dir():
        raise DatabaseURLError(
            f"The directory {directory} of database URL {shown} does not exist. "
            f"Create it first (mkdir -p {directory}) or choose another path."
        )


def _sqlite_connect_listener(dbapi_connection: Any, _record: Any) -> None:
    # Take transactions into our own hands (the "begin" listener below), so that DDL is
    # transactional and writers can take the lock up front with BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA synchronous = NORMAL")
    _enable_wal(cursor)
    cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch to WAL (a setting kept in the file). The switch needs a moment alone with the
    file and, unlike other statements, does not wait under the busy timeout: processes opening a
    fresh file together retry it instead of failing with "database is locked"."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_read_only_listener(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA query_only = ON")  # belt and braces on top of mode=ro
    cursor.close()
    dbapi_connection.set_authorizer(_read_only_authorizer)


# PRAGMAs that only read, also when given an argument (a table or index name).
_READING_PRAGMAS = frozenset({
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "database_list", "collation_list", "function_list", "pragma_list",
})


def _read_only_authorizer(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
    """Refuse what ``mode=ro`` lets through: ATTACH (it creates files) and PRAGMAs that set."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and arg2 is not None and (arg1 or "").lower() not in _READING_PRAGMAS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _read_only_sqlite(parsed: URL, shown: str) -> URL:
    """The URL that opens the same file with ``mode=ro``: the driver itself refuses writes."""
    database = parsed.database or ""
    if database.startswith("file:"):
        return parsed.update_query_dict({"mode": "ro", "uri": "true"})
    path = Path(database).expanduser().resolve()
    if not path.is_file():
        raise DatabaseURLError(
            f"There is no database at {path} (URL {shown}). Record a run first "
            "(e.g. runhistory-sql demo), or point --url / $RUNHISTORY_SQL_URL at your database."
        )
    return parsed.set(database=sqlite_file_uri(path)).update_query_dict({"mode": "ro", "uri": "true"})


def sqlite_file_uri(path: Path) -> str:
    """The ``file:`` URI of ``path`` with its ``#``, ``?`` and ``%`` percent-encoded: left as they
    are, SQLite would end the path at ``#`` or ``?`` and open (or create) another file."""
    return f"file:{quote(str(path))}"


def readable_url(url: URL) -> URL:
    """``url`` as its user wrote it, for messages: a read-only SQLite open
    (``sqlite:///file:PATH?mode=ro&uri=true``, see :func:`make_engine`) as ``sqlite:///PATH``."""
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database.startswith("file:/") and url.query.get("mode") == "ro":
        return url.set(database=unquote(database[len("file:"):])).difference_update_query(["mode", "uri"])
    return url


def _sqlite_begin_listener(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str | URL | None = None, *, read_only: bool = False, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` (resolved as :func:`resolve_url` says), checked and tuned.

    SQLite gets WAL journaling, ``synchronous=NORMAL``, a busy timeout and foreign keys.
    PostgreSQL (``postgresql://`` and ``postgres://`` mean psycopg 3) gets a pool of at most 2
    connections with pre-ping, and a 10 s connect timeout. Other dialects are refused.

    With ``read_only=True`` the database refuses every write: SQLite opens the file with
    ``mode=ro`` (it must exist) and ``query_only``; PostgreSQL sessions default to read-only
    transactions.

    :param url: the database URL, or ``None`` for the environment variable or default
    :param read_only: open the database for reading only
    :param kwargs: passed on to :func:`sqlalchemy.create_engine`
    :return: a new engine; the caller disposes of it
    :raises DatabaseURLError: when the URL cannot be used, with the fix in the message
    """
    parsed = _parse(resolve_url(url))
    shown = mask(parsed)
    _check_supported(parsed, shown)
    given = parsed  # before a read-only URL rewrites the file's name
    if parsed.get_backend_name() == "sqlite":
        parsed = _sqlite_options(parsed, shown, read_only, kwargs)
    else:
        parsed = _server_options(parsed, read_only, kwargs)
    engine = _create(parsed, shown, kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_read_only_listener if read_only else _sqlite_connect_listener)
        event.listen(engine, "begin", _sqlite_begin_listener)
        event.listen(engine, "handle_error", _not_a_database_handler(given, shown))
    return engine


def _sqlite_options(parsed: URL, shown: str, read_only: bool, kwargs: dict[str, Any]) -> URL:
    """Check the file's path and set SQLite's connect arguments in ``kwargs``; return the URL to open."""
    _check_sqlite_path(parsed, shown)
    if read_only:
        parsed = _read_only_sqlite(parsed, shown)
    kwargs.setdefault("connect_args", {}).setdefault("check_same_thread", False)
    kwargs["connect_args"].setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
    return parsed


def _server_options(parsed: URL, read_only: bool, kwargs: dict[str, Any]) -> URL:
    """Set a server database's pool and connect arguments in ``kwargs``; return the URL to open."""
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, our extra
    # A training process holds at most 2 connections (the writer's, and one for reads at
    # start-up), so hundreds of jobs cannot exhaust the server; dead ones are replaced.
    kwargs.setdefault("pool_size", 1)
    kwargs.setdefault("max_overflow", 1)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_recycle", 1800)
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", 10)
        if read_only:
            kwargs["connect_args"]["options"] = "-c default_transaction_read_only=on"
    return parsed


def _create(parsed: URL, shown: str, kwargs: dict[str, Any]) -> Engine:
    """``create_engine``, its failures for a dialect or driver that is missing translated."""
    try:
        return create_engine(parsed, **kwargs)
    except NoSuchModuleError as e:
        raise DatabaseURLError(
            f"Unknown database dialect {parsed.drivername!r} in URL {shown}. "
            "Use sqlite:///path.db or postgresql+psycopg://user@host/dbname."
        ) from e
    except ModuleNotFoundError as e:
        raise DatabaseURLError(
            f"The driver for {shown} is not installed ({e.name}). "
            "For PostgreSQL run: pip install 'runhistory-sql[postgres]'"
        ) from e


SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def _check_supported(parsed: URL, shown: str) -> None:
    """Refuse a dialect other than SQLite and PostgreSQL before its driver is looked for."""
    if parsed.get_backend_name() in SUPPORTED_BACKENDS:
        return
    try:
        parsed.get_dialect()
    except NoSuchModuleError as e:
        raise DatabaseURLError(
            f"Unknown database dialect {parsed.drivername!r} in URL {shown}. runhistory-sql supports "
            "SQLite and PostgreSQL: use sqlite:///path.db or postgresql://user@host/dbname."
        ) from e
    raise DatabaseURLError(
        f"runhistory-sql supports SQLite and PostgreSQL, not {parsed.get_backend_name()} (URL {shown}). "
        "Use sqlite:///path.db or postgresql://user@host/dbname."
    )


def _not_a_database_handler(parsed: URL, shown: str) -> Callable[[Any], None]:
    """A ``handle_error`` listener that turns SQLite's "file is not a database" (a text file, say)
    into a :class:`DatabaseURLError` naming the file and the fix."""
    database = parsed.database or ""
    path = database if database.startswith("file:") else str(Path(database).expanduser().resolve())

    def handler(context: Any) -> None:
        error = context.original_exception
        if isinstance(error, sqlite3.DatabaseError) and (
            getattr(error, "sqlite_errorcode", None) == 26 or "file is not a database" in str(error)  # SQLITE_NOTADB
        ):
            raise DatabaseURLError(
                f"The file {path} is not a SQLite database (URL {shown}). Point --url / "
                f"${ENV_VAR} at a runhistory-sql database, or at a new file to create one there."
            ) from error

    return handler


def report_unreachable(engine: Engine, shown: str) -> None:
    """Make a failure to connect through ``engine`` raise :class:`~.errors.DatabaseUnavailableError`
    naming ``shown`` (the masked URL) and the fix, instead of a driver error."""

    def handler(context: Any) -> None:
        if context.connection is None and isinstance(context.sqlalchemy_exception, OperationalError):
            raise unreachable(shown, context.original_exception) from context.original_exception

    event.listen(engine, "handle_error", handler)


def writer_engine(engine: Engine) -> Engine:
    """Return a view of ``engine`` whose transactions take the write lock at BEGIN (SQLite).

    A deferred SQLite transaction that reads and then writes can fail with "database is locked"
    without waiting; ``BEGIN IMMEDIATE`` waits for the lock under the busy timeout instead.
    """
    if engine.dialect.name == "sqlite":
        return engine.execution_options(sqlite_begin="IMMEDIATE")
    return engine


def placeholder(conn: Connection) -> str:
    """The driver's positional parameter marker: ``?`` (sqlite3) or ``%s`` (psycopg)."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def fetch_raw(conn: Connection, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Run ``sql`` on the driver's own cursor and return plain tuples: the fast path for long
    histories (no SQLAlchemy row objects), inside ``conn``'s transaction."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()
