"""How metric values are encoded for storage and decoded again (no database involved)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from runhistory_sql.schema import SPECIAL_NAN, SPECIAL_NEG_ZERO
from runhistory_sql.values import decode, encode


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
