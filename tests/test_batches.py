"""How the writer commits one batch of points of mixed kinds (floats beside ints, NaN, JSON, ...).

A batch's points are inserted together whatever their kinds, and each series' summary is
updated once per batch: the stored rows are exactly those of points committed one at a time,
and the summaries are exact. Both backends.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from sqlalchemy import event

from helpers import query, same
from runhistory_sql import SQLRunHistory

#: one of every kind of value, cycled through in one series
KINDS: list[Any] = [
    0.25, 3, math.nan, -0.0, 0.0, -math.inf, True, 10**400, "text", None, {"a": [1, None]},
    torch.tensor(2.5), torch.tensor([1.0, 2.0]), -7, math.inf, 1e308,
]
CYCLES = 20
LOSSES = [1.0 / (i + 3) for i in range(len(KINDS) * CYCLES)]


def record(url: str, run_name: str, *, one_by_one: bool, step_as_float: bool = False) -> None:
    """Record ``loss`` (floats), ``step`` (ints) and ``kinds`` (everything) interleaved, step by step."""
    with SQLRunHistory(url, run_name=run_name, flush_interval=60) as h:
        for i, loss in enumerate(LOSSES):
            h.update_metric("loss", loss)
            h.update_metric("step", float(i + 1) if step_as_float else i + 1)
            h.update_metric("kinds", KINDS[i % len(KINDS)])
            if one_by_one:
                h.flush()


def stored(url: str, run_name: str) -> dict[str, list[tuple[Any, ...]]]:
    """Each metric's stored rows (everything but ids and times), in order."""
    rows = query(url, """
        SELECT m.name, p.seq, p.epoch, p.rev, p.value, p.special, p.value_json
        FROM points p JOIN series s ON s.id = p.series_id JOIN metrics m ON m.id = s.metric_id
        JOIN runs r ON r.id = s.run_id WHERE r.name = :name ORDER BY m.name, p.seq""", {"name": run_name})
    out: dict[str, list[tuple[Any, ...]]] = {}
    for name, *row in rows:
        out.setdefault(name, []).append(tuple(row))
    return out


def summaries(url: str, run_name: str) -> dict[str, tuple[Any, ...]]:
    rows = query(url, """
        SELECT m.name, s.n_points, s.min_value, s.max_value
        FROM series s JOIN metrics m ON m.id = s.metric_id JOIN runs r ON r.id = s.run_id
        WHERE r.name = :name""", {"name": run_name})
    return {name: tuple(rest) for name, *rest in rows}


def test_a_mixed_batch_stores_what_points_committed_one_by_one_store(url):
    record(url, "one-batch", one_by_one=False)
    record(url, "one-by-one", one_by_one=True)
    record(url, "floats-only", one_by_one=False, step_as_float=True)

    batch, alone, floats = stored(url, "one-batch"), stored(url, "one-by-one"), stored(url, "floats-only")

    assert same(batch, alone)
    assert same(batch["loss"], floats["loss"]) and same(batch["step"], floats["step"])
    assert same(batch["step"][:2], [(0, 1, 0, 1.0, None, None), (1, 1, 0, 2.0, None, None)])
    assert same(batch["kinds"][:16], [
        (0, 1, 0, 0.25, None, None), (1, 1, 0, 3.0, None, None), (2, 1, 0, None, 1, None),
        (3, 1, 0, 0.0, 2, None), (4, 1, 0, 0.0, None, None), (5, 1, 0, -math.inf, None, None),
        (6, 1, 0, 1.0, None, None), (7, 1, 0, None, None, "1" + "0" * 400), (8, 1, 0, None, None, '"text"'),
        (9, 1, 0, None, None, "null"), (10, 1, 0, None, None, '{"a": [1, null]}'), (11, 1, 0, 2.5, None, None),
        (12, 1, 0, None, None, "[1.0, 2.0]"), (13, 1, 0, -7.0, None, None), (14, 1, 0, math.inf, None, None),
        (15, 1, 0, 1e308, None, None),
    ])
    assert len(batch["kinds"]) == len(KINDS) * CYCLES


def test_a_mixed_batch_keeps_exact_summaries(url):
    record(url, "one-batch", one_by_one=False)
    record(url, "one-by-one", one_by_one=True)

    n = len(LOSSES)
    expected = {
        "loss": (n, min(LOSSES), max(LOSSES)),
        "step": (n, 1.0, float(n)),
        "kinds": (n, -math.inf, math.inf),
    }
    assert same(summaries(url, "one-batch"), expected)
    assert same(summaries(url, "one-by-one"), expected)
    from_points = query(url, """
        SELECT m.name, COUNT(*), MIN(p.value), MAX(p.value)
        FROM points p JOIN series s ON s.id = p.series_id JOIN metrics m ON m.id = s.metric_id
        JOIN runs r ON r.id = s.run_id WHERE r.name = 'one-batch' AND p.rev = 0 GROUP BY m.name""")
    assert same({name: tuple(rest) for name, *rest in from_points}, expected)


def test_a_mixed_batch_updates_each_summary_once_not_once_per_point(url):
    statements: list[str] = []
    with SQLRunHistory(url, run_name="counted", flush_interval=60) as h:
        event.listen(h._engine, "before_cursor_execute", lambda *args: statements.append(args[2].split()[0:2]))
        before = h.write_transactions
        for i, loss in enumerate(LOSSES):
            h.update_metric("loss", loss)
            h.update_metric("step", i + 1)
        h.flush()
        transactions = h.write_transactions - before

    assert transactions == 1
    # one executemany for both series (was: a SELECT and an UPDATE per run of one kind)
    assert statements.count(["UPDATE", "series"]) == 1
    assert statements.count(["SELECT", "COUNT(*),"]) == 0
    assert summaries(url, "counted") == {"loss": (len(LOSSES), min(LOSSES), max(LOSSES)),
                                         "step": (len(LOSSES), 1.0, float(len(LOSSES)))}


def test_a_batch_of_many_series_stores_every_point_in_its_own_series(url):
    # more series in one batch than the SQLite insert names one by one (it joins a token table then)
    values = {f"m{k:02d}": [k + i / 64 if (i + k) % 7 else k for i in range(50)] for k in range(40)}  # every 7th an int
    with SQLRunHistory(url, run_name="many", flush_interval=60) as h:
        for i in range(50):
            for name, series in values.items():
                h.update_metric(name, series[i])
        h.flush()
        assert h.write_transactions == 1

    rows = stored(url, "many")
    assert sorted(rows) == sorted(values)
    for name, series in values.items():
        assert same(rows[name], [(i, 1, 0, float(v), None, None) for i, v in enumerate(series)]), name
    assert same(summaries(url, "many"), {name: (50, float(min(s)), float(max(s))) for name, s in values.items()})
