"""Alembic environment for runhistory-sql.

The URL comes from ``-x url=...``, else ``$RUNHISTORY_SQL_URL``, else the default SQLite file.
Library code passes an open connection in ``config.attributes["connection"]`` instead, so that
migrations run inside the caller's locked transaction.
"""
from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from runhistory_sql.db.engine import make_engine, resolve_url
from runhistory_sql.db.migrate import migration_lock
from runhistory_sql.db.schema import metadata

target_metadata = metadata

# Run as `alembic ...` from the repo root: log as alembic.ini says ("Running upgrade ...").
# Library calls have no ini file and keep the caller's logging alone.
if context.config.config_file_name is not None and "connection" not in context.config.attributes:
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)


def _configure(**kwargs: object) -> None:
    context.configure(target_metadata=target_metadata, compare_type=True, **kwargs)


def run_migrations_offline() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or resolve_url(None)
    _configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or resolve_url(None)
    engine = make_engine(url)
    try:
        # the same lock as the library's ensure_schema/upgrade, so the two never interleave
        with migration_lock(engine) as connection:
            _configure(connection=connection, render_as_batch=engine.dialect.name == "sqlite")
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
