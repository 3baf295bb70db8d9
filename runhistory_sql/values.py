"""How a metric value is stored: a float column, a flag for what SQLite cannot hold, or JSON.

``encode`` returns ``(value, special, value_json)``; ``decode`` turns a stored row back into the
Python value. Numbers (``int``, ``float``, ``bool``, numpy scalars, 0-dim tensors) become floats
and NaN, +inf, -inf and -0.0 survive exactly; an ``int`` beyond a float's range, ``str``,
``dict``, ``list``, ``None`` and multi-element tensors or arrays become JSON.
"""
from __future__ import annotations

import json
import math
from typing import Any

from .schema import SPECIAL_NAN, SPECIAL_NEG_ZERO

Encoded = tuple[float | None, int | None, str | None]

_NAN: Encoded = (None, SPECIAL_NAN, None)
_NEG_ZERO: Encoded = (0.0, SPECIAL_NEG_ZERO, None)
_JSON_TYPES = (str, dict, list, tuple, type(None))


def encode_float(x: float) -> Encoded:
    """Encode a Python float (the hot path: most metrics are floats)."""
    if x != x:
        return _NAN
    if x == 0.0 and math.copysign(1.0, x) < 0:
        return _NEG_ZERO
    return (x, None, None)


def _encode_int(value: int, metric_name: str) -> Encoded:
    try:
        return (float(value), None, None)
    except OverflowError:  # beyond a float's range: keep it exact as JSON rather than fail
        return (None, None, _dumps(value, metric_name))


def _tensor_like(value: Any) -> Any:
    """Return ``value.tolist()`` for a tensor or numpy value, else a sentinel of ``None``."""
    module = type(value).__module__
    if module.startswith("torch") or module.startswith("numpy"):
        tolist = getattr(value, "tolist", None)
        if tolist is not None:
            return tolist()
    return _NOT_TENSOR


_NOT_TENSOR = object()


def encode(value: Any, metric_name: str) -> Encoded:
    """Encode ``value`` for storage.

    :param value: the value given to ``update_metric``
    :param metric_name: the metric's name, for the error message
    :return: ``(value, special, value_json)``
    :raises TypeError: the value is neither a number, JSON-like, nor a tensor/array
    """
    kind = type(value)
    if kind is float:
        return encode_float(value)
    if kind is int or kind is bool:
        return _encode_int(value, metric_name)
    if isinstance(value, _JSON_TYPES):
        return (None, None, _dumps(value, metric_name))
    plain = _tensor_like(value)
    if plain is _NOT_TENSOR:
        raise TypeError(
            f"Cannot record a value of type {kind.__module__}.{kind.__qualname__} for metric "
            f"{metric_name!r}: use a number, a 0-dim tensor, a str, dict, list or None."
        )
    if isinstance(plain, (bool, int, float)):
        return encode_float(float(plain))
    return (None, None, _dumps(plain, metric_name))


def _dumps(value: Any, metric_name: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"Cannot record the value for metric {metric_name!r} as JSON: {e}. "
            "Use numbers, str, dict, list or None inside it."
        ) from e


def _json_default(obj: Any) -> Any:
    plain = _tensor_like(obj)
    if plain is _NOT_TENSOR:
        raise TypeError(f"{type(obj).__qualname__} is not JSON serializable")
    return plain


def decode(value: float | None, special: int | None, value_json: str | None) -> Any:
    """Turn a stored ``(value, special, value_json)`` back into a Python value."""
    if special is None:
        return value if value_json is None else json.loads(value_json)
    return math.nan if special == SPECIAL_NAN else -0.0
