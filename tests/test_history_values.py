"""Values and names through a real database (SQLite and PostgreSQL): what goes in reads back
exactly, NaN, infinities and -0.0 included; names are stored verbatim."""
from __future__ import annotations


import json
import math

import numpy as np
import pytest
import torch

from helpers import is_postgres, query, same
from runhistory_sql import (
    SQLRunHistory,
)

from history_support import metric_rows, stored_data


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


