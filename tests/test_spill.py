"""``runhistory-sql import-spill`` trusts nothing in the file: on a real SQLite file and a real
PostgreSQL server (the ``url`` fixture).

A real spill is made the way a run makes one: its writer's commit waits on a lock another
connection holds (SQLite's write lock, the run's row on PostgreSQL), ``close(timeout=0.5)`` gives
up and saves the run's 100 unwritten points and its end to a file. Then:

(a) the file, imported into another database that has a run of the same id and name, is refused
    and that run is unchanged; it imports into its own database;
(b) the file cut at a line boundary (or inside a line, or with a changed byte) is refused whole,
    nothing applied, and the complete file still imports afterwards;
(c) an operation that fails in the middle of the import rolls back everything, the
    ``spill_imported`` marker included, so the complete file still imports;
a file whose ids are not its run's here, or whose run was deleted, is refused too;
(d) malformed files (not JSON, binary, empty, a directory, missing, other formats) each give one
    line and exit code 1, and a :class:`SpillFileError` through the API (SQLite: the file is
    refused before any database is opened).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import pytest
from runhistory_sql import RunNotFoundError, SpillFileError, SQLRunHistory, WrongDatabaseError
from runhistory_sql.write import oplines
from runhistory_sql.write import spill
from runhistory_sql.write.batch import EVENT
from runhistory_sql.db.engine import make_engine

from helpers import dump, is_postgres, query, write_lock

COMMITTED, SPILLED = 10, 100
#: what the spill holds: the 100 points and the run's end
OPS = SPILLED + 1


@pytest.fixture
def other_url(url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A second database of the same backend as ``url``."""
    if not is_postgres(url):
        return f"sqlite:///{tmp_path / 'other.db'}"
    server = request.getfixturevalue("pg_server")
    name = server.create_database()
    request.addfinalizer(lambda: server.drop_database(name))
    return str(server.url(name))


def _record(url: str, name: str, first: float) -> SQLRunHistory:
    history = SQLRunHistory(url, experiment="e", run_name=name)
    for i in range(COMMITTED):
        history.update_metric("loss", first + i)
    assert history.flush(30)
    return history


def _spill(url: str, spill_dir: Path, monkeypatch: pytest.MonkeyPatch, name: str = "bravo") -> Path:
    """Run ``name``: 10 points committed, then 100 more and its end spilled at ``close()``."""
    monkeypatch.setenv("RUNHISTORY_SQL_SPILL_DIR", str(spill_dir))
    history = _record(url, name, 0.0)
    with write_lock(url):
        for i in range(SPILLED):
            history.update_metric("loss", float(COMMITTED + i))
        path = history.close(timeout=0.5)
    assert path is not None
    assert query(url, "SELECT COUNT(*) FROM points") == [(COMMITTED,)]
    return path


def _points(url: str) -> list[tuple[Any, ...]]:
    return query(url, "SELECT run_name, seq, value FROM v_metrics ORDER BY run_name, seq")


def _imports_whole(run: Callable[..., Any], path: Path, url: str) -> None:
    result = run("import-spill", str(path), "--url", url)
    assert (result.exit_code, result.output) == (0, f"Imported {OPS} operations from {path} into {url}.\n")
    assert _points(url) == [("bravo", i, float(i)) for i in range(COMMITTED + SPILLED)]
    assert query(url, "SELECT status FROM v_runs") == [("finished",)]
    assert query(url, "SELECT kind FROM v_events") == [("spill_imported",)]


def _identity(url: str) -> str:
    return str(query(url, "SELECT uuid FROM store_info")[0][0])


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


# -- (a) another database -------------------------------------------------------------------------


def test_a_file_for_another_database_is_refused_there(
    url: str, other_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Any],
) -> None:
    path = _spill(url, tmp_path, monkeypatch)
    # another database whose run 'bravo' is run id 1 too, with 10 points of its own
    _record(other_url, "bravo", 500.0).close()
    assert query(other_url, "SELECT id, name FROM runs") == query(url, "SELECT id, name FROM runs") == [(1, "bravo")]
    before = dump(other_url)

    result = run("import-spill", str(path), "--url", other_url)

    assert (result.exit_code, result.output) == (1, (
        f"Error: {path} belongs to database {_identity(url)} ({url}), not to this one "
        f"({_identity(other_url)}, {other_url}); import it with --url {url}\n"
    ))
    engine = make_engine(other_url)
    try:
        with pytest.raises(WrongDatabaseError, match=f"belongs to database {_identity(url)}"):
            spill.import_file(engine, path)
    finally:
        engine.dispose()
    assert dump(other_url) == before
    assert _points(other_url) == [("bravo", i, 500.0 + i) for i in range(COMMITTED)]
    _imports_whole(run, path, url)


