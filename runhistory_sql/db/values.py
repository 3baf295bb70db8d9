"""How a metric value is stored: a float column, a flag for what SQLite cannot hold, or JSON.

``encode`` returns ``(value, special, value_json)``; ``decode`` turns a stored row back into the
Python value. Numbers (``int``, ``float``, ``bool``, numpy scalars, 0-dim tensors) become floats
and NaN, +inf, -inf and -0.0 survive exactly; an ``int`` beyond a float's range, ``str``,
``dict``, ``list``, ``None`` and multi-element tensors or arrays (up to :data:`MAX_ELEMENTS`)
become JSON. Event payloads follow the same rule (:func:`event_json`).
"""
from __future__ import annotations

import functools
import json
import math
from typing import Any

from ..errors import InvalidArgumentError
from .schema import SPECIAL_NAN, SPECIAL_NEG_ZERO

Encoded = tuple[float | None, int | None, str | None]

_NAN: Encoded = (None, SPECIAL_NAN, None)
_NEG_ZERO: Encoded = (0.0, SPECIAL_NEG_ZERO, None)
_JSON_TYPES = (str, dict, list, tuple, type(None))
#: The most elements a list, tuple, tensor or array value may have: encoding a larger one takes
#: the training loop's time (1,000,000 elements about 300 ms). Log a summary instead.
MAX_ELEMENTS = 10_000


def encode_float(x: float) -> Encoded:
    """Encode a Python float (the hot path: most metrics are floats)."""
    if x != x:
        return _NAN
    if x == 0.0 and math.copysign(1.0, x) < 0:
        return _NEG_ZERO
    return (x, None, None)


# The same decision, made on the three paths a point can take. They must agree byte for byte
# (tests/test_encoding.py): a value is stored the same whichever path it took.

def queued_raw(x: Any) -> bool:
    """Whether ``update_metric`` queues ``x`` as it is, to be encoded by the writer: a non-zero
    float (NaN and infinities included). Zeros are encoded at once: -0.0 needs a flag.

    ``update_metric`` inlines this test (a call would cost the training loop a sixth more).
    """
    return type(x) is float and bool(x)


def stored_plain(x: Any) -> bool:
    """Whether the float column alone holds ``x``: ``encode_float(x) == (x, None, None)``."""
    return type(x) is float and x == x and bool(x or math.copysign(1.0, x) > 0)


def sqlite_columns(param: str) -> str:
    """The SQLite SQL of ``value, special, value_json`` for a queued raw float bound as ``param``
    (e.g. ``?5``), what :func:`encode_float` returns for it: SQLite binds NaN as NULL, which is
    what :data:`SPECIAL_NAN` means; a raw float is never a zero (see :func:`queued_raw`)."""
    return f"{param}, CASE WHEN {param} IS NULL THEN {SPECIAL_NAN} END, NULL"


def _encode_int(value: int, metric_name: str) -> Encoded:
    try:
        return (float(value), None, None)
    except OverflowError:  # beyond a float's range: keep it exact as JSON rather than fail
        return (None, None, _dumps(value, metric_name))


def _tensor_like(value: Any, what: str) -> Any:
    """Return ``value.tolist()`` for a tensor or numpy value, else the sentinel ``_NOT_TENSOR``.

    :param what: the thing the value is for (``metric 'loss'``), for the error messages
    :raises TypeError: the value cannot be read (a tensor on the meta device) or has no plain
        Python equivalent (``numpy.longdouble``)
    :raises InvalidArgumentError: it has more than :data:`MAX_ELEMENTS` elements
    """
    module = type(value).__module__
    if not (module.startswith("torch") or module.startswith("numpy")):
        return _NOT_TENSOR
    tolist = getattr(value, "tolist", None)
    if tolist is None:
        return _NOT_TENSOR
    numel = getattr(value, "numel", None)
    size = numel() if callable(numel) else getattr(value, "size", 1)
    if isinstance(size, int) and size > MAX_ELEMENTS:
        raise _too_large(f"a {_type_name(value)} of {size:,} elements", what)
    try:
        plain = tolist()
    except Exception as e:  # noqa: BLE001 - e.g. NotImplementedError of a meta tensor
        raise _Unreadable(
            f"Cannot record the {_type_name(value)} for {what}: reading it failed ({e}). "
            "Record a number or a tensor that holds data (not one on the meta device)."
        ) from e
    if not isinstance(plain, _PLAIN):  # numpy.longdouble.tolist() is itself, for one
        raise _Unreadable(
            f"Cannot record a value of type {_type_name(value)} for {what}: it has no plain "
            "Python equivalent. Convert it first, e.g. with float()."
        )
    return plain


class _Unreadable(TypeError):
    """A tensor or numpy value that cannot be stored: its message is final, wherever it was."""


