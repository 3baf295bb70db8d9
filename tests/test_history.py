"""SQLRunHistory is a drop-in InMemoryRunHistory that keeps everything in a real database.

Every test about storage takes the ``url`` fixture and runs twice: on a real SQLite file and on a
real PostgreSQL server. Where the backends legitimately differ (booleans, NaN and -0.0 in
``v_metrics``), the expected values are spelled out per backend. Tests of SQLite-only matters
(the default file, file bytes, in-memory and missing-directory URLs) take ``db_url``.
"""
from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_accelerated.tracking import InMemoryRunHistory, RunHistory

from helpers import dump, is_postgres, query, same
from runhistory_sql import (
    DatabaseUnavailableError,
    DatabaseURLError,
    RunHistorySQLError,
    RunExistsError,
    RunInUseError,
    RunNotFoundError,
    SQLRunHistory,
)
from runhistory_sql.errors import InvalidArgumentError

# -- helpers --------------------------------------------------------------------------------


def as_stored(value: Any) -> Any:
    """What a value reads as once it went through the database (numbers become floats)."""
    if type(value) in (int, bool, float):
        return float(value)
    return json.loads(json.dumps(value))


def stored_data(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """``helpers.dump`` without ``runs.heartbeat_at`` and ``runs.last_batch``, which every commit refreshes."""
    return dump(url, ignore={"runs": ("heartbeat_at", "last_batch")})


def metric_rows(url: str) -> list[tuple[Any, ...]]:
    return query(
        url, "SELECT stage, metric, seq, epoch, value, value_json FROM v_metrics ORDER BY stage, metric, seq",
    )


def true(url: str) -> bool | int:
    """How a true SQL boolean reads back: ``True`` on PostgreSQL, ``1`` on SQLite."""
    return True if is_postgres(url) else 1


def false(url: str) -> bool | int:
    return False if is_postgres(url) else 0


def history_of(h: RunHistory) -> dict[str, Any]:
    names = sorted(h.get_metric_names())
    return {
        "names": names,
        "values": {n: h.get_metric_values(n) for n in names},
        "latest": {n: h.get_latest_metric(n) for n in names},
        "epoch": h.current_epoch,
    }


@pytest.fixture
def history(url: str) -> Iterator[SQLRunHistory]:
    with SQLRunHistory(url, experiment="exp", run_name="run") as h:
        yield h


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


# -- 3. values through the database ----------------------------------------------------------

ROUND_TRIPS = [
    ("nan", math.nan, math.nan),
    ("pos_inf", math.inf, math.inf),
    ("neg_inf", -math.inf, -math.inf),
    ("neg_zero", -0.0, -0.0),
    ("int", 7, 7.0),
    ("bool", True, 1.0),
    ("np_float32", np.float32(0.1), float(np.float32(0.1))),
    ("np_int64", np.int64(-3), -3.0),
    ("np_nan", np.float64("nan"), math.nan),
    ("tensor_0d", torch.tensor(2.5), 2.5),
    ("tensor_neg_zero", torch.tensor(-0.0), -0.0),
    ("tensor_1d", torch.tensor([1.0, 2.0]), [1.0, 2.0]),
    ("array_2d", np.array([[1, 2], [3, 4]]), [[1, 2], [3, 4]]),
    ("str", "best 'one'", "best 'one'"),
    ("dict", {"f1": 0.5, "per_class": [0.25, None]}, {"f1": 0.5, "per_class": [0.25, None]}),
    ("list", [1, "two", None], [1, "two", None]),
    ("none", None, None),
    ("huge_int", 10**400, 10**400),
]


def test_values_round_trip_through_the_database(url):
    with SQLRunHistory(url, run_name="values") as h:
        for name, value, _ in ROUND_TRIPS:
            h.update_metric(name, value)

    with SQLRunHistory(url, run_name="values", resume="must") as resumed:
        got = {name: resumed.get_latest_metric(name) for name, _, _ in ROUND_TRIPS}

    assert same(got, {name: expected for name, _, expected in ROUND_TRIPS})
    assert math.copysign(1.0, got["neg_zero"]) == math.copysign(1.0, got["tensor_neg_zero"]) == -1.0


def test_values_read_with_plain_sql(url):
    with SQLRunHistory(url, run_name="values") as h:
        for name, value, _ in ROUND_TRIPS:
            h.update_metric(name, value)

    in_view = {
        metric: (value, value_json)
        for metric, value, value_json in query(url, "SELECT metric, value, value_json FROM v_metrics")
    }
    flagged = query(url, "SELECT value, special FROM points WHERE special IS NOT NULL ORDER BY special, value")

    # SQLite has no NaN (NULL in the view) and stores -0.0 as 0: both are flagged in the table,
    # and the view gives -0.0 back from the flag. PostgreSQL has both natively.
    nan, neg_zero = (math.nan if is_postgres(url) else None), -0.0
    assert same(in_view, {
        "nan": (nan, None),
        "pos_inf": (math.inf, None),
        "neg_inf": (-math.inf, None),
        "neg_zero": (neg_zero, None),
        "int": (7.0, None),
        "bool": (1.0, None),
        "np_float32": (float(np.float32(0.1)), None),
        "np_int64": (-3.0, None),
        "np_nan": (nan, None),
        "tensor_0d": (2.5, None),
        "tensor_neg_zero": (neg_zero, None),
        "tensor_1d": (None, "[1.0, 2.0]"),
        "array_2d": (None, "[[1, 2], [3, 4]]"),
        "str": (None, '"best \'one\'"'),
        "dict": (None, '{"f1": 0.5, "per_class": [0.25, null]}'),
        "list": (None, '[1, "two", null]'),
        "none": (None, "null"),
        "huge_int": (None, "1" + "0" * 400),
    })
    assert same(flagged, [(None, 1), (None, 1), (0.0, 2), (0.0, 2)])


def test_the_mirror_keeps_the_original_object(history):
    objects = [value for _, value, _ in ROUND_TRIPS]

    for i, obj in enumerate(objects):
        history.update_metric(f"m{i}", obj)

    assert all(history.get_latest_metric(f"m{i}") is obj for i, obj in enumerate(objects))
    assert all(history.get_metric_values(f"m{i}")[0] is obj for i, obj in enumerate(objects))


@pytest.mark.parametrize(
    "value, named",
    [
        (object(), "builtins.object"), ({1, 2}, "builtins.set"), ({"a": object()}, "object"),
        (np.longdouble(1.5), "numpy.longdouble"), (torch.tensor(1.0, device="meta"), "torch.Tensor"),
    ],
)
def test_unsupported_value_is_a_type_error_and_nothing_is_recorded(history, url, value, named):
    history.set_metric_name_prefix("eval_")
    history.update_metric("acc", 0.5)
    history.flush()
    before = stored_data(url)

    for name in ("acc", "f1"):
        with pytest.raises(TypeError) as raised:
            history.update_metric(name, value)
        assert f"'eval_{name}'" in str(raised.value) and named in str(raised.value)
    history.flush()

    assert history.get_metric_names() == {"eval_acc"}
    assert history.get_metric_values("eval_acc") == [0.5]
    assert stored_data(url) == before


@pytest.mark.parametrize(
    "value, message",
    [
        ("bad\ud800", r"^The value for metric 'eval_m' is not valid Unicode text: '\\ud800' at position 4 "),
        ({"k\udc80": 1}, r"^The value for metric 'eval_m' is not valid Unicode text: '\\udc80' at position 3 "),
        (np.zeros(10_001), r"^Cannot record a numpy.ndarray of 10,001 elements for metric 'eval_m': a value may "
                           r"have at most 10,000 elements .* Log a summary \(its mean, max\) instead"),
        (torch.zeros(100, 101), r"^Cannot record a torch.Tensor of 10,100 elements for metric 'eval_m'"),
        ([0.0] * 10_001, r"^Cannot record a list of 10,001 elements for metric 'eval_m'"),
        ({"t": np.zeros(10_001)}, r"^Cannot record a numpy.ndarray of 10,001 elements for metric 'eval_m'"),
    ],
)
def test_a_value_no_database_can_store_or_too_large_is_a_value_error_and_nothing_is_recorded(history, url, value, message):
    history.set_metric_name_prefix("eval_")
    history.update_metric("acc", 0.5)
    history.flush()
    before = stored_data(url)

    with pytest.raises(ValueError, match=message):
        history.update_metric("m", value)
    history.flush()

    assert history.get_metric_names() == {"eval_acc"}
    assert stored_data(url) == before


def test_arrays_up_to_the_size_limit_are_stored_and_larger_ones_refused(history, url):
    history.update_metric("a", np.arange(10_000))
    with pytest.raises(ValueError, match="at most 10,000 elements"):
        history.update_metric("a", np.arange(10_001))
    history.flush()

    assert history.get_metric_values("a")[0].tolist() == list(range(10_000))
    assert [json.loads(text) for text, in query(url, "SELECT value_json FROM v_metrics")] == [list(range(10_000))]


# -- 4. names stored verbatim ------------------------------------------------------------------

ODD_NAMES = ["λoss/ünïcødé 🚀", "it's \"quoted\"", "'; DROP TABLE x; --", "", "a\nb\tc"]


@pytest.mark.parametrize("prefix", ["", "eval_", "'; DROP TABLE points; --"])
def test_metric_names_are_stored_verbatim(history, url, prefix):
    history.set_metric_name_prefix(prefix)

    for i, name in enumerate(ODD_NAMES):
        history.update_metric(name, float(i))
    history.flush()

    expected = {prefix + name: [float(i)] for i, name in enumerate(ODD_NAMES)}
    assert {n: history.get_metric_values(n) for n in history.get_metric_names()} == expected
    assert {metric: [value] for _, metric, _, _, value, _ in metric_rows(url)} == expected


@pytest.mark.parametrize("name", [1, None, b"loss", ("loss",)])
def test_a_non_str_metric_name_is_a_type_error(history, url, name):
    history.flush()
    before = stored_data(url)

    with pytest.raises(TypeError, match="A metric name must be a str"):
        history.update_metric(name, 1.0)
    history.flush()

    assert history.get_metric_names() == set()
    assert stored_data(url) == before


@pytest.mark.parametrize(
    "name, message",
    [
        ("bad\ud800", r"^The metric name is not valid Unicode text: '\\ud800' at position 3 \(in 'bad\\ud800'\) is a lone "
                      r"surrogate, which UTF-8 cannot encode and no database can store\. Remove it, or decode the "
                      r"bytes it came from with errors='replace'\.$"),
        ("x" * 501, r"^A metric name can be at most 500 characters long \(so that SQLite and PostgreSQL can index "
                    r"it\), not 501: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'\.\.\. Use a shorter metric name\.$"),
        ("a\x00b", r"^A metric name cannot contain a NUL character"),
    ],
)
def test_a_metric_name_no_database_can_store_is_a_value_error_and_nothing_is_recorded(history, url, name, message):
    history.update_metric("loss", 1.0)
    history.flush()
    before = stored_data(url)

    with pytest.raises(ValueError, match=message):
        history.update_metric(name, 1.0)
    history.flush()

    assert history.get_metric_names() == {"loss"}
    assert stored_data(url) == before


def test_a_metric_name_of_the_longest_length_is_stored_and_one_more_is_refused(history, url):
    name = "".join(chr(0x4E00 + i) for i in range(500))  # 1,500 bytes: PostgreSQL indexes it

    history.update_metric(name, 1.0)
    with pytest.raises(ValueError, match="at most 500 characters"):
        history.update_metric(name + "x", 1.0)
    history.flush()

    assert metric_rows(url) == [(1, name, 0, 1, 1.0, None)]


@pytest.mark.parametrize("run_name", ODD_NAMES[:3] + ["  spaced  "])
def test_run_and_experiment_names_are_stored_verbatim(url, run_name):
    with SQLRunHistory(url, experiment=run_name + "/exp", run_name=run_name) as h:
        h.update_metric("loss", 1.0)

    with SQLRunHistory(url, experiment=run_name + "/exp", run_name=run_name, resume="must") as again:
        values = again.get_metric_values("loss")

    assert query(url, "SELECT experiment, run_name FROM v_runs") == [(run_name + "/exp", run_name)]
    assert query(url, "SELECT experiment, run_name FROM v_metrics") == [(run_name + "/exp", run_name)]
    assert values == [1.0]


# -- 5. resume modes --------------------------------------------------------------------------


def test_resume_never_refuses_an_existing_name(url):
    SQLRunHistory(url, experiment="exp", run_name="run").close()
    before = dump(url)

    with pytest.raises(RunExistsError, match="resume='allow'") as raised:
        SQLRunHistory(url, experiment="exp", run_name="run", resume="never")

    assert "'run'" in str(raised.value) and "'exp'" in str(raised.value)
    assert dump(url) == before


def test_resume_must_refuses_a_missing_name(url):
    with pytest.raises(RunNotFoundError, match="There is no run 'ghost' in experiment 'exp'"):
        SQLRunHistory(url, experiment="exp", run_name="ghost", resume="must")

    assert query(url, "SELECT * FROM v_runs") == []


def test_resume_allow_creates_then_continues(url):
    with SQLRunHistory(url, run_name="run", resume="allow") as first:
        first.update_metric("loss", 1.0)
        first._increment_epoch()

    with SQLRunHistory(url, run_name="run", resume="allow") as second:
        second.update_metric("loss", 0.5)
        continued = (second.run_id, second.current_epoch, second.get_metric_values("loss"))

    assert continued == (first.run_id, 2, [1.0, 0.5])
    assert query(url, "SELECT run_name, status, num_stages FROM v_runs") == [("run", "finished", 1)]
    assert metric_rows(url) == [(1, "loss", 0, 1, 1.0, None), (1, "loss", 1, 2, 0.5, None)]


def test_generated_run_names_are_unique(url):
    with SQLRunHistory(url) as a, SQLRunHistory(url) as b:
        names = [a.run_name, b.run_name]

    assert names[0] != names[1]
    assert all(re.fullmatch(r"run-\d{8}-\d{6}-[0-9a-f]{6}", name) for name in names)
    assert sorted(n for (n,) in query(url, "SELECT run_name FROM v_runs")) == sorted(names)


def test_run_names_are_unique_per_experiment_only(url):
    SQLRunHistory(url, experiment="a", run_name="run").close()
    SQLRunHistory(url, experiment="b", run_name="run").close()

    with pytest.raises(RunExistsError):
        SQLRunHistory(url, experiment="a", run_name="run")

    assert query(url, "SELECT experiment, run_name FROM v_runs ORDER BY run_id") == [("a", "run"), ("b", "run")]


def test_a_run_open_in_this_process_cannot_be_opened_again(history, url):
    # two open writers of one run would write the same seq numbers, and the second would retry
    # its rejected points forever; the pid check alone cannot see this (it is our own pid)
    history.update_metric("loss", 1.0)
    history.flush()
    before = stored_data(url)

    with pytest.raises(RunInUseError, match="already open in this process"):
        SQLRunHistory(url, experiment="exp", run_name="run", resume="allow")

    assert stored_data(url) == before


def test_a_closed_run_can_be_reopened_in_the_same_process(url):
    SQLRunHistory(url, run_name="run").close()

    with SQLRunHistory(url, run_name="run", resume="must") as again:
        assert again.run_name == "run"


# -- 6. reset starts a new stage ------------------------------------------------------------


def test_reset_starts_a_new_stage_and_keeps_rows(history, url):
    history.set_metric_name_prefix("train_")
    history.update_metric("loss", 1.0)
    history._increment_epoch()
    history.update_metric("loss", 0.8)

    history.reset()
    history.update_metric("loss", 0.7)
    history.flush()

    assert (history.current_epoch, history.metric_name_prefix) == (1, "train_")
    assert history.get_metric_values("train_loss") == [0.7]
    assert metric_rows(url) == [
        (1, "train_loss", 0, 1, 1.0, None),
        (1, "train_loss", 1, 2, 0.8, None),
        (2, "train_loss", 0, 1, 0.7, None),
    ]
    assert query(url, "SELECT num_stages, current_epoch FROM v_runs") == [(2, 1)]


def test_reset_of_a_stage_without_points_reuses_it(history, url):
    history._increment_epoch()

    history.reset()
    history.reset()
    history.update_metric("loss", 1.0)
    history.flush()

    assert query(url, "SELECT num_stages, current_epoch FROM v_runs") == [(1, 1)]
    assert metric_rows(url) == [(1, "loss", 0, 1, 1.0, None)]


def test_reset_after_a_new_stage_without_points_reuses_that_stage(history, url):
    history.update_metric("loss", 1.0)

    history.reset()
    history.reset()
    history.flush()

    assert query(url, "SELECT num_stages FROM v_runs") == [(2,)]


def test_resume_continues_the_latest_stage(url):
    with SQLRunHistory(url, run_name="run") as h:
        h.update_metric("loss", 1.0)
        h.reset()
        h.update_metric("acc", 0.5)
        h._increment_epoch()

    with SQLRunHistory(url, run_name="run", resume="must") as resumed:
        assert history_of(resumed) == {
            "names": ["acc"], "values": {"acc": [0.5]}, "latest": {"acc": 0.5}, "epoch": 2,
        }


# -- 7. _set_epoch rewinds ------------------------------------------------------------------


def record_three_epochs(h: SQLRunHistory) -> None:
    for epoch in (1, 2, 3):
        h.update_metric("loss", float(epoch))
        h.update_metric("lr", 0.1 * epoch)
        if epoch < 3:
            h._increment_epoch()


def test_set_epoch_supersedes_points_of_that_epoch_and_later(history, url):
    record_three_epochs(history)

    history._set_epoch(2)
    history.update_metric("loss", 2.5)
    history.flush()

    assert (history.current_epoch, history.get_metric_values("loss")) == (2, [1.0, 2.5])
    assert history.get_metric_values("lr") == [0.1]
    assert metric_rows(url) == [
        (1, "loss", 0, 1, 1.0, None), (1, "loss", 1, 2, 2.5, None), (1, "lr", 0, 1, 0.1, None),
    ]
    assert query(url, "SELECT m.name, p.seq, p.rev, p.epoch, p.value FROM points p "
                      "JOIN series s ON s.id = p.series_id JOIN metrics m ON m.id = s.metric_id "
                      "ORDER BY m.name, p.rev, p.seq") == [
        ("loss", 0, 0, 1, 1.0), ("loss", 1, 0, 2, 2.5), ("loss", 1, 1, 2, 2.0), ("loss", 2, 1, 3, 3.0),
        ("lr", 0, 0, 1, 0.1), ("lr", 1, 1, 2, 0.2), ("lr", 2, 1, 3, 0.30000000000000004),
    ]
    events = query(url, "SELECT stage, epoch, kind, payload FROM v_events WHERE kind = 'rewind'")
    assert [(s, e, k, json.loads(p)) for s, e, k, p in events] == [
        (1, 2, "rewind", {"to_epoch": 2, "superseded_points": 4, "rev": 1}),
    ]
    assert query(url, "SELECT current_epoch FROM v_runs") == [(2,)]


def test_set_epoch_on_a_resumed_run_rewinds_the_stored_history(url):
    with SQLRunHistory(url, run_name="run") as h:
        record_three_epochs(h)

    with SQLRunHistory(url, run_name="run", resume="must") as resumed:
        resumed._set_epoch(1)
        resumed.update_metric("loss", 0.5)
        state = history_of(resumed)

    assert state == {"names": ["loss"], "values": {"loss": [0.5]}, "latest": {"loss": 0.5}, "epoch": 1}
    assert metric_rows(url) == [(1, "loss", 0, 1, 0.5, None)]
    assert query(url, "SELECT COUNT(*) FROM points WHERE rev > 0") == [(6,)]


def test_set_epoch_rewinds_where_in_memory_run_history_keeps_stale_points(history):
    # a documented difference: train(resume_from=...) re-runs the saved epoch, so its old
    # points must not survive; InMemoryRunHistory only moves the epoch counter
    reference = InMemoryRunHistory()
    for h in (reference, history):
        h.update_metric("loss", 1.0)
        h._increment_epoch()
        h.update_metric("loss", 2.0)

        h._set_epoch(2)

    assert (reference.current_epoch, reference.get_metric_values("loss")) == (2, [1.0, 2.0])
    assert (history.current_epoch, history.get_metric_values("loss")) == (2, [1.0])


def test_set_epoch_to_zero_rewinds_everything_as_the_trainer_may_ask(history):
    # the trainer calls _set_epoch(metadata.get("current_epoch", 0)) on resume
    history.update_metric("loss", 1.0)

    history._set_epoch(0)

    assert (history.current_epoch, history.get_metric_names()) == (0, set())


def test_set_epoch_below_zero_is_a_value_error(history):
    with pytest.raises(ValueError, match="non-negative int, not -1"):
        history._set_epoch(-1)

    assert history.current_epoch == 1


@pytest.mark.parametrize("epoch", [np.int64(2), np.uint8(2), torch.tensor(2), torch.tensor(2, dtype=torch.int32)])
def test_set_epoch_takes_any_integral_number_as_a_checkpoint_may_hold_one(history, url, epoch):
    record_three_epochs(history)

    history._set_epoch(epoch)

    assert type(history.current_epoch) is int
    assert (history.current_epoch, history.get_metric_values("loss")) == (2, [1.0])
    assert query(url, "SELECT current_epoch FROM v_runs") == [(2,)]


@pytest.mark.parametrize(
    "epoch", ["3", 2.0, True, None, np.bool_(True), np.float64(2.0), torch.tensor(2.0), torch.tensor(True), torch.tensor([2])],
)
def test_set_epoch_to_something_else_than_an_int_is_a_type_error(history, epoch):
    with pytest.raises(TypeError, match="The epoch must be a non-negative int, not "):
        history._set_epoch(epoch)

    assert history.current_epoch == 1


# -- 8. delete_metric -------------------------------------------------------------------------


def test_delete_metric_flags_rows_and_a_new_series_starts_at_zero(history, url):
    history.update_metric("loss", 1.0)
    history.update_metric("loss", 2.0)

    history.delete_metric("loss")
    history.flush()
    deleted = (history.get_metric_names(), metric_rows(url))
    history.update_metric("loss", 3.0)
    history.flush()

    assert deleted == (set(), [])
    assert history.get_metric_values("loss") == [3.0]
    assert metric_rows(url) == [(1, "loss", 0, 1, 3.0, None)]
    flags = query(url, "SELECT s.deleted, p.seq, p.value FROM points p JOIN series s ON s.id = p.series_id "
                       "ORDER BY s.id, p.seq")
    assert same(flags, [(true(url), 0, 1.0), (true(url), 1, 2.0), (false(url), 0, 3.0)])


def test_a_deleted_metric_stays_deleted_after_resume(url):
    with SQLRunHistory(url, run_name="run") as h:
        h.update_metric("loss", 1.0)
        h.update_metric("acc", 0.5)
        h.delete_metric("loss")

    with SQLRunHistory(url, run_name="run", resume="must") as resumed:
        assert resumed.get_metric_names() == {"acc"}


# -- 9. bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"experiment": 1}, TypeError, "experiment must be a non-empty str"),
        ({"experiment": ""}, TypeError, "experiment must be a non-empty str"),
        ({"run_name": 5}, TypeError, "run_name must be a non-empty str or None"),
        ({"run_name": ""}, TypeError, "run_name must be a non-empty str or None"),
        ({"resume": "sometimes"}, ValueError, "resume must be one of 'never', 'allow', 'must'"),
        ({"resume": True}, ValueError, "resume must be one of"),
        ({"tags": ["a"]}, TypeError, "tags must be a dict, not list"),
        ({"tags": {"a": object()}}, TypeError, "tags must be JSON-serialisable"),
        ({"tags": {"a": "\ud800"}}, ValueError, r"^The text of the tags is not valid Unicode text: '\\ud800' at position 7 "),
        ({"run_name": "r\ud800"}, ValueError, r"^The run_name is not valid Unicode text: '\\ud800' at position 1 "),
        ({"experiment": "e\udfff"}, ValueError, r"^The experiment is not valid Unicode text: '\\udfff' at position 1 "),
        ({"run_name": "r" * 501}, ValueError, r"^A run_name can be at most 500 characters long"),
        ({"experiment": "e" * 501}, ValueError, r"^An experiment can be at most 500 characters long"),
        ({"flush_interval": 0}, ValueError, r"flush_interval must be a number of seconds in \(0, 60\]"),
        ({"flush_interval": 61}, ValueError, "flush_interval must be"),
        ({"flush_interval": "1"}, ValueError, "flush_interval must be"),
        ({"flush_interval": math.nan}, ValueError, "flush_interval must be"),
        ({"term_timeout": -1}, ValueError, r"term_timeout must be a number of seconds in \[0, 3600\], not -1\."),
        ({"term_timeout": "5"}, ValueError, "term_timeout must be"),
        ({"term_timeout": math.nan}, ValueError, "term_timeout must be"),
        ({"term_timeout": True}, ValueError, "term_timeout must be"),
    ],
)
def test_bad_arguments_are_refused_and_change_nothing(url, kwargs, error, message):
    with SQLRunHistory(url, run_name="kept") as h:
        h.update_metric("loss", 1.0)
    before = dump(url)

    with pytest.raises(error, match=message):
        SQLRunHistory(url, **{"run_name": "new", **kwargs})

    assert dump(url) == before