def test_the_file_names_its_database_and_run_by_identity(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = _spill(url, tmp_path / "spill", monkeypatch)
    header = spill.read_header(path)
    [(run_uuid,)] = query(url, "SELECT uuid FROM runs")
    assert (header["format"], header["database"], header["url"], header["run"], header["ops"]) == (
        3, _identity(url), url, {"uuid": run_uuid, "name": "bravo", "experiment": "e"}, OPS,
    )
    assert json.loads(_lines(path)[-1]) == {
        "end": "runhistory-sql spill", "ops": OPS, "sha256": hashlib.sha256(b"".join(_lines(path)[:-1])).hexdigest(),
    }
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


# -- (b) an incomplete file -------------------------------------------------------------------------


def test_an_incomplete_file_is_refused_whole_and_the_complete_one_imports(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Any],
) -> None:
    path = _spill(url, tmp_path / "spill", monkeypatch)
    lines = _lines(path)
    cut = f"is incomplete: 50 of {OPS} operations and no end line; it was cut short, nothing was imported."
    # the point of seq 60 says 61.0: the line count is right, the checksum is not
    changed = [line.replace(b"60.0", b"61.0") for line in lines]
    assert changed != lines
    found, expected = hashlib.sha256(b"".join(changed[:-1])).hexdigest()[:12], json.loads(lines[-1])["sha256"][:12]
    damaged = f"is incomplete or damaged: {OPS} of {OPS} operations, checksum {found} instead of {expected}; nothing was imported."
    shorts = {
        "at-a-line": (b"".join(lines[:51]), cut),  # the header and 50 operations
        "inside-a-line": (b"".join(lines[:51]) + lines[51][:7], cut),
        "without-the-end-line": (b"".join(lines[:-1]), f"is incomplete: {OPS} of {OPS} operations and no end line; "
                                 "it was cut short, nothing was imported."),
        "one-byte-changed": (b"".join(changed), damaged),
    }
    before = dump(url)
    for name, (data, said) in shorts.items():
        short = tmp_path / f"{name}.jsonl"
        short.write_bytes(data)

        result = run("import-spill", str(short), "--url", url)

        assert (result.exit_code, result.output) == (1, f"Error: {short} {said}\n"), name
        assert dump(url) == before, name
    _imports_whole(run, path, url)


# -- (c) a failure in the middle ---------------------------------------------------------------------


def test_a_failure_in_the_middle_of_an_import_rolls_back_everything(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Any],
) -> None:
    path = _spill(url, tmp_path / "spill", monkeypatch)
    header, ops = spill.read(path)
    # a complete, checksummed file whose 51st operation breaks a constraint: an event without
    # payload (NOT NULL), after 50 points that were inserted already
    bad = tmp_path / "bad.jsonl"
    oplines.write(bad, header, [*ops[:50], (EVENT, "note", 1, 0, None), *ops[50:]])
    before = dump(url)

    result = run("import-spill", str(bad), "--url", url)

    cause = ('null value in column "payload" of relation "events" violates not-null constraint'
             if is_postgres(url) else "NOT NULL constraint failed: events.payload")
    assert (result.exit_code, result.output) == (1, f"Error: {bad} could not be applied ({cause}); nothing was imported.\n")
    assert dump(url) == before  # no point, no marker, the run's state and stamp as they were
    # the marker was rolled back too: the same spill (same spill id), complete, imports once
    _imports_whole(run, path, url)


def test_a_file_whose_ids_are_not_its_runs_or_whose_run_is_gone_is_refused(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Any],
) -> None:
    from runhistory_sql.read.deletion import _delete_rows

    path = _spill(url, tmp_path / "spill", monkeypatch)
    header, ops = spill.read(path)
    [(run_uuid,)] = query(url, "SELECT uuid FROM runs")
    # the right database and run uuid, but a stage id the run does not have here
    other_stage = tmp_path / "other-stage.jsonl"
    oplines.write(other_stage, {**header, "cursor": {**header["cursor"], "stage_id": 99}}, ops)
    before = dump(url)

    result = run("import-spill", str(other_stage), "--url", url)

    assert (result.exit_code, result.output) == (1, (
        f"Error: {other_stage} names run 'bravo' (uuid {run_uuid}), but its ids are not that run's here "
        "(the database was rebuilt or copied since); nothing was imported.\n"
    ))
    assert dump(url) == before

    engine = make_engine(url)
    try:
        with engine.begin() as conn:  # the run deleted (as `runhistory-sql delete` does)
            _delete_rows(conn, 1)
        result = run("import-spill", str(path), "--url", url)
        assert (result.exit_code, result.output) == (1, (
            f"Error: {path} belongs to run 'bravo' of experiment 'e' (uuid {run_uuid}), which is no longer "
            "in this database; nothing was imported.\n"
        ))
        with pytest.raises(RunNotFoundError):
            spill.import_file(engine, path)
    finally:
        engine.dispose()
    assert query(url, "SELECT COUNT(*) FROM runs") == [(0,)]


