"""Helpers for tests: reading a database back with the plain sqlite3 driver."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def rows(db_path: Path | str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run ``sql`` on the SQLite file with the standard-library driver and return all rows."""
    conn = sqlite3.connect(str(db_path))
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def dump(db_path: Path | str) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of every table, to check that a failed call changed nothing."""
    tables = [t for (t,) in rows(db_path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {t: rows(db_path, f'SELECT * FROM "{t}" ORDER BY 1') for t in tables}


def query(url: str, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Run ``sql`` (with ``:name`` parameters) on any backend through SQLAlchemy; return all rows."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params or {})]
    finally:
        engine.dispose()
