"""Tiny fixtures shared by the tests: a real SQLite file per test, and a small real model."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import Engine

from runhistory_sql import SQLRunHistory
from runhistory_sql.db.engine import make_engine


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


# -- PostgreSQL ---------------------------------------------------------------------------------

from pg_server import REQUIRE_VAR, PostgresServer, find_binaries  # noqa: E402


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session (skips, or fails in CI, without one)."""
    bin_dir = find_binaries()
    missing = None
    if bin_dir is None:
        missing = "PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's postgresql"
    else:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            missing = "psycopg is not installed; pip install 'runhistory-sql[postgres]'"
    if missing:
        if os.environ.get(REQUIRE_VAR):
            pytest.fail(f"{missing} ({REQUIRE_VAR} is set, so Postgres tests must run)")
        pytest.skip(missing)
    server = PostgresServer.start(bin_dir)
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server."""
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, db_url: str) -> str:
    """The database of a storage or integration test: a SQLite file, then a real Postgres."""
    if request.param == "sqlite":
        return db_url
    return str(request.getfixturevalue("pg_url"))


# -- a database of real runs for the read side (RunStore, CLI) ---------------------------------

import shutil  # noqa: E402

import trained_runs  # noqa: E402


@pytest.fixture(scope="session")
def trained_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the runs of ``tests/trained_runs.py`` (built once; do not change it)."""
    path = tmp_path_factory.mktemp("trained") / "runs.db"
    trained_runs.build(f"sqlite:///{path}")
    return path


@pytest.fixture
def trained_url(trained_file: Path, tmp_path: Path) -> str:
    """A private copy of the trained runs (a test may change or delete them)."""
    path = tmp_path / "trained.db"
    shutil.copy(trained_file, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def trained_pg_database(pg_server: PostgresServer) -> Iterator[str]:
    """The trained runs on the session's PostgreSQL server (built once; do not change it)."""
    name = pg_server.create_database()
    trained_runs.build(pg_server.url(name))
    yield pg_server.url(name)
    pg_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def trained_any(request: pytest.FixtureRequest, trained_url: str) -> str:
    """The trained runs on SQLite (a private copy), then on PostgreSQL (shared: read only)."""
    if request.param == "sqlite":
        return trained_url
    return str(request.getfixturevalue("trained_pg_database"))


@pytest.fixture
def run() -> Any:
    """``run(*args, input=None)``: the runhistory-sql command, in-process (click's CliRunner)."""
    from click.testing import CliRunner

    from runhistory_sql.cli import main

    runner = CliRunner()
    return lambda *args, input=None: runner.invoke(main, list(args), input=input, catch_exceptions=False)


# -- a SQLRunHistory on the `url` database (the history tests) --------------------------------


@pytest.fixture
def history(url: str) -> Iterator[SQLRunHistory]:
    with SQLRunHistory(url, experiment="exp", run_name="run") as h:
        yield h


# -- the browser tests (test_ui_pages.py, test_ui_live.py): one Chromium for the session -------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    from ui_support import launch_chromium

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab (its own context: no cookies shared) that records dialogs (``page.dialogs``);
    a JavaScript error on it fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(5000)  # everything a test waits for comes well within this
    tab = context.new_page()
    tab.dialogs = []
    tab.on("dialog", lambda d: (tab.dialogs.append(d.message), d.dismiss()))
    tab.errors = []
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    yield tab
    context.close()
    assert tab.errors == []
