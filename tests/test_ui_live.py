"""The pages while the database changes under them, and the page that must never change it: a
running run grows on the open run and runs pages without a reload, a killed one turns crashed,
and the SQL page refuses a write and cancels a slow query (SQLite and PostgreSQL)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from helpers import dump, reader_url, script_env
from ui_support import chart_points, serving, wait_for_charts

from runhistory_sql import RunStore, SQLRunHistory
from runhistory_sql.errors import QueryError
from runhistory_sql.read.query import run_query

import playwright  # noqa: F401  (the [test] extra has it: a missing one is a failure, not a skip)
# CI installs Debian's Chromium and sets $RUNHISTORY_SQL_REQUIRE_BROWSER: there a missing one fails
pytestmark = pytest.mark.skipif(
    not os.path.exists("/usr/bin/chromium") and not os.environ.get("RUNHISTORY_SQL_REQUIRE_BROWSER"),
    reason="Debian's chromium is not installed (apt-get install chromium)",
)

SCRIPTS = Path(__file__).resolve().parent / "scripts"
ENDLESS = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT COUNT(*) FROM r"


def file_digest(url: str) -> str:
    return hashlib.sha256(Path(url.removeprefix("sqlite:///")).read_bytes()).hexdigest()


@pytest.fixture
def readable_site(url: str) -> Iterator[tuple[str, Any]]:
    """A database with one run, served as a role that may only read it (on PostgreSQL), with a
    query time limit of 1 s."""
    with SQLRunHistory(url, experiment="exp", run_name="one") as history:
        history.update_metric("loss", 1.0)
    with serving(reader_url(url), query_timeout=1.0) as site:
        yield url, site


def refusal(url: str, sql: str, **options: Any) -> str:
    with RunStore(reader_url(url)) as store, pytest.raises(QueryError) as error:
        run_query(store, sql, **options)
    return " ".join(str(error.value).split())  # the API's one line


def test_the_sql_page_refuses_a_delete_and_stops_a_slow_query(readable_site, page):
    url, site = readable_site
    before = file_digest(url) if url.startswith("sqlite") else dump(url, ignore={"runs": ["heartbeat_at"]})
    page.goto(site.url("/sql"))
    page.wait_for_selector("#sql-recipes li")

    page.fill("#sql-text", "DELETE FROM runs")
    page.click("#sql-run")
    refused = page.wait_for_selector("#sql-result .error").inner_text()
    page.fill("#sql-text", ENDLESS)
    page.click("#sql-run")
    stopped = page.wait_for_selector("#sql-result .error", timeout=10000).inner_text()
    page.click("#sql-recipes li:first-child button")
    page.wait_for_selector("#sql-table")
    recipe = page.input_value("#sql-text")
    page.fill("#sql-text", "SELECT run_name, status FROM v_runs")
    page.click("#sql-run")
    page.wait_for_function("[...document.querySelectorAll('#sql-table th')].map(h => h.textContent).join() === 'run_name,status'")

    assert recipe == site.json("/api/recipes")[0]["sql"]
    assert refused == refusal(url, "DELETE FROM runs")
    assert stopped == refusal(url, ENDLESS, timeout=1.0)
    assert page.eval_on_selector_all("#sql-table tbody td", "cells => cells.map(c => c.textContent)") == ["one", "finished"]
    assert page.get_attribute("#sql-csv", "href") == "/api/query?sql=SELECT%20run_name%2C%20status%20FROM%20v_runs&format=csv"
    after = file_digest(url) if url.startswith("sqlite") else dump(url, ignore={"runs": ["heartbeat_at"]})
    assert after == before


@pytest.mark.slow
def test_a_running_run_grows_on_the_page_without_a_reload(url, page):
    env = script_env()
    child = subprocess.Popen([sys.executable, str(SCRIPTS / "ui_live_train.py"), url, "3"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "OPEN"
        child.stdin.write("\n"); child.stdin.flush()
        assert child.stdout.readline().strip() == "EPOCH 1"
        with RunStore(url) as store:
            run_id = store.run_id("growing")
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url) if "/history" in r.url else None)
        with serving(url) as site:
            listing = page.context.new_page()
            listing.goto(site.url("/"))
            listing.wait_for_selector(f'#runs-table tr[data-run-id="{run_id}"][data-status="running"]')
            page.goto(site.url(f"/runs/{run_id}"))
            wait_for_charts(page, 1)
            page.evaluate("window.notReloaded = true")
            first = chart_points(page, "loss")
            status = page.inner_text("#run-header .badge")
            for epoch in (2, 3):
                child.stdin.write("\n"); child.stdin.flush()
                assert child.stdout.readline().strip() == f"EPOCH {epoch}"
                page.wait_for_function("n => window.runhistoryCharts.loss.data.lines[0].x.length === n", arg=epoch, timeout=2000)
            child.stdin.write("\n"); child.stdin.flush()
            assert child.stdout.readline().strip() == "CLOSED"
            page.wait_for_function("document.querySelector('#run-header .badge').textContent === 'finished'", timeout=3000)
            listing.wait_for_selector(f'#runs-table tr[data-run-id="{run_id}"][data-status="finished"]', timeout=3000)
            epochs = listing.inner_text(f'#runs-table tr[data-run-id="{run_id}"] .col-current_epoch')

            assert first == [[1, 1.0]]
            assert status == "running"
            assert chart_points(page, "loss") == [[1, 1.0], [2, 0.5], [3, 1 / 3]]
            assert page.evaluate("window.notReloaded") is True
            assert epochs == "4"
            assert [u for u in requests[1:] if "after=" not in u] == []  # after the first, only what is new
    finally:
        child.stdin.close()
        child.wait(30)


@pytest.mark.slow
def test_a_run_whose_process_is_killed_turns_crashed_on_the_open_pages(url, page):
    child = subprocess.Popen([sys.executable, str(SCRIPTS / "ui_live_train.py"), url, "3"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=script_env())
    try:
        assert child.stdout.readline().strip() == "OPEN"
        child.stdin.write("\n"); child.stdin.flush()
        assert child.stdout.readline().strip() == "EPOCH 1"
        with serving(url) as site:
            listing = page.context.new_page()
            listing.goto(site.url("/"))
            listing.wait_for_selector('#runs-table tr[data-status="running"]')
            page.goto(site.url("/runs/1"))
            wait_for_charts(page, 1)
            before = page.inner_text("#run-header .badge")

            child.kill()  # SIGKILL: no close, no atexit; the pid is gone on this host
            child.wait(10)

            page.wait_for_function("document.querySelector('#run-header .badge').textContent === 'crashed'", timeout=3000)
            listing.wait_for_selector('#runs-table tr[data-status="crashed"]', timeout=3000)
            assert before == "running"
            assert chart_points(page, "loss") == [[1, 1.0]]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
