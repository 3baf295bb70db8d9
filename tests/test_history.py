"""SQLRunHistory is a drop-in InMemoryRunHistory: the same operations on both give the same
reads (a differential hypothesis test), and a new process sees the same history.

Every test takes the ``url`` fixture and runs on a real SQLite file and a real PostgreSQL server.
The other history tests: test_history_values (values and names through the database),
test_history_stages (resume modes, stages, rewinds, delete_metric), test_history_input (bad
input), test_history_ranks (ranks that never write, closing).
"""
from __future__ import annotations


import itertools
import json
import math
import subprocess
import sys
from typing import Any, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_accelerated.tracking import InMemoryRunHistory, RunHistory

from helpers import same
from runhistory_sql import (
    SQLRunHistory,
)

from history_support import as_stored


# -- 1. differential: the same operations on InMemoryRunHistory and SQLRunHistory ------------

# "" and "eval_loss" make prefixed and unprefixed names collide ("eval_" + "loss")
NAMES = ("loss", "", "ünï 'q' \"", "eval_loss")
PREFIXES = ("", "eval_")
READ_NAMES = sorted({prefix + name for prefix in PREFIXES for name in NAMES})
READS = [("get_metric_names",), ("current_epoch",), ("metric_name_prefix",)] + [
    (read, name) for name in READ_NAMES for read in ("get_metric_values", "get_latest_metric")
]

scalars = st.one_of(
    st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, -0.0]),
    st.integers(-(2**53), 2**53), st.booleans(), st.text(max_size=4), st.none(),
)
values = st.one_of(
    scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=3), scalars, max_size=3),
)
update = st.tuples(st.just("update_metric"), st.sampled_from(NAMES), values)
operations = st.one_of(
    update, update, update,
    st.tuples(st.just("set_metric_name_prefix"), st.sampled_from(PREFIXES)),
    st.tuples(st.just("delete_metric"), st.sampled_from(READ_NAMES)),
    st.tuples(st.just("reset")),
    st.tuples(st.just("_increment_epoch")),
)


def outcome(h: RunHistory, member: str, *args: Any) -> tuple[Any, ...]:
    """Call (or read) ``member``: ``("ok", result)`` or ``("raised", type, message)``."""
    try:
        result = getattr(h, member)
        if callable(result):
            result = result(*args)
    except Exception as e:  # noqa: BLE001 - the exception itself is what is compared
        return ("raised", type(e), str(e) if isinstance(e, (KeyError, ValueError)) else None)
    return ("ok", list(result) if isinstance(result, list) else result)


def forget_empty(reference: InMemoryRunHistory) -> None:
    # the documented difference: reading an unknown name does not create it (no defaultdict)
    for name in [name for name, points in reference._metrics.items() if not points]:
        del reference._metrics[name]


def assert_same_outcome(reference: InMemoryRunHistory, sql: SQLRunHistory, *call: Any) -> None:
    expected = outcome(reference, *call)
    forget_empty(reference)

    got = outcome(sql, *call)

    assert same(got, expected), f"{call}: SQLRunHistory gave {got!r}, InMemoryRunHistory {expected!r}"


# Hypothesis runs many examples per test function, so each backend's test keeps one database
# for the whole module and each example uses a fresh run name in it.


@pytest.fixture(scope="module")
def shared_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('differential') / 'runs.db'}"


@pytest.fixture(scope="module")
def shared_postgres_url(pg_server: Any) -> Iterator[str]:
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)


_example = itertools.count()


def check_behaves_like_in_memory_run_history(url: str, ops: list[tuple[Any, ...]]) -> None:
    reference, run_name = InMemoryRunHistory(), f"example-{next(_example)}"

    with SQLRunHistory(url, experiment="differential", run_name=run_name) as sql:
        for op in ops:
            assert_same_outcome(reference, sql, *op)
            for read in READS:
                assert_same_outcome(reference, sql, *read)

    with SQLRunHistory(url, experiment="differential", run_name=run_name, resume="must") as resumed:
        assert resumed.current_epoch == reference.current_epoch
        assert resumed.get_metric_names() == set(reference._metrics)
        for name, stored in reference._metrics.items():
            assert same(resumed.get_metric_values(name), [as_stored(v) for v in stored]), name


@settings(max_examples=50, deadline=None)
@given(ops=st.lists(operations, max_size=30))
def test_behaves_like_in_memory_run_history_on_sqlite(shared_sqlite_url: str, ops: list[tuple[Any, ...]]) -> None:
    check_behaves_like_in_memory_run_history(shared_sqlite_url, ops)


# fewer examples: every _increment_epoch is a round trip to the server
@settings(max_examples=40, deadline=None)
@given(ops=st.lists(operations, max_size=30))
def test_behaves_like_in_memory_run_history_on_postgres(
    shared_postgres_url: str, ops: list[tuple[Any, ...]],
) -> None:
    check_behaves_like_in_memory_run_history(shared_postgres_url, ops)


def test_is_a_run_history(history):
    assert isinstance(history, RunHistory)


def test_reading_an_unknown_metric_does_not_create_it(history):
    history.get_metric_values("never")
    with pytest.raises(ValueError, match="No values have been recorded for the metric never"):
        history.get_latest_metric("never")

    assert history.get_metric_names() == set()
    with pytest.raises(KeyError):
        history.delete_metric("never")


def test_in_memory_run_history_would_create_it():
    # the defaultdict side effect SQLRunHistory deliberately does not copy
    reference = InMemoryRunHistory()

    reference.get_metric_values("never")

    assert reference.get_metric_names() == {"never"}


# -- 2. persistence across processes ---------------------------------------------------------

PRINT_HISTORY = """
import json, sys
from runhistory_sql import SQLRunHistory
with SQLRunHistory(sys.argv[1], experiment=sys.argv[2], run_name=sys.argv[3], resume="must") as h:
    names = sorted(h.get_metric_names())
    print(json.dumps({
        "names": names,
        "values": {n: h.get_metric_values(n) for n in names},
        "latest": {n: h.get_latest_metric(n) for n in names},
        "epoch": h.current_epoch,
    }))
"""


@pytest.mark.slow
def test_a_new_process_sees_the_same_history(url):
    with SQLRunHistory(url, experiment="exp", run_name="run") as h:
        h.update_metric("loss", 0.5)
        h.update_metric("odd", math.nan)
        h._increment_epoch()
        h.set_metric_name_prefix("eval_")
        h.update_metric("loss", -0.0)
        h.update_metric("loss", math.inf)
        h.update_metric("report", {"f1": 0.75, "labels": ["a", "b"]})
        h.update_metric("note", None)
        h._increment_epoch()
        h.update_metric("step", 3)

    result = subprocess.run(
        [sys.executable, "-c", PRINT_HISTORY, url, "exp", "run"],
        capture_output=True, text=True, timeout=120, check=True,
    )

    expected = {
        "names": ["eval_loss", "eval_note", "eval_report", "eval_step", "loss", "odd"],
        "values": {
            "eval_loss": [-0.0, math.inf], "eval_note": [None],
            "eval_report": [{"f1": 0.75, "labels": ["a", "b"]}], "eval_step": [3.0],
            "loss": [0.5], "odd": [math.nan],
        },
        "latest": {
            "eval_loss": math.inf, "eval_note": None, "eval_report": {"f1": 0.75, "labels": ["a", "b"]},
            "eval_step": 3.0, "loss": 0.5, "odd": math.nan,
        },
        "epoch": 3,
    }
    assert same(json.loads(result.stdout), expected), result.stdout


