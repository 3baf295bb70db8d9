"""The dashboard server: live updates after a cursor, the token of a public bind, a run whose
process died reads crashed at once, and the ``ui`` command."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner
from helpers import execute, script_env
from ui_support import serving

from runhistory_sql import RunStore, SQLRunHistory
from runhistory_sql.cli import main
from runhistory_sql.db.engine import make_engine
from runhistory_sql.ui.auth import COOKIE




def test_after_a_cursor_only_the_new_points_come(url):
    with SQLRunHistory(url, experiment="live", run_name="r") as h, serving(url) as api:
        for value in (1.0, 2.0, 3.0):
            h.update_metric("loss", value)
        h.flush()
        first = api.json("/api/runs/1/history?metric=loss")
        none_yet = api.json(f"/api/runs/1/history?metric=loss&after={first['cursor']}")
        h.update_metric("loss", 4.0)
        h.update_metric("loss", 5.0)
        h.flush()
        later = api.json(f"/api/runs/1/history?metric=loss&after={first['cursor']}")

    assert [s["y"] for s in first["series"]] == [[1.0, 2.0, 3.0]] and first["cursor"] == 3
    assert (none_yet["series"], none_yet["cursor"], none_yet["reset"]) == ([], 3, False)
    assert [(s["x"], s["y"]) for s in later["series"]] == [([3, 4], [4.0, 5.0])]
    assert (later["cursor"], later["reset"]) == (5, False)


def test_after_a_cursor_a_new_stage_comes_as_its_own_series(url):
    with SQLRunHistory(url, experiment="live", run_name="r") as h, serving(url) as api:
        for value in (1.0, 2.0):
            h.update_metric("loss", value)
        h.flush()
        cursor = api.json("/api/runs/1/history?metric=loss")["cursor"]
        h.reset()
        h.update_metric("loss", 0.5)
        h.flush()
        later = api.json(f"/api/runs/1/history?metric=loss&after={cursor}")

    assert [(s["stage"], s["x"], s["y"], s["seq"]) for s in later["series"]] == [(2, [2], [0.5], [0])]
    assert (later["cursor"], later["reset"]) == (3, False)


def test_a_rewind_after_the_cursor_sends_the_whole_history_again(url):
    with SQLRunHistory(url, experiment="live", run_name="r") as h, serving(url) as api:
        for value in (1.0, 2.0, 3.0):
            h.update_metric("loss", value)
            h._increment_epoch()
        cursor = api.json("/api/runs/1/history?metric=loss")["cursor"]
        h._set_epoch(3)
        h.update_metric("loss", 9.0)
        h.flush()
        later = api.json(f"/api/runs/1/history?metric=loss&after={cursor}")

    assert later["reset"] is True and [s["y"] for s in later["series"]] == [[1.0, 2.0, 9.0]]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_whose_process_died_on_this_host_reads_crashed_at_once(url):
    with SQLRunHistory(url, experiment="e", run_name="died") as h:
        h.update_metric("loss", 1.0)
    with SQLRunHistory(url, experiment="e", run_name="alive") as h:
        h.update_metric("loss", 1.0)
    host = socket.gethostname()
    execute(url, f"UPDATE runs SET status = 'running', ended_at = NULL, host = '{host}', pid = {_dead_pid()}, "
                 f"heartbeat_at = created_at + 3600000000 WHERE name = 'died'")
    execute(url, f"UPDATE runs SET status = 'running', ended_at = NULL, host = '{host}', pid = {os.getpid()}, "
                 f"heartbeat_at = created_at + 3600000000 WHERE name = 'alive'")

    listed = CliRunner().invoke(main, ["runs", "--url", url, "--format", "json"])
    crashed = CliRunner().invoke(main, ["runs", "--url", url, "--status", "crashed", "--format", "json"])
    with RunStore(url) as store:
        report = store.report("died")
        page = store.runs_page(status="running")
    with serving(url) as api:
        rows = api.json("/api/runs?sort=name&order=asc")["runs"]

    assert listed.exit_code == 0, listed.output
    assert [(r["run"], r["status"]) for r in json.loads(listed.output)] == [("died", "crashed"), ("alive", "running")]
    assert [r["run"] for r in json.loads(crashed.output)] == ["died"]
    assert report.run.status == "crashed" and [r.run_name for r in page.runs] == ["alive"]
    assert [(r["name"], r["status"]) for r in rows] == [("alive", "running"), ("died", "crashed")]


@pytest.fixture
def public(db_url):
    with SQLRunHistory(db_url, experiment="e", run_name="r") as h:
        h.update_metric("loss", 1.0)
    found = [a for a in socket.gethostbyname_ex(socket.gethostname())[2] if not a.startswith("127.")]
    ip = found[0] if found else "127.0.0.1"  # the machine's own address when it has one
    with serving(db_url, host="0.0.0.0", connect=ip, token="s3cret") as api:
        yield api


def test_a_public_bind_refuses_requests_without_the_token(public):
    for path in ("/api/runs", "/", "/api/runs/1/history?metric=loss", "/static/app.css", "/api/runs?token=wrong"):
        status, _, body = public.get(path)
        assert (path, status) == (path, 403)
        assert body.startswith(b"403 Forbidden: this dashboard needs its access token")


def test_the_token_is_taken_from_the_query_the_cookie_or_the_header(public):
    status, headers, _ = public.get("/api/runs?token=s3cret")
    by_cookie = public.get("/api/runs", headers={"Cookie": f"{COOKIE}=s3cret"})[0]
    by_header = public.get("/api/runs", headers={"Authorization": "token s3cret"})[0]

    assert status == 200 and headers["set-cookie"] == f"{COOKIE}=s3cret; Path=/; HttpOnly; SameSite=Strict"
    assert (by_cookie, by_header) == (200, 200)


def test_ui_names_the_demo_when_the_database_does_not_exist(tmp_path):
    url = f"sqlite:///{tmp_path / 'none.db'}"

    result = CliRunner().invoke(main, ["ui", "--url", url, "--no-browser"])

    assert result.exit_code == 1
    assert result.output == (
        f"Error: There is no database at {tmp_path / 'none.db'} (URL {url}). Record a run first (e.g. runhistory-sql demo), "
        "or point --url / $RUNHISTORY_SQL_URL at your database.\n"
    )
    assert not (tmp_path / "none.db").exists()


def test_ui_refuses_a_token_and_no_token_together(db_url):
    result = CliRunner().invoke(main, ["ui", "--url", db_url, "--token", "t", "--no-token"])

    assert result.exit_code == 2 and result.output == "Error: Give --token or --no-token, not both. (see: main ui --help)\n"


def test_ui_says_when_the_port_is_taken(db_url):
    with SQLRunHistory(db_url, run_name="r"):
        pass
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        result = CliRunner().invoke(main, ["ui", "--url", db_url, "--port", str(port), "--no-browser"])
    finally:
        taken.close()

    assert result.exit_code == 1
    assert result.output == f"Error: Cannot listen on 127.0.0.1:{port}: Address already in use. Choose another with --host / --port.\n"


def _start_ui(url: str, *args: str) -> tuple[subprocess.Popen, list[str]]:
    child = subprocess.Popen(
        [sys.executable, "-c", "from runhistory_sql.cli import main; main(prog_name='runhistory-sql')", "ui", "--url", url, "--port", "0", "--no-browser", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=script_env(),
    )
    assert child.stdout is not None
    return child, [child.stdout.readline(), child.stdout.readline()]


@pytest.mark.slow
def test_the_ui_command_serves_until_ctrl_c(db_url):
    with SQLRunHistory(db_url, experiment="e", run_name="r") as h:
        h.update_metric("loss", 1.0)
    child, lines = _start_ui(db_url)
    try:
        address = lines[0].split(": ", 1)[1].strip()
        from ui_support import Served

        body = Served(address.rstrip("/")).json("/api/runs")
        rebound = Served(address.rstrip("/")).get("/api/runs", headers={"Host": "attacker.example"})
    finally:
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)

    assert lines[0].startswith("runhistory-sql ui: http://127.0.0.1:") and lines[1] == "Press Ctrl-C to stop.\n"
    assert [r["name"] for r in body["runs"]] == ["r"]
    assert rebound[0] == 400  # a page whose DNS name was rebound to 127.0.0.1 does not read the runs
    assert (child.returncode, out, err) == (0, "runhistory-sql ui: stopped.\n", "")


@pytest.mark.slow
def test_a_public_bind_prints_a_generated_token_and_no_token_warns(db_url):
    with SQLRunHistory(db_url, run_name="r"):
        pass
    child, lines = _start_ui(db_url, "--host", "0.0.0.0")
    child.send_signal(signal.SIGINT)
    child.communicate(timeout=30)
    loud, loud_lines = _start_ui(db_url, "--host", "0.0.0.0", "--no-token")
    loud.send_signal(signal.SIGINT)
    _, err = loud.communicate(timeout=30)

    assert lines[0].startswith(f"runhistory-sql ui: http://{socket.gethostname()}:") and "/?token=" in lines[0]
    assert len(lines[0].strip().split("?token=")[1]) >= 32
    assert "?token=" not in loud_lines[0]
    assert err.startswith("WARNING: --no-token: anyone who can reach 0.0.0.0:0 can read every run")


@pytest.mark.slow
def test_ui_without_its_extra_names_the_extra(db_url):
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"  # as if uvicorn were not installed
        "from runhistory_sql.cli import main; main(['ui', '--url', sys.argv[1], '--no-browser'], prog_name='runhistory-sql')"
    )
    with SQLRunHistory(db_url, run_name="r"):
        pass

    done = subprocess.run([sys.executable, "-c", code, db_url], capture_output=True, text=True, env=script_env(), timeout=60)

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        'Error: runhistory-sql ui needs Starlette, uvicorn and Jinja2 (uvicorn is not installed). '
        'Install them with: pip install "runhistory-sql[ui]"\n'
    )


def test_ui_on_an_older_schema_says_how_to_upgrade(db_url):
    from runhistory_sql.db import migrate

    engine = make_engine(db_url)
    migrate.upgrade(engine, "0006")
    engine.dispose()

    result = CliRunner().invoke(main, ["ui", "--url", db_url, "--no-browser"])

    assert result.exit_code == 1
    assert result.output == (
        f"Error: Database {db_url} is at revision 0006 but this version of runhistory-sql needs 0008. "
        f"Back it up, then run: runhistory-sql db upgrade {db_url}\n"
    )
