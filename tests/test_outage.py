"""A PostgreSQL server that goes away: during training, and still gone at ``close()``.

1. ``tests/scripts/outage_train.py`` trains the demo model with the real Trainer (8 epochs of 8
   steps, a 0.25 s "compute" sleep per step, a ``step`` metric per step) against the session's
   real server. After epoch 1 the test stops the server (``pg_ctl stop -m fast``), keeps it down
   for 10 s, and starts it again on the same port. Training is not interrupted (its time-stamped
   progress lines go on during the outage, and the epoch-end commits do not hold it up), it exits
   0, and afterwards every point is in ``v_metrics`` exactly once, the run ``finished``.
2. The server is stopped and still down at ``close(timeout=2)``: the pending operations go to a
   spill file (JSON lines) whose path is returned and printed; once the server is back,
   ``runhistory-sql import-spill FILE --url URL`` loads them, once.

The server is shared by the whole session: every test here starts it again in a ``finally``.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

from runhistory_sql.cli import main as cli
from runhistory_sql.write.spill import read_header
from helpers import is_postgres, query, script_env, write_lock

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "scripts" / "outage_train.py"
EPOCHS, STEPS, STEP_S = 8, 8, 0.25
OUTAGE_S = 10.0
DEADLINE_S = 120.0

pytestmark = pytest.mark.slow




def _is_running(server: Any) -> bool:
    try:
        server.pg_ctl("status")
    except subprocess.CalledProcessError:
        return False
    return True


def _start(server: Any) -> None:
    server.pg_ctl("start", "-w", "-t", "60", "-l", str(server.root / "server.log"))


def _ensure_running(server: Any) -> None:
    """The server is shared by the session: whatever happened, leave it running."""
    if not _is_running(server):
        _start(server)


def _stop(server: Any) -> None:
    server.pg_ctl("stop", "-m", "fast", "-w")
    assert not _is_running(server)


def _progress(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def _effective(url: str, run_name: str) -> dict[str, list[tuple[int, Any]]]:
    """metric -> [(epoch, value)] of the run in ``v_metrics``, checking that seq is 0, 1, 2, ..."""
    found: dict[str, list[tuple[int, Any]]] = {}
    for metric, stage, seq, epoch, value in query(
        url, "SELECT metric, stage, seq, epoch, value FROM v_metrics WHERE run_name = :n ORDER BY metric, seq",
        {"n": run_name},
    ):
        assert (stage, seq) == (1, len(found.get(metric, [])))
        found.setdefault(metric, []).append((epoch, value))
    return found


def test_training_goes_on_through_a_ten_second_outage(tmp_path: Path, pg_url: str, pg_server: Any) -> None:
    progress = tmp_path / "progress.log"
    out, err = tmp_path / "train.out", tmp_path / "train.err"
    command = [sys.executable, str(SCRIPT), pg_url, "through-outage", str(progress), str(EPOCHS), str(STEPS), str(STEP_S)]
    deadline = time.monotonic() + DEADLINE_S
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(command, cwd=tmp_path, env=script_env(), stdout=stdout, stderr=stderr)
    try:
        try:
            # stop the server once epoch 1 is over (its points committed)
            while not any(p[:2] == ["EPOCH_END", "1"] for p in _progress(progress)):
                assert proc.poll() is None, err.read_text()
                assert time.monotonic() < deadline, "epoch 1 did not end in time"
                time.sleep(0.05)
            _stop(pg_server)
            down_at = time.time()
            while time.time() - down_at < OUTAGE_S:
                assert proc.poll() is None, f"training ended during the outage: {err.read_text()[-3000:]}"
                time.sleep(0.1)
            still_training = proc.poll() is None
            up_from = time.time()
            _start(pg_server)
            up_at = time.time()
        finally:
            _ensure_running(pg_server)  # the server is the session's: leave it running, whatever happened
        returncode = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    stderr_text = err.read_text()
    assert returncode == 0, stderr_text[-3000:]
    assert still_training, "training ended before the server came back"
    # nothing but the writer's warnings: the outage seen once, then each epoch left uncommitted
    stderr_lines = stderr_text.splitlines()
    assert stderr_lines[0].startswith("runhistory-sql: commit failed, will retry: connection failed: ")
    warning = re.compile(r"runhistory-sql: epoch (\d+) is not committed yet \(connection failed: "
                         r".+\); training goes on and the points stay queued\.")
    matches = [warning.fullmatch(x) for x in stderr_lines[1:]]
    assert all(matches), stderr_text
    warned = [int(m.group(1)) for m in matches if m]
    (line,) = [x for x in out.read_text().splitlines() if x.startswith("RESULT ")]
    result = json.loads(line[len("RESULT "):])
    assert result["spilled"] is None
    assert result["epoch"] == EPOCHS + 1

    lines = _progress(progress)
    steps = [(int(p[1]), int(p[2]), float(p[3])) for p in lines if p[0] == "STEP"]
    assert [(s, e) for s, e, _ in steps] == [(i, i // STEPS + 1) for i in range(EPOCHS * STEPS)]
    during = [s for s, _, t in steps if down_at < t < up_from]
    epoch_ends = [(int(p[1]), float(p[2]), float(p[3])) for p in lines if p[0] == "EPOCH_END"]
    assert [e for e, _, _ in epoch_ends] == list(range(1, EPOCHS + 1))
    ends_during = [(e, held) for e, t, held in epoch_ends if down_at < t < up_from]
    # progress all through the outage: steps and whole epochs went by while the server was down
    assert len(during) >= OUTAGE_S / STEP_S / 4, during
    assert len(ends_during) >= 2, epoch_ends
    assert max(held for _, held in ends_during) < 2.0, ends_during
    assert {e for e, _ in ends_during} <= set(warned) <= set(range(2, EPOCHS + 1)), (ends_during, warned)
    gaps = [b - a for (_, _, a), (_, _, b) in zip(steps, steps[1:])]
    assert max(gaps) < OUTAGE_S / 2, gaps  # never held up for the outage

    # every point exactly once: the step indices, and the trainer's epoch metrics as its mirror saw them
    mirror = result["mirror"]
    assert sorted(mirror) == ["eval_loss_epoch", "step", "train_loss_epoch"]
    assert mirror["step"] == list(range(EPOCHS * STEPS))
    expected = {
        "step": [(i // STEPS + 1, float(i)) for i in range(EPOCHS * STEPS)],
        "eval_loss_epoch": [(e + 1, v) for e, v in enumerate(mirror["eval_loss_epoch"])],
        "train_loss_epoch": [(e + 1, v) for e, v in enumerate(mirror["train_loss_epoch"])],
    }
    assert len(expected["eval_loss_epoch"]) == len(expected["train_loss_epoch"]) == EPOCHS
    assert _effective(pg_url, "through-outage") == expected
    total = EPOCHS * STEPS + 2 * EPOCHS
    assert query(pg_url, "SELECT COUNT(*) FROM v_metrics") == [(total,)]
    assert query(pg_url, "SELECT COUNT(*), MIN(rev), MAX(rev) FROM points") == [(total, 0, 0)]
    assert query(pg_url, "SELECT status, current_epoch, num_stages FROM v_runs") == [("finished", EPOCHS + 1, 1)]
    # the points recorded while the server was down were written after it came back
    (recorded_during,) = query(
        pg_url, "SELECT COUNT(*) FROM v_metrics WHERE recorded_at > to_timestamp(:a) AND recorded_at < to_timestamp(:b)",
        {"a": down_at, "b": up_from},
    )[0]
    assert recorded_during >= len(during) - 1  # a step logs its line STEP_S after its point
    print(f"\noutage {up_at - down_at:.1f} s (down {up_from - down_at:.1f} s, restart {up_at - up_from:.1f} s); "
          f"{len(during)} steps and epoch ends {ends_during} during it; {recorded_during} points recorded "
          f"during it; {total} points; {result['transactions']} write transactions")


# -- still down at close(): the spill file and import-spill ---------------------------------------

#: the line close() prints: the cause (the driver's first line), the file, and how to load it
SPILL_LINE = (r"runhistory-sql: the database was unreachable \(connection failed: .+\); pending points saved "
              r"to {0}\. Load them with: runhistory-sql import-spill {0}")


def _spill_a_run(
    server: Any, url: str, run_name: str, *, commit_first: bool, capsys: pytest.CaptureFixture[str],
) -> tuple[Path, dict[str, list[tuple[int, Any]]]]:
    """Record a run whose server stops (and stays down) before ``close(timeout=2)``.

    ``commit_first``: ``loss`` gets 5 points in epoch 1, committed, before the server stops.
    During the outage ``loss`` gets 4 more and ``acc`` (a new metric) 3, in epoch 2 (1 without
    ``commit_first``), the epoch ends, and an event is logged.
    Return the spill file and the run's expected effective history.
    """
    from runhistory_sql import SQLRunHistory

    history = SQLRunHistory(url, experiment="spill", run_name=run_name)
    expected: dict[str, list[tuple[int, Any]]] = {"loss": [], "acc": []}
    try:
        if commit_first:
            for i in range(5):
                history.update_metric("loss", 1.0 + i)
                expected["loss"].append((1, 1.0 + i))
            history._increment_epoch()
            assert history.flush(30.0)
            assert query(url, "SELECT COUNT(*) FROM v_metrics") == [(5,)]
        _stop(server)
        epoch = history.current_epoch
        for i in range(4):
            history.update_metric("loss", 10.0 + i)
            expected["loss"].append((epoch, 10.0 + i))
        for i in range(3):
            history.update_metric("acc", 0.5 + i)
            expected["acc"].append((epoch, 0.5 + i))
        history._increment_epoch()  # gives up at once: the database is failing
        history.log_event("checkpoint", path="ckpt.pt")
        started = time.monotonic()
        capsys.readouterr()
        path = history.close(timeout=2)
        closed_in = time.monotonic() - started
        assert path is not None
        assert closed_in < 2 + 5 + 1  # the timeout, plus at most 5 s for an attempt in flight
        said = capsys.readouterr().err.splitlines()
        assert [line for line in said if re.fullmatch(SPILL_LINE.format(re.escape(str(path))), line)] == said[-1:]
        assert history.spill_path == path
        assert history.close() == path  # closing again changes nothing
    finally:
        _ensure_running(server)
    return path, expected


def _import(path: Path, url: str) -> Any:
    return CliRunner().invoke(cli, ["import-spill", str(path), "--url", url])


def test_spill_at_close_when_still_down_then_import_spill_once(
    tmp_path: Path, pg_url: str, pg_server: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    spill_dir = tmp_path / "spill"
    monkeypatch.setenv("RUNHISTORY_SQL_SPILL_DIR", str(spill_dir))
    path, expected = _spill_a_run(pg_server, pg_url, "spilled", commit_first=True, capsys=capsys)
    assert path.parent == spill_dir and path.name.startswith("runhistory-spill-") and path.suffix == ".jsonl"
    assert list(spill_dir.iterdir()) == [path]
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert (lines[0]["format"], lines[0]["ops"], lines[-1]["ops"]) == (3, 11, 11)
    # 11 operations between the header and the end line: 4 points of loss, acc's new series and
    # its 3 points, the epoch, the event, the end
    assert len(lines) - 2 == 11
    # nothing of the outage reached the database: the 5 points committed before it, the run running
    assert query(pg_url, "SELECT COUNT(*) FROM v_metrics") == [(5,)]
    assert query(pg_url, "SELECT status, current_epoch FROM runs") == [("running", 2)]

    result = _import(path, pg_url)
    assert (result.exit_code, result.output) == (0, f"Imported 11 operations from {path} into {pg_url}.\n")
    assert _effective(pg_url, "spilled") == expected
    assert query(pg_url, "SELECT COUNT(*) FROM v_metrics") == [(5 + 4 + 3,)]
    assert query(pg_url, "SELECT COUNT(*) FROM points") == [(5 + 4 + 3,)]
    assert query(pg_url, "SELECT status, current_epoch, num_stages FROM v_runs") == [("finished", 3, 1)]
    events = query(pg_url, "SELECT kind, epoch, payload FROM v_events ORDER BY recorded_at, kind")
    assert [(k, e) for k, e, _ in events] == [("checkpoint", 3), ("spill_imported", None)]
    assert json.loads(events[0][2]) == {"path": "ckpt.pt"}

    # the same file again: refused with a clear message, and nothing changes
    before = {sql: query(pg_url, sql) for sql in (
        "SELECT * FROM v_metrics ORDER BY metric, seq", "SELECT * FROM v_events ORDER BY recorded_at, kind",
        "SELECT * FROM v_runs", "SELECT COUNT(*) FROM series",
    )}
    again = _import(path, pg_url)
    assert again.exit_code == 1
    assert again.output == f"Error: {path} was already imported into this database; nothing was changed.\n"
    assert {sql: query(pg_url, sql) for sql in before} == before


def test_spill_of_a_run_that_never_committed_a_point_imports(
    tmp_path: Path, pg_url: str, pg_server: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RUNHISTORY_SQL_SPILL_DIR", str(tmp_path))
    path, expected = _spill_a_run(pg_server, pg_url, "never-committed", commit_first=False, capsys=capsys)
    # 12 operations: loss's series and 4 points, acc's series and 3 points, the epoch, the event, the end
    assert len(path.read_text(encoding="utf-8").splitlines()) - 2 == 12
    assert query(pg_url, "SELECT COUNT(*) FROM v_metrics") == [(0,)]
    result = _import(path, pg_url)
    assert (result.exit_code, result.output) == (0, f"Imported 12 operations from {path} into {pg_url}.\n")
    assert _effective(pg_url, "never-committed") == expected
    assert query(pg_url, "SELECT status, current_epoch FROM v_runs") == [("finished", 2)]


def test_importing_a_spill_twice_does_not_double_it(
    tmp_path: Path, pg_url: str, pg_server: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RUNHISTORY_SQL_SPILL_DIR", str(tmp_path))
    path, expected = _spill_a_run(pg_server, pg_url, "imported-twice", commit_first=False, capsys=capsys)
    assert _import(path, pg_url).exit_code == 0
    assert _effective(pg_url, "imported-twice") == expected
    again = _import(path, pg_url)  # a second import is refused and changes nothing

    assert (again.exit_code, again.output) == (1, f"Error: {path} was already imported into this database; nothing was changed.\n")
    assert query(pg_url, "SELECT COUNT(*) FROM v_metrics") == [(7,)]
    assert _effective(pg_url, "imported-twice") == expected
    assert query(pg_url, "SELECT kind FROM v_events ORDER BY recorded_at, kind") == [("checkpoint",), ("spill_imported",)]


def test_a_long_outage_moves_the_queue_to_disk_and_loses_nothing(pg_url: str, pg_server: Any) -> None:
    from runhistory_sql import SQLRunHistory

    history = SQLRunHistory(pg_url, run_name="overflow", flush_interval=0.1)
    history._writer.max_queue = 500  # the memory bound, small enough to cross here
    history.update_metric("loss", 0.5)
    assert history.flush(30)
    try:
        _stop(pg_server)
        deadline = time.monotonic() + 30
        written = 1
        while time.monotonic() < deadline and not history._writer._overflow:
            for _ in range(600):
                history.update_metric("loss", float(written))
                written += 1
            time.sleep(0.3)  # the writer retries with backoff while the server is down
        parked = [chunk.path for chunk in history._writer._overflow]
    finally:
        _ensure_running(pg_server)
    assert parked and all(path.exists() for path in parked)

    assert history.flush(60)
    history.close()

    stored = query(pg_url, "SELECT seq, value FROM v_metrics WHERE run_name = 'overflow' ORDER BY seq")
    assert stored == [(0, 0.5)] + [(i, float(i)) for i in range(1, written)]
    assert not any(path.exists() for path in parked)  # read back in order, then removed


def test_a_batch_whose_commit_hangs_at_close_is_spilled_and_imported_once(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runhistory_sql import SQLRunHistory

    monkeypatch.setenv("RUNHISTORY_SQL_SPILL_DIR", str(tmp_path))
    history = SQLRunHistory(url, run_name="stuck")
    history.update_metric("loss", 1.0)
    assert history.flush(30)
    with write_lock(url):
        history.update_metric("loss", 2.0)
        history.update_metric("loss", 3.0)
        assert not history.flush(1.0)  # the writer took the batch and waits for the lock
        path = history.close(timeout=0.5)  # gives up while that commit is still waiting
    # the lock is gone: the abandoned attempt rolls back (its batch is in the spill file)

    assert path is not None
    assert read_header(path)["pending_ops"] == 2  # the two points of the batch in flight
    result = _import(path, url)

    assert result.exit_code == 0, result.output
    assert query(url, "SELECT seq, value FROM v_metrics ORDER BY seq") == [(0, 1.0), (1, 2.0), (2, 3.0)]
    assert query(url, "SELECT status FROM v_runs") == [("finished",)]


# -- preempted while the database is unreachable: spill within the SIGTERM bound, then die of it -----

#: what the child waits for after SIGTERM besides its ``term_timeout``: signal handling, the spill
#: write, the exit (a loaded 2-core machine); the 60 s close timeout is far beyond it
EXIT_MARGIN_S = 2.0


@contextmanager
def _unreachable(url: str, request: pytest.FixtureRequest) -> Iterator[None]:
    """The database as the child sees it through an outage: PostgreSQL stopped, or (SQLite, which
    has no server) its write lock held, so that the child's commit waits in flight."""
    if not is_postgres(url):
        with write_lock(url):
            yield
        return
    server = request.getfixturevalue("pg_server")
    try:
        _stop(server)
        yield
    finally:
        _ensure_running(server)


