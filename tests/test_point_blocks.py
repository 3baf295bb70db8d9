"""``point_blocks`` (migration 0008), kept by the writer in the points' transaction, on a real
SQLite file and a real PostgreSQL server (the ``url`` fixture): after every kind of write (mixed
batches of floats, NaN, infinities, -0.0, JSON values; an epoch rewind; ``rewind_to_step``;
``delete_metric``; a spill import) the stored blocks are exactly what the points say, computed
here in Python from the ``points`` table and in SQL by :func:`runhistory_sql.db.blocks.computed`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from alembic import command

from helpers import dump, query, same, tables, write_lock
from runhistory_sql import RunStore, SQLRunHistory
from runhistory_sql.db import blocks, migrate
from runhistory_sql.db.engine import make_engine
from runhistory_sql.db.schema import BLOCK
from runhistory_sql.read.deletion import delete_run
from runhistory_sql.write import spill


def _expected(url: str) -> list[tuple[Any, ...]]:
    """The block rows recomputed in Python from every point: count, lowest and highest value with
    their smallest seq, the first NULL value's seq."""
    found: dict[tuple[int, int, int], list[Any]] = {}
    for series_id, rev, seq, value in query(url, "SELECT series_id, rev, seq, value FROM points ORDER BY 1, 2, 3"):
        value = None if value is not None and math.isnan(value) else value
        row = found.setdefault((series_id, rev, seq // BLOCK), [0, None, None, None, None, None])
        row[0] += 1
        if value is None:
            row[5] = seq if row[5] is None else row[5]
            continue
        if row[1] is None or value < row[1]:
            row[1:3] = [value, seq]
        if row[3] is None or value > row[3]:
            row[3:5] = [value, seq]
    return [(*key, *row) for key, row in sorted(found.items())]


def _stored_and_computed(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ids = [int(i) for (i,) in conn.exec_driver_sql("SELECT id FROM series").all()]
            return blocks.stored(conn, ids), blocks.computed(conn, ids)
    finally:
        engine.dispose()


def _check(url: str) -> list[tuple[Any, ...]]:
    stored, computed = _stored_and_computed(url)
    expected = _expected(url)
    assert stored == expected
    assert computed == expected
    # the series numbered 1, 2, ... in the order they were made (ids differ between backends)
    number = {series_id: i + 1 for i, series_id in enumerate(sorted({row[0] for row in stored}))}
    return [(number[row[0]], *row[1:]) for row in stored]


def _mixed(i: int) -> Any:
    """Floats with a spike, NaN, infinities, -0.0, ints and JSON values in between."""
    specials = {5: math.nan, 17: math.inf, 18: -math.inf, 40: -0.0, 41: 0.0, 700: {"f1": 0.5}, 1500: "text",
                2047: math.nan, 2048: 7, 3000: 1e9}
    return specials.get(i, float((i * 7919) % 1009) / 10)


def test_mixed_batches_fold_into_exact_blocks(url: str) -> None:
    with SQLRunHistory(url, experiment="e", run_name="mixed") as h:
        for i in range(3100):
            h.update_metric("loss", _mixed(i))
            if i % 997 == 0:  # batches that end mid-block and span blocks
                assert h.flush(30)
            if i < 60:
                h.update_metric("other", math.nan if i % 2 else {"k": i})
    found = _check(url)
    loss = [row for row in found if row[0] == 1]
    assert [row[2:4] for row in loss] == [(0, BLOCK), (1, BLOCK), (2, BLOCK), (3, 3100 - 3 * BLOCK)]
    # block 0: -inf at 18 is lowest, inf at 17 highest, NaN at 5 the first gap
    assert loss[0][4:] == (-math.inf, 18, math.inf, 17, 5)
    # block 1: the JSON value at 1500 and the NaN at 2047 are gaps; block 2: 7 at 2048
    assert loss[1][8] == 1500 and loss[2][6:] == (1e9, 3000, None)
    assert [row[2:] for row in found if row[0] == 2] == [(0, 60, None, None, None, None, 0)]


def test_an_epoch_rewind_moves_the_blocks(url: str) -> None:
    with SQLRunHistory(url, experiment="e", run_name="rewound") as h:
        for epoch in range(3):
            for i in range(700):
                h.update_metric("loss", float(epoch * 1000 + i))
            h._increment_epoch()
        h._set_epoch(2)  # supersedes epochs 2 and 3: seqs 700 .. 2099
        for i in range(900):
            h.update_metric("loss", -float(i))
    found = _check(url)
    assert [row[1:4] for row in found] == [(0, 0, BLOCK), (0, 1, 1600 - BLOCK), (1, 0, BLOCK - 700),
                                           (1, 1, BLOCK), (1, 2, 2100 - 2 * BLOCK)]
    assert found[1][4:] == (-899.0, 1599, -(BLOCK - 700.0), BLOCK, None)


def test_rewind_to_step_moves_the_blocks(url: str) -> None:
    with SQLRunHistory(url, experiment="e", run_name="stepped") as h:
        for step in range(2500):
            h.log_metrics({"loss": 1.0 / (step + 1), "lr": math.nan if step == 1200 else 0.1}, step=step)
        assert h.flush(30)
        h.rewind_to_step(1100)
        for step in range(1100, 1300):
            h.log_metrics({"loss": 5.0}, step=step)
    found = _check(url)
    loss = [row[1:] for row in found if row[0] == 1]
    assert loss == [
        (0, 0, BLOCK, 1.0 / BLOCK, BLOCK - 1, 1.0, 0, None), (0, 1, 1300 - BLOCK, 1.0 / 1100, 1099, 5.0, 1100, None),
        (1, 1, 2048 - 1100, 1.0 / 2048, 2047, 1.0 / 1101, 1100, None),
        (1, 2, 2500 - 2048, 1.0 / 2500, 2499, 1.0 / 2049, 2048, None),
    ]
    assert [row[1:3] + row[8:] for row in found if row[0] == 2] == [(0, 0, None), (0, 1, None), (1, 1, 1200), (1, 2, None)]


def test_delete_metric_keeps_both_series_blocks_and_delete_run_removes_them(url: str) -> None:
    with SQLRunHistory(url, experiment="e", run_name="gone") as h:
        for i in range(1500):
            h.update_metric("loss", float(i))
        h.delete_metric("loss")
        h.update_metric("loss", 3.0)
    with SQLRunHistory(url, experiment="e", run_name="kept") as h:
        h.update_metric("acc", 0.5)
    found = _check(url)
    assert [row[:4] for row in found] == [(1, 0, 0, BLOCK), (1, 0, 1, 1500 - BLOCK), (2, 0, 0, 1), (3, 0, 0, 1)]
    with RunStore(url) as store:
        run_id = store.run("gone").run_id
    engine = make_engine(url)
    try:
        delete_run(engine, run_id)
    finally:
        engine.dispose()
    assert query(url, "SELECT COUNT(*) FROM point_blocks") == [(1,)]
    assert _check(url) == [(1, 0, 0, 1, 0.5, 0, 0.5, 0, None)]


def test_a_spill_import_folds_into_the_committed_blocks(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNHISTORY_SQL_SPILL_DIR", str(tmp_path / "spill"))
    history = SQLRunHistory(url, experiment="e", run_name="spilled")
    for i in range(1000):
        history.update_metric("loss", float(i % 300))
    assert history.flush(30)
    with write_lock(url):
        for i in range(100):
            history.update_metric("loss", -1.0 if i == 50 else math.nan if i == 60 else 2.0)
        path = history.close(timeout=0.5)
    assert path is not None
    assert _check(url) == [(1, 0, 0, 1000, 0.0, 0, 299.0, 299, None)]
    engine = make_engine(url)
    try:
        spill.import_file(engine, path)
    finally:
        engine.dispose()
    assert _check(url) == [(1, 0, 0, BLOCK, 0.0, 0, 299.0, 299, None), (1, 0, 1, 100 - (BLOCK - 1000), -1.0, 1050, 2.0, 1024, 1060)]


def _windows(url: str) -> list[Any]:
    with RunStore(url) as store:
        return [store.window("old", metric, buckets=buckets, superseded=True)
                for metric in ("loss", "acc") for buckets in (0, 3, 600)]


def test_a_0007_database_gets_its_blocks_and_reads_the_same(url: str) -> None:
    with SQLRunHistory(url, experiment="e", run_name="old") as h:
        for i in range(2600):
            h.update_metric("loss", _mixed(i))
            if i == 1800:
                h._increment_epoch()
        h.update_metric("gone", 1.0)
        h.delete_metric("gone")
        h._set_epoch(2)  # supersedes the 799 points of epoch 2 (seqs 1801 .. 2599) and gone's
        for i in range(1200):
            h.update_metric("loss", float(i % 500))
        h.reset()
        h.update_metric("acc", {"f1": 0.5})
        h.update_metric("acc", 0.75)
    at_head, windows = _check(url), _windows(url)
    engine = make_engine(url)
    try:
        with migrate.migration_lock(engine) as conn:
            command.downgrade(migrate._config(conn), "0007")
        assert "point_blocks" not in tables(url) and migrate.current_revision(engine) == "0007"
        rows = dump(url, ignore={"runs": ("heartbeat_at", "last_batch")})

        assert migrate.upgrade(engine) == ("0007", "0008")

        upgraded = dump(url, ignore={"runs": ("heartbeat_at", "last_batch")})
        assert (upgraded.pop("alembic_version"), rows.pop("alembic_version")) == ([("0008",)], [("0007",)])
        upgraded.pop("point_blocks")
        assert same(upgraded, rows)
        assert migrate.check(engine) == []
    finally:
        engine.dispose()
    assert _check(url) == at_head
    assert [row[:4] for row in at_head] == [(1, 0, 0, BLOCK), (1, 0, 1, BLOCK), (1, 0, 2, 3001 - 2 * BLOCK),
                                            (1, 1, 1, 2 * BLOCK - 1801), (1, 1, 2, 2600 - 2 * BLOCK), (2, 1, 0, 1),
                                            (3, 0, 0, 2)]
    assert same(_windows(url), windows)
