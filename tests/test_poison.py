"""One operation the database refuses never holds back the others (on SQLite and PostgreSQL).

The call-site checks keep known bad values out; these tests put operations on the writer's
queue directly, past those checks, as the next unforeseen poison would get there. The writer
splits the failing batch until the bad operation is alone, sets it aside in a JSON-lines file,
records a ``write_error`` event, and commits everything else, in order.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import IntegrityError, OperationalError

from helpers import query, write_lock
from runhistory_sql import SQLRunHistory
from runhistory_sql.write import batch as w
from runhistory_sql.write.setaside import is_transient
from runhistory_sql.write.spill import read

BAD = "bad\ud800"
BAD_SHOWN = "bad\\ud800"
SURROGATE_ERROR = "'utf-8' codec can't encode character '\\ud800' in position 3: surrogates not allowed"


@pytest.fixture(autouse=True)
def spill_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNHISTORY_SQL_SPILL_DIR", str(tmp_path))
    return tmp_path


def _events(url: str) -> list[tuple[str, Any]]:
    return [(kind, json.loads(payload)) for kind, payload in query(url, "SELECT kind, payload FROM v_events ORDER BY event_id")]


def _lines(path: Path | None) -> list[dict[str, Any]]:
    assert path is not None
    return [json.loads(line) for line in path.read_text(encoding="ascii").splitlines()]


def _record_around(history: SQLRunHistory, poison: list[tuple[Any, ...]]) -> None:
    """Good points and events, the poison in the middle of them, all in one batch."""
    history.log_event("before", n=1)
    for i in range(3):
        history.update_metric("loss", float(i))
    for op in poison:
        history._writer.put(op)  # type: ignore[union-attr]
    history.update_metric("loss", 3.0)
    history.update_metric("acc", 0.5)  # a series created after the poison
    history.log_event("after", n=2)


def _good_rows(url: str) -> list[tuple[Any, ...]]:
    return query(url, "SELECT metric, seq, value FROM v_metrics ORDER BY metric, seq")


GOOD = [("acc", 0, 0.5), ("loss", 0, 0.0), ("loss", 1, 1.0), ("loss", 2, 2.0), ("loss", 3, 3.0)]


def test_a_bad_point_is_set_aside_and_everything_else_commits(url: str) -> None:
    history = SQLRunHistory(url, run_name="poisoned")
    history.update_metric("kept", 1.0)
    token = history._m["kept"].token  # the bad point belongs to a series that exists
    poison = (w.POINT_ENC, token, 1, 1, (None, None, f'"{BAD}"'), 1.0, None)

    _record_around(history, [poison])
    flushed = history.flush(30)
    path = history.set_aside_path
    closed = history.close()

    assert (flushed, closed) == (True, None)
    assert _good_rows(url) == [*GOOD[:1], ("kept", 0, 1.0), *GOOD[1:]]
    error = {"op": "point", "metric": "kept", "seq": 1, "epoch": 1, "value": f"(None, None, '\"{BAD_SHOWN}\"')"}
    assert _events(url) == [
        ("before", {"n": 1}),
        ("write_error", {**error, "error": SURROGATE_ERROR.replace("position 3", "position 4"), "file": str(path)}),
        ("after", {"n": 2}),
    ]
    assert [(line["op"], line["metric"]) for line in _lines(path)] == [([w.POINT_ENC, token, 1, 1, [None, None, f'"{BAD}"'], 1.0, None], "kept")]
    assert query(url, "SELECT status FROM v_runs") == [("finished",)]


def test_a_series_that_cannot_be_created_sets_its_points_aside_too(url: str) -> None:
    history = SQLRunHistory(url, run_name="bad-series")
    poison = [(w.SERIES, 10**9, BAD), (w.POINT, 10**9, 0, 1, 1.5, 1.0, None), (w.POINT_ENC, 10**9, 1, 1, (0.0, None, None), 2.0, None)]

    _record_around(history, poison)
    path = history.set_aside_path if history.flush(30) else None
    closed = history.close()

    assert closed is None
    assert _good_rows(url) == GOOD
    assert _events(url) == [
        ("before", {"n": 1}),
        ("write_error", {"op": "series", "metric": BAD_SHOWN, "error": SURROGATE_ERROR, "file": str(path)}),
        ("after", {"n": 2}),
    ]
    lines = _lines(path)
    assert [line["op"] for line in lines] == [[w.SERIES, 10**9, BAD], [w.POINT, 10**9, 0, 1, 1.5, 1.0, None], [w.POINT_ENC, 10**9, 1, 1, [0.0, None, None], 2.0, None]]
    assert [line["metric"] for line in lines] == [BAD_SHOWN] * 3
    assert lines[1]["error"] == "its series could not be created (see that series' write_error event)"
    assert query(url, "SELECT status FROM v_runs") == [("finished",)]


def test_a_bad_event_is_set_aside_and_close_returns_normally(url: str) -> None:
    history = SQLRunHistory(url, run_name="bad-event")

    _record_around(history, [(w.EVENT, BAD, 1, 5, json.dumps({"x": 1}))])
    closed = history.close()  # the bad event is still queued: close() sets it aside too

    path = history.set_aside_path
    assert closed is None
    assert _good_rows(url) == GOOD
    assert _events(url) == [
        ("before", {"n": 1}),
        ("write_error", {"op": "event", "kind": BAD_SHOWN, "payload": '{"x": 1}', "error": SURROGATE_ERROR, "file": str(path)}),
        ("after", {"n": 2}),
    ]
    assert [line["op"] for line in _lines(path)] == [[w.EVENT, BAD, 1, 5, '{"x": 1}']]
    assert query(url, "SELECT status FROM v_runs") == [("finished",)]


def test_a_name_postgres_cannot_index_is_set_aside_there(pg_url: str) -> None:
    history = SQLRunHistory(pg_url, run_name="long-name")
    long_name = "".join(chr(0x4E00 + i % 5000) for i in range(10_000))  # 30,000 bytes, hardly compressible

    _record_around(history, [(w.SERIES, 10**9, long_name), (w.POINT, 10**9, 0, 1, 1.5, 1.0, None)])
    closed = history.close()

    events = _events(pg_url)
    assert closed is None
    assert _good_rows(pg_url) == GOOD
    assert [kind for kind, _ in events] == ["before", "write_error", "after"]
    assert events[1][1]["metric"] == long_name[:200] + "... (10000 characters)"
    assert events[1][1]["error"].startswith("index row requires ")
    assert [line["op"][:2] for line in _lines(history.set_aside_path)] == [[w.SERIES, 10**9], [w.POINT, 10**9]]
    assert _lines(history.set_aside_path)[0]["op"][2] == long_name
    assert query(pg_url, "SELECT status FROM v_runs") == [("finished",)]


def test_a_bad_value_still_queued_when_the_database_is_locked_goes_whole_to_the_spill(db_url: str) -> None:
    # SQLite only: its write lock stops the writer before any statement, where on PostgreSQL the
    # row lock is met after the points, so the bad one is set aside first (as it should be)
    url = db_url
    history = SQLRunHistory(url, run_name="spilled")
    history.update_metric("loss", 1.0)
    assert history.flush(30)
    token = history._m["loss"].token

    with write_lock(url):
        history._writer.put((w.POINT_ENC, token, 1, 1, (None, None, f'"{BAD}"'), 1.0, None))  # type: ignore[union-attr]
        history.update_metric("loss", 2.0)
        path = history.close(timeout=0.5)  # raised UnicodeEncodeError and cut the file short before

    assert path is not None
    path.read_text(encoding="ascii")  # ASCII throughout: the lone surrogate is escaped
    header, ops = read(path)  # complete: count and checksum hold
    assert list(ops[0]) == [w.POINT_ENC, token, 1, 1, [None, None, f'"{BAD}"'], 1.0, None]
    assert [op[0] for op in ops] == [w.POINT_ENC, w.POINT, w.END]
    assert header["cursor"]["run_id"] == 1


def test_only_connection_and_lock_failures_are_transient(db_path: Path) -> None:
    engine = create_engine(f"sqlite:///{db_path}", connect_args={"timeout": 0})
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (k INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError) as locked, engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    finally:
        other.execute("ROLLBACK")
        other.close()
    with pytest.raises(IntegrityError) as duplicate, engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    with pytest.raises(OperationalError) as no_table, engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO missing VALUES (1)")
    engine.dispose()

    assert str(locked.value.orig) == "database is locked"
    assert [is_transient(e.value) for e in (locked, duplicate, no_table)] == [True, False, False]
    assert is_transient(UnicodeEncodeError("utf-8", BAD, 3, 4, "surrogates not allowed")) is False


def test_the_drivers_own_errors_are_told_apart_too(pg_url: str) -> None:
    # points reach PostgreSQL through psycopg's COPY, whose errors SQLAlchemy does not wrap
    import psycopg

    from pg_server import free_port

    with pytest.raises(psycopg.OperationalError) as unreachable:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/x", connect_timeout=2)
    with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql")) as conn:
        conn.execute("CREATE TABLE n (name text UNIQUE)")
        with pytest.raises(psycopg.errors.ProgramLimitExceeded) as too_big:  # an index row too large
            conn.execute("INSERT INTO n VALUES (%s)", ["".join(chr(0x4E00 + i % 5000) for i in range(10_000))])

    assert is_transient(unreachable.value) is True
    assert is_transient(too_big.value) is False