# -- (d) malformed files -----------------------------------------------------------------------------

_KIND = "runhistory-sql spill"


def _with_trailer(path: Path, body: bytes) -> Path:
    path.write_bytes(body + json.dumps({"end": _KIND, "ops": body.count(b"\n") - 1,
                                        "sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n")
    return path


_FORMAT_1 = (  # the first line of a file written before database identities
    '{"format": 1, "spill_id": "5b1e", "url": "sqlite:///runs.db", "cursor": {"run_id": 2, "stage": 1, '
    '"stage_id": 2, "rewinds": 0, "series": {}, "stats": {}, "created_ms": 0}, "pending_batch_id": null, '
    '"pending_ops": 0, "landed_cursor": null}\n[6, 2, 1000]\n'
)

MALFORMED: dict[str, tuple[Callable[[Path], Path], str]] = {
    "not JSON": (lambda d: _write(d / "f.jsonl", b"hello, world\n"),
                 "{} is not a runhistory-sql spill file: its first line is not the header of one."),
    "binary": (lambda d: _write(d / "f.jsonl", bytes(range(256)) * 4),
               "{} is not a runhistory-sql spill file: its first line is not the header of one."),
    "JSON, not a header": (lambda d: _write(d / "f.jsonl", b"[1, 2, 3]\n"),
                           "{} is not a runhistory-sql spill file: its first line is not the header of one."),
    "empty": (lambda d: _write(d / "f.jsonl", b""), "{} is empty: it is not a runhistory-sql spill file."),
    "a directory": (lambda d: d, "{} is a directory, not a runhistory-sql spill file."),
    "missing": (lambda d: d / "nowhere.jsonl", "{} does not exist."),
    "format 1": (lambda d: _write(d / "f.jsonl", _FORMAT_1.encode()), (
        "{} is a format-1 spill file, which names neither its database nor its length; this version "
        "refuses it rather than guess (see the README, 'Spill files'). Nothing was imported.")),
    "format 4": (lambda d: _write(d / "f.jsonl", b'{"format": 4, "kind": "runhistory-sql spill"}\n'), (
        "{} is a spill file of format 4; this version of runhistory-sql reads formats 2 and 3 (upgrade it: "
        "pip install -U runhistory-sql). Nothing was imported.")),
    "another kind": (lambda d: _write(d / "f.jsonl", b'{"format": 2, "kind": "notes"}\n'),
                     "{} is not a runhistory-sql spill file: its first line is not the header of one."),
    "an operation not JSON": (lambda d: _with_trailer(d / "f.jsonl", (
        '{"format": 2, "kind": "runhistory-sql spill", "ops": 2}\n[6, 2, 1000]\nnot an op\n').encode()),
        "{} line 3 is not an operation; nothing was imported."),
    "a header without its fields": (lambda d: _with_trailer(d / "f.jsonl", (
        '{"format": 2, "kind": "runhistory-sql spill", "ops": 0}\n').encode()),
        "{} has a malformed header (fields missing); nothing was imported."),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_file_is_one_line(
    db_url: str, db_path: Path, tmp_path: Path, run: Callable[..., Any], case: str,
) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    make, message = MALFORMED[case]
    path = make(folder)
    said = message.format(path)

    result = run("import-spill", str(path), "--url", db_url)

    assert (result.exit_code, result.output) == (1, f"Error: {said}\n")
    engine = make_engine(db_url)
    try:
        with pytest.raises(SpillFileError) as info:
            spill.import_file(engine, path)
    finally:
        engine.dispose()
    assert str(info.value) == said
    assert not db_path.exists()  # refused before the database was opened


def test_an_empty_database_is_refused_and_left_empty(
    url: str, other_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Any],
) -> None:
    path = _spill(url, tmp_path, monkeypatch)
    if not is_postgres(other_url):
        (tmp_path / "other.db").touch()  # an empty SQLite file (a missing one is refused: see below)
    result = run("import-spill", str(path), "--url", other_url)
    assert (result.exit_code, result.output) == (1, (
        f"Error: {path} belongs to database {_identity(url)} ({url}), not to {other_url}, which is empty; "
        f"import it with --url {url}\n"
    ))
    assert dump(other_url) == {}


def test_a_database_file_that_does_not_exist_is_refused_and_not_created(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Any],
) -> None:
    path = _spill(db_url, tmp_path, monkeypatch)
    missing = tmp_path / "missing.db"

    result = run("import-spill", str(path), "--url", f"sqlite:///{missing}")

    assert result.exit_code == 1
    assert result.output.startswith(f"Error: There is no database at {missing} (URL sqlite:///{missing}).")
    assert not missing.exists()