def test_a_bad_term_timeout_in_the_environment_is_refused_naming_it(url, monkeypatch):
    monkeypatch.setenv("RUNHISTORY_SQL_TERM_TIMEOUT", "5s")

    with pytest.raises(InvalidArgumentError) as raised:
        SQLRunHistory(url, run_name="new")

    assert str(raised.value) == (
        "$RUNHISTORY_SQL_TERM_TIMEOUT must be a number of seconds in [0, 3600], not '5s'. "
        "Fix or unset it, or pass term_timeout=."
    )
    assert SQLRunHistory(url, run_name="new", term_timeout=1).close() is None  # the argument wins


def test_the_sigterm_bound_is_the_argument_else_the_environment_else_5_s(monkeypatch):
    from runhistory_sql.write.arguments import resolve_term_timeout

    assert resolve_term_timeout(None) == 5.0
    monkeypatch.setenv("RUNHISTORY_SQL_TERM_TIMEOUT", " 2.5 ")
    assert resolve_term_timeout(None) == 2.5
    assert resolve_term_timeout(0) == 0.0
    monkeypatch.setenv("RUNHISTORY_SQL_TERM_TIMEOUT", "")
    assert resolve_term_timeout(None) == 5.0


def test_a_missing_directory_says_to_create_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'nope' / 'runs.db'}"

    with pytest.raises(DatabaseURLError, match=re.escape(f"mkdir -p {tmp_path / 'nope'}")):
        SQLRunHistory(url)

    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url, message",
    [
        ("foo://x", "Unknown database dialect 'foo'"),
        ("mysql://u@h/db", "supports SQLite and PostgreSQL, not mysql"),
        ("not a url", "Could not parse database URL 'not a url'"),
        ("", "is not a URL"),
        ("sqlite://", "in-memory SQLite database"),
        ("sqlite:///:memory:", "in-memory SQLite database"),
    ],
)
def test_an_unusable_url_is_refused(tmp_path, monkeypatch, url, message):
    monkeypatch.chdir(tmp_path)

    with pytest.raises(DatabaseURLError, match=message):
        SQLRunHistory(url)

    assert list(tmp_path.iterdir()) == []


