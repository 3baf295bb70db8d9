"""Helpers for tests: reading a database back, with the plain sqlite3 driver or on any backend.

``rows`` reads a SQLite file with the standard-library driver. ``query``, ``columns``,
``tables``, ``views`` and ``dump`` (given a URL) work on SQLite and PostgreSQL alike, through
SQLAlchemy; ``dump`` given a file path still reads it with sqlite3.
"""
from __future__ import annotations

import math
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Collection, Iterator, Mapping


def is_postgres(url: str) -> bool:
    """Whether ``url`` points at PostgreSQL (else it is a SQLite file)."""
    return str(url).startswith("postgresql")


READER = "rh_reader"


def reader_url(url: str) -> str:
    """``url`` itself for SQLite; for PostgreSQL the URL of a role that may only read its
    database (made, or given access, with ``runhistory-sql db create-reader``'s function)."""
    if not is_postgres(url):
        return url
    from runhistory_sql.read.readers import create_reader

    return create_reader(url, READER).url


def same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN, tells -0.0 from 0.0, and checks types.

    Rows (tuples) and lists compare element by element, so a whole query result can be compared.
    """
    if isinstance(a, float) and isinstance(b, float):
        return (a != a and b != b) or (a == b and math.copysign(1.0, a) == math.copysign(1.0, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def rows(db_path: Path | str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run ``sql`` on the SQLite file with the standard-library driver and return all rows."""
    conn = sqlite3.connect(str(db_path))
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@contextmanager
def _connect(url: str) -> Iterator[Any]:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    # NullPool: nothing stays connected after the call (a test may count the connections)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def query(url: str, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Run ``sql`` (with ``:name`` parameters) on any backend through SQLAlchemy; return all rows.

    No type conversion happens: what the driver returns is what the test sees (PostgreSQL gives
    ``bool`` and ``datetime`` where SQLite gives ``int`` and ISO text).
    """
    from sqlalchemy import text

    with _connect(url) as conn:
        return [tuple(row) for row in conn.execute(text(sql), params or {})]


def execute(url: str, sql: str, params: dict[str, Any] | None = None) -> None:
    """Run one changing statement (with ``:name`` parameters) on any backend and commit it, as
    another program would: e.g. to make a run look held by another machine, or to set up a case
    behind the library's back."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params or {})
    finally:
        engine.dispose()


def columns(url: str, sql: str) -> tuple[str, ...]:
    """The column names of the result of ``sql`` on any backend."""
    from sqlalchemy import text

    with _connect(url) as conn:
        return tuple(conn.execute(text(sql)).keys())


def tables(url: str) -> set[str]:
    """The names of the tables (not views) in the database at ``url``."""
    from sqlalchemy import inspect

    with _connect(url) as conn:
        return set(inspect(conn).get_table_names())


def views(url: str) -> set[str]:
    """The names of the views in the database at ``url``."""
    from sqlalchemy import inspect

    with _connect(url) as conn:
        return set(inspect(conn).get_view_names())


def dump(
    target: Path | str, *, ignore: Mapping[str, Collection[str]] | None = None,
) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of every table, to check that a failed call changed nothing.

    :param target: a database URL (any backend: the tables are reflected with SQLAlchemy, so a
        boolean reads as ``bool`` on both), or the path of a SQLite file (read with sqlite3)
    :param ignore: table -> columns to leave out (e.g. a heartbeat that every commit refreshes)
    """
    if "://" not in str(target):
        if ignore:
            raise ValueError("ignore= needs a URL")
        tables_ = [t for (t,) in rows(target, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: rows(target, f'SELECT * FROM "{t}" ORDER BY 1') for t in tables_}

    from sqlalchemy import MetaData, select

    ignore = ignore or {}
    with _connect(str(target)) as conn:
        reflected = MetaData()
        reflected.reflect(conn, views=False)
        data = {}
        for name, table in sorted(reflected.tables.items()):
            kept = [c for c in table.columns if c.name not in ignore.get(name, ())]
            data[name] = [tuple(row) for row in conn.execute(select(*kept).order_by(*kept))]
        return data



def script_env() -> dict[str, str]:
    """The environment of a test's child script: this checkout importable, one CPU thread, and
    none of the caller's runhistory-sql or launcher variables (a script states what it uses)."""
    import os

    here = Path(__file__).resolve().parent  # the tests' own modules import as `helpers`, ...
    env = {
        **os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(here.parent), str(here), os.environ.get("PYTHONPATH")])),
    }
    launcher = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    for name in ("RUNHISTORY_SQL_URL", "RUNHISTORY_SQL_SPILL_DIR", *launcher):
        env.pop(name, None)
    return env


@contextmanager
def write_lock(url: str) -> Iterator[None]:
    """Hold the lock a writer's next commit needs: SQLite's write lock, or the runs' rows on
    PostgreSQL (each commit stamps ``runs.last_batch``). A ``close(timeout=...)`` inside it
    gives up and spills."""
    from sqlalchemy import create_engine

    if is_postgres(url):
        engine = create_engine(url)
        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("SELECT id FROM runs FOR UPDATE")
            yield
        engine.dispose()
    else:
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()


def train(trainer: Any, num_epochs: int, *, batch_size: int = 32, datasets: Any = None, seed: int | None = None,
          **kwargs: Any) -> None:
    """``trainer.train`` on the demo's synthetic data (or ``datasets``, a (train, eval) pair), as
    every trainer test runs it; ``seed`` seeds the loader's shuffle first.

    :param kwargs: passed on to ``Trainer.train`` (``reset_run_history``, ``resume_from``, ...)
    """
    from runhistory_sql.trainer.demo import make_datasets

    train_ds, eval_ds = datasets if datasets is not None else make_datasets()
    if seed is not None:
        import torch

        torch.manual_seed(seed)
    trainer.train(train_dataset=train_ds, eval_dataset=eval_ds, num_epochs=num_epochs,
                  per_device_batch_size=batch_size, **kwargs)
