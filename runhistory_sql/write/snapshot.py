"""JSON-safe snapshots of trainer objects, which never fail.

``TrainerRunConfig.to_dict()`` raises without an eval set and mutates the live dataloader kwargs,
and ``dataclasses.asdict`` deep-copies every leaf (a ``torch.Generator`` cannot be copied), so a
config is read field by field and each value converted here.
"""
from __future__ import annotations

import dataclasses
import json
import functools
import inspect
import math
from typing import Any

_MAX_DEPTH = 8


def qualified_name(obj: Any) -> str:
    """Return ``module.QualName`` of a callable or class, e.g. ``torch.utils.data.default_collate``."""
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__qualname__
    return f"{module}.{name}"


def type_name(obj: Any) -> str:
    """Return ``<module.Type>`` for an object stored by its type only."""
    return f"<{qualified_name(type(obj))}>"


def jsonable(obj: Any, _depth: int = 0) -> Any:
    """Convert ``obj`` to plain JSON types.

    Numbers, strings and ``None`` pass through (non-finite floats become the strings ``"NaN"``,
    ``"Infinity"``, ``"-Infinity"``, which strict JSON allows); containers are converted
    recursively (sets to sorted lists); tensors and numpy values become plain values or lists;
    torch dtypes and devices their names; functions and classes their qualified names; anything
    else (samplers, generators, datasets) its type name.
    """
    try:
        return _convert(obj, _depth)
    except Exception:  # noqa: BLE001 - a snapshot must never fail a training run
        return type_name(obj)


def _convert(obj: Any, depth: int) -> Any:
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {math.inf: "Infinity", -math.inf: "-Infinity"}.get(obj, "NaN")
    if depth >= _MAX_DEPTH:
        return type_name(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, depth + 1) for v in obj]
    if isinstance(obj, (set, frozenset)):
        items = [jsonable(v, depth + 1) for v in obj]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    module = type(obj).__module__
    if (module.startswith("torch") or module.startswith("numpy")) and hasattr(obj, "tolist") and hasattr(obj, "dtype"):
        return jsonable(obj.tolist(), depth + 1)
    if module == "torch" and type(obj).__name__ in ("dtype", "device"):
        return str(obj)  # "torch.float32", "cuda:0": the type alone would say nothing
    if inspect.isroutine(obj) or inspect.isclass(obj) or isinstance(obj, functools.partial):
        return qualified_name(getattr(obj, "func", obj))
    return type_name(obj)


def dataclass_fields(obj: Any) -> dict[str, Any]:
    """Return the fields of a dataclass instance as a JSON-safe dict, without copying the values."""
    return {field.name: jsonable(getattr(obj, field.name, None)) for field in dataclasses.fields(obj)}


def config_row(fields: dict[str, Any]) -> dict[str, Any]:
    """Turn JSON-safe ``TrainerRunConfig`` fields into a ``configs`` row, column by column.

    Each value is coerced to its column's type or stored as ``None``, so that a strange value can
    never make the writer's insert fail (an int beyond the column's range would fail it on every
    retry, holding back every point after it); dicts (the dataloader kwargs) become JSON text.
    Fields the table has no column for are left out; text is made storable (:func:`storable_text`).
    """
    from sqlalchemy import BigInteger, Boolean, Float, Integer

    from ..db.schema import configs

    row: dict[str, Any] = {}
    for name, value in fields.items():
        column = configs.c.get(name)
        if column is None or name in ("id", "run_id", "stage_id", "kind", "captured_at"):
            continue
        if isinstance(column.type, Boolean):
            row[name] = value if isinstance(value, bool) else None
        elif isinstance(column.type, Integer):
            # INTEGER is 32-bit on PostgreSQL, BIGINT 64-bit everywhere
            limit = 2**63 if isinstance(column.type, BigInteger) else 2**31
            fits = isinstance(value, int) and not isinstance(value, bool) and -limit <= value < limit
            row[name] = value if fits else None
        elif isinstance(column.type, Float):
            row[name] = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        else:
            text = value if isinstance(value, str) or value is None else json.dumps(value, ensure_ascii=False)
            row[name] = None if text is None else storable_text(text)
    return row


def storable_text(text: str) -> str:
    """``text`` as every database can store it: a NUL and lone surrogates written as escapes
    (``\\x00``, ``\\ud800``), so that a snapshot never fails the writer's insert."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