_NOT_TENSOR = object()
_PLAIN = (bool, int, float, str, list, tuple, dict, type(None))


def _type_name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _too_large(shown: str, what: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"Cannot record {shown} for {what}: a value may have at most {MAX_ELEMENTS:,} elements "
        "(encoding a larger one would hold up the training loop). Log a summary (its mean, max) "
        "instead, or save the array to a file and log_event() its path."
    )


def encode(value: Any, metric_name: str) -> Encoded:
    """Encode ``value`` for storage.

    :param value: the value given to ``update_metric``
    :param metric_name: the metric's name, for the error message
    :return: ``(value, special, value_json)``
    :raises TypeError: the value is neither a number, JSON-like, nor a tensor/array
    :raises InvalidArgumentError: (a ``ValueError``) it has more than :data:`MAX_ELEMENTS`
        elements, or holds a string that is not valid Unicode (a lone surrogate)
    """
    kind = type(value)
    if kind is float:
        return encode_float(value)
    if kind is int or kind is bool:
        return _encode_int(value, metric_name)
    if isinstance(value, _JSON_TYPES):
        if isinstance(value, (list, tuple)) and len(value) > MAX_ELEMENTS:
            raise _too_large(f"a {kind.__qualname__} of {len(value):,} elements", f"metric {metric_name!r}")
        return (None, None, _dumps(value, metric_name))
    plain = _tensor_like(value, f"metric {metric_name!r}")
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
        text = json.dumps(value, ensure_ascii=False, default=functools.partial(_json_default, f"metric {metric_name!r}"))
    except (InvalidArgumentError, _Unreadable):
        raise
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"Cannot record the value for metric {metric_name!r} as JSON: {e}. "
            "Use numbers, str, dict, list or None inside it."
        ) from e
    check_unicode(f"value for metric {metric_name!r}", text)
    return text


def _json_default(what: str, obj: Any) -> Any:
    plain = _tensor_like(obj, what)
    if plain is _NOT_TENSOR:
        raise TypeError(f"Object of type {_type_name(obj)} is not JSON serializable")
    return plain


def check_unicode(what: str, text: str) -> None:
    """Refuse a string that UTF-8 cannot encode (a lone surrogate): no database can store it.

    :raises InvalidArgumentError: naming ``what``, the position and the fix
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        shown = text[max(0, e.start - 20):e.start + 20]
        raise InvalidArgumentError(
            f"The {what} is not valid Unicode text: {text[e.start]!r} at position {e.start} (in "
            f"{shown!r}) is a lone surrogate, which UTF-8 cannot encode and no database can store. "
            "Remove it, or decode the bytes it came from with errors='replace'."
        ) from None


def event_json(kind: str, payload: dict[str, Any]) -> str:
    """The JSON text of an event payload, by the rule of metric values (numbers, str, dict,
    list, None, tensors and numpy values); NaN and infinities as the strings ``"NaN"``,
    ``"Infinity"``, ``"-Infinity"``, so that the text is strict JSON.

    :raises TypeError: anything else inside it (naming the event), or a circular payload
    :raises InvalidArgumentError: an array of more than :data:`MAX_ELEMENTS`, or a lone surrogate
    """
    what = f"event {kind!r}"
    default = functools.partial(_json_default, what)
    try:
        try:
            text = json.dumps(payload, ensure_ascii=False, allow_nan=False, default=default)
        except ValueError as e:
            if isinstance(e, InvalidArgumentError) or "Circular" in str(e):
                raise
            text = json.dumps(_finite(payload, what), ensure_ascii=False, allow_nan=False, default=default)
    except (InvalidArgumentError, _Unreadable):
        raise
    except (TypeError, ValueError, RecursionError) as e:
        reason = "Circular reference detected" if isinstance(e, RecursionError) else str(e)
        raise TypeError(
            f"The payload of event {kind!r} cannot be stored as JSON: {reason}"
            + ("" if "Circular" in reason else ". Use numbers, str, dict, list, None or tensors inside it.")
        ) from e
    check_unicode(f"payload of event {kind!r}", text)
    return text


def _finite(obj: Any, what: str) -> Any:
    """``obj`` with its NaN and infinities as strings (tensors and numpy values converted)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {math.inf: "Infinity", -math.inf: "-Infinity"}.get(obj, "NaN")
    if isinstance(obj, dict):
        return {k: _finite(v, what) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v, what) for v in obj]
    plain = _tensor_like(obj, what)
    return obj if plain is _NOT_TENSOR else _finite(plain, what)


def decode(value: float | None, special: int | None, value_json: str | None) -> Any:
    """Turn a stored ``(value, special, value_json)`` back into a Python value."""
    if special is None:
        return value if value_json is None else json.loads(value_json)
    return math.nan if special == SPECIAL_NAN else -0.0