def test_sigterm_during_an_outage_spills_within_the_bound_then_dies_of_the_signal(
    url: str, tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    # SQLite: a bound of 2 s from the environment; PostgreSQL: the default, 5 s. The child records
    # WAIT_AFTER epochs, the last ones during the outage, then waits to be preempted (SQLite: in the
    # epoch-end commit, which waits for the lock: one epoch of outage is all it gets)
    term_timeout, wait_after = (5.0, 3) if is_postgres(url) else (2.0, 2)
    env = {**script_env(), "RUNHISTORY_SQL_SPILL_DIR": str(tmp_path / "spill")}
    if not is_postgres(url):
        env["RUNHISTORY_SQL_TERM_TIMEOUT"] = "2"
    progress, err = tmp_path / "progress.log", tmp_path / "train.err"
    command = [sys.executable, str(SCRIPT), url, "preempted", str(progress), "10", str(STEPS), str(STEP_S), str(wait_after)]
    deadline = time.monotonic() + DEADLINE_S

    def wait_for(kind: str, value: str) -> list[str]:
        while not (found := [p for p in _progress(progress) if p[:2] == [kind, value]]):
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < deadline, f"no {kind} {value} in time"
            time.sleep(0.02)
        return found[0]

    with err.open("w") as stderr:
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_for("EPOCH_END", "1")  # epoch 1 is committed
        with _unreachable(url, request):
            mirror = json.loads(" ".join(wait_for("MIRROR", str(wait_after))[2:]))  # nothing more is recorded
            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            returncode = proc.wait(timeout=60)
            took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert returncode == -signal.SIGTERM
    assert took < term_timeout + EXIT_MARGIN_S, took
    (path,) = (tmp_path / "spill").iterdir()
    said = err.read_text().splitlines()
    assert re.fullmatch(rf"runhistory-sql: the database was unreachable( \(.+\))?; pending points saved to "
                        rf"{re.escape(str(path))}\. Load them with: runhistory-sql import-spill {re.escape(str(path))}",
                        said[-1]), said
    result = _import(path, url)
    assert result.exit_code == 0, result.output

    # every point, exactly once: the steps the test knows, the epoch losses the child's mirror held
    assert sorted(mirror) == ["eval_loss_epoch", "step", "train_loss_epoch"]
    assert _effective(url, "preempted") == {
        "step": [(i // STEPS + 1, float(i)) for i in range(wait_after * STEPS)],
        "eval_loss_epoch": [(e + 1, v) for e, v in enumerate(mirror["eval_loss_epoch"])],
        "train_loss_epoch": [(e + 1, v) for e, v in enumerate(mirror["train_loss_epoch"])],
    }
    assert len(mirror["eval_loss_epoch"]) == wait_after
    assert query(url, "SELECT status, current_epoch, num_stages FROM v_runs") == [("failed", wait_after + 1, 1)]
    events = query(url, "SELECT kind, epoch, payload FROM v_events ORDER BY recorded_at, kind")
    spilled_ops = len(path.read_text(encoding="utf-8").splitlines()) - 2  # less the header and the trailer
    assert [(k, e, json.loads(p)) for k, e, p in events] == [
        ("training_run_start", 1, {"num_epochs": 10}),
        *[("epoch_end", e, {"epoch": e}) for e in range(1, wait_after + 1)],
        ("exit", wait_after + 1, {"code": "signal SIGTERM"}),  # the run ended failed, by the signal
        ("spill_imported", None, {"file": str(path), "ops": spilled_ops, "spill_id": read_header(path)["spill_id"]}),
    ]
    print(f"\nSIGTERM to exit: {took:.2f} s (bound {term_timeout:.0f} s + the spill write)")
