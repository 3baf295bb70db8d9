"""A run's hyperparameters: flattening what ``log_params`` is given, and what changed.

A param is a flat ``key -> value``: nested mappings are flattened with dots (``{"optim": {"lr":
3e-4}}`` is ``optim.lr``); a value is a number, a str, a bool or ``None``; lists and tuples are
stored as JSON (a list comes back as a list); anything else is a ``TypeError`` naming the key.
Each change is one row of ``params`` (:func:`stored_row`); nothing is overwritten. A value is
unchanged when its JSON is the same: ``1`` and ``1.0`` and ``True`` differ (their types do).
"""
from __future__ import annotations

import json
import math
import numbers
from typing import Any, Iterable, Mapping

from .arguments import check_name, check_no_nul
from ..db.values import check_unicode

#: A row of ``params`` without its run and time: ``(key, value, value_text, value_json)``.
ParamRow = tuple[str, float | None, str | None, str]


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``params`` as one flat dict, nested mappings joined with dots, each value made plain
    (``int``, ``float``, ``bool``, ``str``, ``None``, or a list for a list or tuple).

    An empty nested mapping is kept as the value ``{}`` of its key.

    :raises TypeError: a key that is not a str, or a value of another type (naming its key)
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"Params are a dict of name -> value, not {type(params).__qualname__}.")
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"A param name must be a non-empty str, not {key!r}{_inside(prefix)}.")
        name = prefix + key
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = plain_value(name, value)
    return flat


def _inside(prefix: str) -> str:
    return f" (in {prefix[:-1]!r})" if prefix else ""


def plain_value(key: str, value: Any) -> Any:
    """The value of param ``key`` as it is stored and read back.

    :raises TypeError: a value that is not a number, str, bool, None, list or tuple
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):  # numpy integers too
        return int(value)
    if isinstance(value, numbers.Real):  # numpy floats too
        return float(value)
    if isinstance(value, Mapping):  # only an empty one gets here
        return {}
    if isinstance(value, (list, tuple)):
        try:
            return json.loads(json.dumps(value))
        except (TypeError, ValueError) as e:
            raise TypeError(f"The list of param {key!r} cannot be stored as JSON: {e}.") from e
    raise TypeError(
        f"Cannot record param {key!r}: a value of type {type(value).__module__}.{type(value).__qualname__}. "
        "Use a number, str, bool, None, or a list of them (convert it first, e.g. str(value))."
    )


def stored_row(key: str, value: Any) -> ParamRow:
    """The ``params`` columns of a plain value: ``value`` the number for an int or float that is
    not NaN (and fits a float), ``value_text`` the str itself or else the JSON (``None`` for
    ``None``), ``value_json`` the exact JSON (NaN, Infinity and -0.0 as Python's json writes them).

    :raises ValueError: a name or text the database cannot store (NUL, lone surrogate, too long)
    """
    check_name("param name", key)
    value_json = json.dumps(value, ensure_ascii=False)
    check_unicode(f"value of param {key!r}", value_json)
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int beyond a float's range: exact in value_json only
            number = None
        if number is not None and math.isnan(number):
            number = None
    if isinstance(value, str):
        check_no_nul(f"value of param {key!r}", value)
        text: str | None = value
    else:
        text = None if value is None else value_json
    return key, number, text, value_json


class ParamState:
    """The current params of a run (loaded on resume), and the rows a new ``log_params`` adds.

    :param current: key -> the JSON of its current value, in the order first logged
    """

    def __init__(self, current: Mapping[str, str] | None = None) -> None:
        self._json: dict[str, str] = dict(current or {})
        self._values: dict[str, Any] = {key: json.loads(text) for key, text in self._json.items()}

    @property
    def values(self) -> dict[str, Any]:
        """The current params: key -> value (a copy)."""
        return dict(self._values)

    def changes(self, params: Mapping[str, Any]) -> list[ParamRow]:
        """The rows for what ``params`` changes (nothing for an unchanged value), taken as the
        current values; all checked before any is taken, so a bad one changes nothing.

        :raises TypeError: as :func:`flatten`
        :raises ValueError: as :func:`stored_row`
        """
        rows = [stored_row(key, value) for key, value in flatten(params).items()]
        changed = [row for row in rows if self._json.get(row[0]) != row[3]]
        for key, _, _, value_json in changed:
            self._json[key] = value_json
            self._values[key] = json.loads(value_json)
        return changed


def current_of(rows: Iterable[tuple[str, str]]) -> dict[str, str]:
    """key -> the JSON of its latest row, from ``(key, value_json)`` rows in the order written."""
    current: dict[str, str] = {}
    for key, value_json in rows:
        current[key] = value_json
    return current