def test_url_comes_from_the_environment(url, monkeypatch):
    monkeypatch.setenv("RUNHISTORY_SQL_URL", url)

    with SQLRunHistory(run_name="from-env") as h:
        used = h.url

    assert used == url
    assert query(url, "SELECT run_name FROM v_runs") == [("from-env",)]


def test_url_defaults_to_a_file_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    with SQLRunHistory(run_name="default") as h:
        url = h.url

    assert url == "sqlite:///runhistory.db"
    assert query(f"sqlite:///{tmp_path / 'runhistory.db'}", "SELECT run_name FROM v_runs") == [("default",)]


def test_an_explicit_url_beats_the_environment(url, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNHISTORY_SQL_URL", f"sqlite:///{tmp_path / 'env.db'}")

    with SQLRunHistory(url, run_name="explicit"):
        pass

    assert query(url, "SELECT run_name FROM v_runs") == [("explicit",)]
    assert not (tmp_path / "env.db").exists()


# -- 10. a rank that is not world-process-zero never writes -------------------------------------


@pytest.fixture
def no_accelerate_state() -> Iterator[None]:
    # rank.py prefers an initialised PartialState over $RANK; a Trainer test run earlier in the
    # same session would have initialised it, so hide it for the duration of the test
    from accelerate.state import PartialState

    saved = dict(PartialState._shared_state)
    PartialState._shared_state.clear()
    yield
    PartialState._shared_state.clear()
    PartialState._shared_state.update(saved)


def test_a_non_writer_rank_reads_its_mirror_and_never_writes(url, db_path, monkeypatch, no_accelerate_state):
    with SQLRunHistory(url, run_name="run") as h:
        h.update_metric("loss", 1.0)
        h._increment_epoch()
    # on SQLite, not even the file's bytes may change (no heartbeat, no "resumed" event)
    before, file_bytes = dump(url), None if is_postgres(url) else db_path.read_bytes()
    monkeypatch.setenv("RANK", "1")

    h = SQLRunHistory(url, run_name="run", resume="must")
    try:
        resumed = history_of(h)
        h.update_metric("loss", 0.5)
        h._increment_epoch()
        h.set_metric_name_prefix("eval_")
        h.update_metric("acc", 0.9)
        h.delete_metric("loss")
        h._set_epoch(2)
        h.reset()
        h.update_metric("acc", 0.95)
        assert h.flush() is True
        after = history_of(h)
    finally:
        h.close()

    assert resumed == {"names": ["loss"], "values": {"loss": [1.0]}, "latest": {"loss": 1.0}, "epoch": 2}
    assert after == {"names": ["eval_acc"], "values": {"eval_acc": [0.95]}, "latest": {"eval_acc": 0.95}, "epoch": 1}
    assert (h.is_writer, h.write_transactions) == (False, 0)
    assert dump(url) == before
    if not is_postgres(url):
        assert db_path.read_bytes() == file_bytes


def test_a_non_writer_rank_with_a_new_run_writes_nothing(url, monkeypatch, no_accelerate_state):
    SQLRunHistory(url, run_name="other").close()
    before = dump(url)
    monkeypatch.setenv("RANK", "1")

    with SQLRunHistory(url, run_name="run") as h:
        h.update_metric("loss", 1.0)
        h._increment_epoch()

    assert (h.is_writer, h.write_transactions, h.get_metric_values("loss")) == (False, 0, [1.0])
    assert dump(url) == before


# -- closing ----------------------------------------------------------------------------------


def test_close_commits_what_is_pending_and_marks_the_run_finished(url):
    h = SQLRunHistory(url, run_name="run", flush_interval=60)
    h.update_metric("loss", 1.0)

    h.close()

    assert metric_rows(url) == [(1, "loss", 0, 1, 1.0, None)]
    assert same(query(url, "SELECT status, ended_at IS NOT NULL FROM v_runs"), [("finished", true(url))])


def test_an_exception_in_the_with_block_marks_the_run_failed(url):
    with pytest.raises(RuntimeError):
        with SQLRunHistory(url, run_name="run"):
            raise RuntimeError("boom")

    assert query(url, "SELECT status FROM v_runs") == [("failed",)]


def test_an_exception_whose_message_no_database_can_store_still_marks_the_run_failed(url):
    with pytest.raises(FileNotFoundError):
        with SQLRunHistory(url, run_name="run"):
            raise FileNotFoundError("no file b'\\xff' decoded as 'x\udcff.pt'")

    (payload,) = query(url, "SELECT payload FROM v_events WHERE kind = 'exception'")[0]
    assert query(url, "SELECT status FROM v_runs") == [("failed",)]
    assert json.loads(payload)["message"] == "no file b'\\xff' decoded as 'x\\udcff.pt'"


def test_flush_after_close_returns_at_once(history):
    history.update_metric("loss", 1.0)
    history.close()

    assert history.flush() is True
    history.close()  # a second close is harmless


def test_points_recorded_after_close_are_refused_not_lost_silently(history, url):
    history.close()

    with pytest.raises(RunHistorySQLError, match="is closed"):
        history.update_metric("loss", 1.0)

    assert history.get_metric_names() == set()
    assert history.flush(timeout=5) is True
    assert metric_rows(url) == []


def test_an_unreachable_server_is_a_clear_error_without_the_password():
    with pytest.raises(DatabaseUnavailableError) as raised:
        SQLRunHistory("postgresql://trainer:s3cret@127.0.0.1:1/runs")

    message = str(raised.value)
    assert message.startswith("Cannot use database postgresql+psycopg://trainer:***@127.0.0.1:1/runs: ")
    assert message.endswith("Check that the server is running and the URL and credentials are right.")
    assert "s3cret" not in message


def test_summaries_rank_runs_by_their_best_value_in_sql_and_through_the_store(url):
    from runhistory_sql import RunStore

    for name, losses in (("a", [3.0, 1.0, 2.0]), ("b", [0.5, float("nan"), 4.0]), ("c", [2.5])):
        with SQLRunHistory(url, run_name=name) as h:
            for loss in losses:
                h.update_metric("loss", loss)
                h._increment_epoch()
    with RunStore(url) as store:
        best = store.best("loss", limit=2)
        highest = store.best("loss", mode="max", limit=1)

    in_sql = query(url, "SELECT run_name, MIN(min_value) FROM v_summaries WHERE metric = 'loss' GROUP BY run_name ORDER BY 2 LIMIT 2")
    assert best == [("default", "b", 0.5), ("default", "a", 1.0)]
    assert in_sql == [("b", 0.5), ("a", 1.0)]
    assert highest == [("default", "b", 4.0)]
    assert query(url, "SELECT run_name, n_points FROM v_summaries ORDER BY run_name") == [("a", 3), ("b", 3), ("c", 1)]
