"""How metric values are encoded for storage and decoded again (no database involved)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from runhistory_sql.db.schema import SPECIAL_NAN, SPECIAL_NEG_ZERO
from runhistory_sql.db.values import decode, encode


@pytest.mark.parametrize(
    "value, stored",
    [
        (1.5, (1.5, None, None)),
        (0.0, (0.0, None, None)),
        (-0.0, (0.0, SPECIAL_NEG_ZERO, None)),
        (math.nan, (None, SPECIAL_NAN, None)),
        (math.inf, (math.inf, None, None)),
        (-math.inf, (-math.inf, None, None)),
        (3, (3.0, None, None)),
        (True, (1.0, None, None)),
        (np.float64(0.25), (0.25, None, None)),
        (np.int64(7), (7.0, None, None)),
        (np.bool_(False), (0.0, None, None)),
        (torch.tensor(2.5), (2.5, None, None)),
        (torch.tensor(-0.0), (0.0, SPECIAL_NEG_ZERO, None)),
        (torch.tensor(float("nan")), (None, SPECIAL_NAN, None)),
        ("best", (None, None, '"best"')),
        (None, (None, None, "null")),
        ({"f1": 0.5, "label": "ü"}, (None, None, '{"f1": 0.5, "label": "ü"}')),
        ([1, 2.5], (None, None, "[1, 2.5]")),
        ((1, 2), (None, None, "[1, 2]")),
        (torch.tensor([1.0, 2.0]), (None, None, "[1.0, 2.0]")),
        (np.array([[1, 2], [3, 4]]), (None, None, "[[1, 2], [3, 4]]")),
        ({"t": torch.tensor([0.5])}, (None, None, '{"t": [0.5]}')),
        (10**400, (None, None, "1" + "0" * 400)),
    ],
)
def test_can_encode(value, stored):
    assert encode(value, "m") == stored


@pytest.mark.parametrize(
    "value, decoded",
    [
        (-0.0, -0.0),
        (math.inf, math.inf),
        (np.float32(0.1), float(np.float32(0.1))),
        ({"a": [1, None]}, {"a": [1, None]}),
        ((1, 2), [1, 2]),
        (10**400, 10**400),
        ("", ""),
    ],
)
def test_can_decode_what_was_encoded(value, decoded):
    result = decode(*encode(value, "m"))

    assert result == decoded
    assert type(result) is type(decoded)


def test_negative_zero_decodes_with_its_sign():
    assert math.copysign(1.0, decode(*encode(-0.0, "m"))) == -1.0


def test_nan_decodes_to_nan():
    assert math.isnan(decode(*encode(math.nan, "m")))


@pytest.mark.parametrize(
    "value, named",
    [
        (object(), "builtins.object"),
        ({1, 2}, "builtins.set"),
        ({"a": object()}, "object"),
        ([1, {2}], "set"),
        (b"bytes", "builtins.bytes"),
    ],
)
def test_unsupported_value_is_a_type_error_naming_metric_and_type(value, named):
    with pytest.raises(TypeError) as raised:
        encode(value, "eval/acc")

    assert "'eval/acc'" in str(raised.value)
    assert named in str(raised.value)


def test_circular_value_is_a_type_error():
    circular: list = []
    circular.append(circular)

    with pytest.raises(TypeError, match="'loop'"):
        encode(circular, "loop")


@pytest.mark.parametrize(
    "value, message",
    [
        (np.longdouble(1.5), r"^Cannot record a value of type numpy\.longdouble for metric 'm': it has no plain "
                             r"Python equivalent\. Convert it first, e\.g\. with float\(\)\.$"),
        (np.clongdouble(1), r"^Cannot record a value of type numpy\.clongdouble for metric 'm'"),
        ([np.longdouble(1.5)], r"^Cannot record a value of type numpy\.longdouble for metric 'm'"),
        (torch.tensor(1.0, device="meta"), r"^Cannot record the torch\.Tensor for metric 'm': reading it failed "
                                           r"\(Cannot copy out of meta tensor; no data!\)\. Record a number or a "
                                           r"tensor that holds data \(not one on the meta device\)\.$"),
    ],
)
def test_a_value_that_cannot_be_read_as_a_plain_value_is_a_type_error(value, message):
    with pytest.raises(TypeError, match=message):
        encode(value, "m")


@pytest.mark.parametrize(
    "value, shown",
    [
        (np.zeros(10_001), "a numpy.ndarray of 10,001 elements"),
        (torch.zeros(10_001), "a torch.Tensor of 10,001 elements"),
        ([1] * 10_001, "a list of 10,001 elements"),
        ((1,) * 10_001, "a tuple of 10,001 elements"),
        ([torch.zeros(20_000)], "a torch.Tensor of 20,000 elements"),
    ],
)
def test_a_value_of_more_than_ten_thousand_elements_is_refused(value, shown):
    with pytest.raises(ValueError) as raised:
        encode(value, "m")

    assert str(raised.value) == (
        f"Cannot record {shown} for metric 'm': a value may have at most 10,000 elements (encoding a "
        "larger one would hold up the training loop). Log a summary (its mean, max) instead, or save "
        "the array to a file and log_event() its path."
    )


def test_a_value_of_ten_thousand_elements_is_encoded_and_one_more_is_not():
    assert encode(np.ones(10_000, dtype=np.int64), "m") == (None, None, "[" + ", ".join(["1"] * 10_000) + "]")
    with pytest.raises(ValueError, match="at most 10,000 elements"):
        encode(np.ones(10_001, dtype=np.int64), "m")


@pytest.mark.parametrize("value", ["\ud800", ["ok", "x\udfff"], {"\udc80": 1}])
def test_a_string_utf8_cannot_encode_is_a_value_error(value):
    with pytest.raises(ValueError, match=r"^The value for metric 'm' is not valid Unicode text: .* is a lone surrogate"):
        encode(value, "m")

