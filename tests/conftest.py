"""Tiny fixtures shared by the tests: a real SQLite file per test, and a small real model."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import Engine

from runhistory_sql.engine import make_engine


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
def db_url(db_path: Path) -> str:
    return f"sqlite:///{db_path}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def _no_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # a developer's own $RUNHISTORY_SQL_URL must never leak into a test
    monkeypatch.delenv("RUNHISTORY_SQL_URL", raising=False)
