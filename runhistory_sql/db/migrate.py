"""Creating and upgrading the schema with the Alembic migrations shipped in the package.

Commands are plain functions taking an engine, so the CLI and the library cannot drift.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from .engine import mask, readable_url, writer_engine
from ..errors import SchemaVersionError
from .schema import metadata

# Any 64-bit number that is ours alone: the PostgreSQL advisory lock serialising migrations.
_PG_LOCK_KEY = 0x52485351_4C4D4947  # "RHSQLMIG"


def migrations_dir() -> Path:
    """Return the folder of the Alembic migrations: ``runhistory_sql.migrations`` in an installed
    package (the wheel ships the top-level ``migrations/`` under that name), else the top-level
    ``migrations/`` beside the package, for a plain checkout on ``PYTHONPATH``."""
    try:
        from .. import migrations  # type: ignore[attr-defined]
    except ImportError:
        return Path(__file__).resolve().parents[2] / "migrations"
    return Path(migrations.__file__).parent


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """Return the revision this version of runhistory-sql needs."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """Return the database's revision, or ``None`` when it has none (empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the database-wide migration lock (also taken by `alembic upgrade`)."""
    with writer_engine(engine).begin() as conn:  # SQLite: BEGIN IMMEDIATE takes the write lock
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        yield conn


def _status(revision: str | None, conn: Connection) -> str:
    """Classify ``revision`` as "head", "empty", "older", "foreign" or "newer".

    "foreign": tables named like ours without a revision stamp, or the revision stamp of some
    other Alembic project in a database holding none of our tables.
    """
    head = head_revision()
    if revision == head:
        return "head"
    if revision is not None:
        script = ScriptDirectory.from_config(_config())
        if revision in {rev.revision for rev in script.walk_revisions()}:
            return "older"
    ours = set(inspect(conn).get_table_names()) & set(metadata.tables)
    if revision is None:
        return "foreign" if ours else "empty"
    return "newer" if ours else "foreign"


def _refusal(engine: Engine, status: str, revision: str | None) -> str | None:
    """The message refusing to touch a database of ``status``; ``None`` when it may be migrated."""
    url = mask(readable_url(engine.url))
    if status == "newer":
        return (
            f"Database {url} is at revision {revision}, which is newer than this version of "
            f"runhistory-sql knows (head {head_revision()}). "
            "Upgrade the package: pip install -U runhistory-sql"
        )
    if status == "foreign" and revision is None:
        return (
            f"Database {url} has tables named like runhistory-sql's but no revision stamp; "
            "it was not made by runhistory-sql. Use another database."
        )
    if status == "foreign":
        return (
            f"Database {url} is at revision {revision} of another application (it holds none of "
            "runhistory-sql's tables). Use another database."
        )
    return None


def _upgrade_message(engine: Engine, revision: str | None) -> str:
    url = mask(readable_url(engine.url))
    return (
        f"Database {url} is at revision {revision} but this version of runhistory-sql needs "
        f"{head_revision()}. Back it up, then run: runhistory-sql db upgrade {url}"
    )


def ensure_schema(engine: Engine, *, auto_upgrade: bool = False) -> None:
    """Make sure the database is at the head revision, creating an empty one.

    Safe against several processes starting at once: creation happens under a database-wide
    lock (SQLite's write lock, a PostgreSQL advisory lock) and is re-checked once it is held.

    :param engine: the database
    :param auto_upgrade: upgrade an older schema instead of raising
    :raises SchemaVersionError: the schema is older (and ``auto_upgrade`` is off), newer than
        this version knows, or the database holds tables that are not runhistory-sql's
    """
    if current_revision(engine) == head_revision():
        return
    with migration_lock(engine) as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
        status = _status(revision, conn)
        if status == "head":
            return
        refusal = _refusal(engine, status, revision)
        if refusal is not None:
            raise SchemaVersionError(refusal)
        if status == "older" and not auto_upgrade:
            raise SchemaVersionError(_upgrade_message(engine, revision))
        command.upgrade(_config(conn), "head")


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database to ``revision`` under the migration lock.

    :return: the revisions before and after
    """
    with migration_lock(engine) as conn:
        before = MigrationContext.configure(conn).get_current_revision()
        refusal = _refusal(engine, _status(before, conn), before)
        if refusal is not None:
            raise SchemaVersionError(refusal)
        command.upgrade(_config(conn), revision)
        after = MigrationContext.configure(conn).get_current_revision()
    return before, after


def drift(engine: Engine) -> list[object]:
    """Return the differences between the tables in the database and the models (empty: none)."""
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def check(engine: Engine) -> list[str]:
    """Return the problems found with the database's schema; an empty list means all is well."""
    revision = current_revision(engine)
    if revision != head_revision():
        with engine.connect() as conn:
            status = _status(revision, conn)
        if status == "older":
            return [_upgrade_message(engine, revision)]
        if status == "empty":
            return [
                f"Database {mask(readable_url(engine.url))} has no runhistory-sql schema yet. "
                f"Create it: runhistory-sql db upgrade {mask(readable_url(engine.url))}"
            ]
        return [_refusal(engine, status, revision) or f"Database {mask(readable_url(engine.url))} is {status}."]
    return [f"Schema differs from the models: {diff}" for diff in drift(engine)]


def wait_for_schema(engine: Engine, *, auto_upgrade: bool = False, timeout: float = 60.0) -> bool:
    """For a process that must not write (a rank other than zero): look, never create.

    :return: ``True`` once the database is at head, ``False`` while it is empty (the writing
        process has not created it yet, so there is nothing to read)
    :raises SchemaVersionError: as :func:`ensure_schema` would; with ``auto_upgrade``, an older
        database is waited for (the writing process upgrades it) for up to ``timeout`` seconds
    """
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            revision = MigrationContext.configure(conn).get_current_revision()
            status = _status(revision, conn)
        if status in ("head", "empty"):
            return status == "head"
        refusal = _refusal(engine, status, revision)
        if refusal is not None:
            raise SchemaVersionError(refusal)
        if not auto_upgrade or time.monotonic() > deadline:
            raise SchemaVersionError(_upgrade_message(engine, revision))
        time.sleep(0.2)  # another process is upgrading the database
