"""Conditions on runs' params and tags: ``KEY OP VALUE``, e.g. ``lr<1e-4``, ``model=bert-base``,
``tag.team = nlp``; the one grammar of ``runhistory-sql runs --where``, ``RunStore.runs(where=...)``
and the dashboard's filter box.

- ``KEY`` is a param key (``optim.lr``), or ``tag.KEY`` for a top-level key of the run's tags;
  it holds no space and none of ``< > = !``.
- ``OP`` is one of ``= != < <= > >=`` (``==`` is ``=``).
- ``VALUE`` is the rest, spaces around it ignored. A number (``3``, ``-0.5``, ``1e-4``) is
  compared as a number, with the values that are numbers (booleans are not); anything else as
  text, with the values that are text (a param's ``value_text``: ``true``/``false`` for
  booleans, the JSON of a list) or booleans. Quotes (``'42'`` or ``"42"``) make a number text.

A param's current value is compared (``v_params.is_current``). A run without the key, or whose
value is of the other kind, meets no condition on it, ``!=`` included. Everything the user typed
is a bound parameter: no text of a condition ever becomes SQL.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError

#: The operators, as typed -> as SQL.
OPERATORS = {"=": "=", "==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
SYNTAX = (
    'write KEY OP VALUE with OP one of = != < <= > >=, KEY a param key or tag.KEY, e.g. "lr<1e-4", '
    '"model=bert-base" or "tag.team=nlp"'
)
_CONDITION = re.compile(r"^\s*(?P<key>[^\s<>=!]+)\s*(?P<op><=|>=|!=|==|=|<|>)\s*(?P<value>.*?)\s*$", re.DOTALL)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_TAG = "tag."


@dataclass(frozen=True)
class Condition:
    """A parsed condition (see the module docstring)."""

    #: the param key, or the tag's key when :attr:`tag`
    key: str
    #: the SQL operator: ``=``, ``!=``, ``<``, ``<=``, ``>`` or ``>=``
    op: str
    #: a float to compare as a number, or a str to compare as text
    value: float | str
    tag: bool = False


def parse_condition(text: str) -> Condition:
    """Read one condition.

    Example::

        parse_condition("lr < 1e-4")        # Condition("lr", "<", 0.0001)
        parse_condition("tag.team=nlp")     # Condition("team", "=", "nlp", tag=True)

    :raises InvalidArgumentError: the text is not ``KEY OP VALUE`` (one line naming the syntax)
    """
    found = _CONDITION.match(text) if isinstance(text, str) else None
    if found is None or not found["value"] or found["key"] == _TAG:
        raise InvalidArgumentError(f"Cannot read the condition {text!r}: {SYNTAX}.")
    key, raw = found["key"], found["value"]
    tag = key.startswith(_TAG)
    if tag:
        key = key[len(_TAG):]
        if '"' in key:
            raise InvalidArgumentError(f"Cannot read the condition {text!r}: a tag key cannot hold a double quote.")
    value: float | str
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        value = raw[1:-1]
    elif _NUMBER.match(raw):
        value = float(raw)
    else:
        value = raw
    return Condition(key, OPERATORS[found["op"]], value, tag)


def where_sql(condition: Condition, dialect: str, prefix: str, run_id: str) -> tuple[str, dict[str, Any]]:
    """The SQL of ``condition`` on the run whose id is the SQL expression ``run_id``, and its
    bound values (named ``prefix`` + ``key`` / ``value``).

    :param dialect: ``"sqlite"`` or ``"postgresql"`` (tags are JSON text, read differently)
    """
    key, value = f":{prefix}key", f":{prefix}value"
    bound: dict[str, Any] = {f"{prefix}key": condition.key, f"{prefix}value": condition.value}
    numeric = isinstance(condition.value, float)
    if not condition.tag:
        column = "p.value" if numeric else "p.value_text"
        sql = (
            f"EXISTS (SELECT 1 FROM params p WHERE p.run_id = {run_id} AND p.key = {key} "
            f"AND p.id = (SELECT MAX(q.id) FROM params q WHERE q.run_id = {run_id} AND q.key = {key}) "
            f"AND {column} {condition.op} {value})"
        )
        return sql, bound
    tag_value = tag_number if numeric else tag_text
    bound[f"{prefix}key"] = tag_key(dialect, condition.key)
    return f"EXISTS (SELECT 1 FROM runs t WHERE t.id = {run_id} AND {tag_value(dialect, key)} {condition.op} {value})", bound


def tag_key(dialect: str, key: str) -> str:
    """The bound value that names the tag ``key`` in :func:`tag_number` / :func:`tag_text`."""
    return f'$."{key}"' if dialect == "sqlite" else key


def tag_number(dialect: str, key: str, runs: str = "t") -> str:
    """SQL: the tag named by the bound ``key`` of the ``runs`` row, where it is a number, else NULL."""
    if dialect == "sqlite":
        return f"(CASE WHEN json_type({runs}.tags, {key}) IN ('integer', 'real') THEN json_extract({runs}.tags, {key}) END)"
    tag = f"(CAST({runs}.tags AS jsonb) -> CAST({key} AS TEXT))"
    return f"(CASE WHEN jsonb_typeof({tag}) = 'number' THEN CAST({tag} #>> '{{}}' AS DOUBLE PRECISION) END)"


def tag_text(dialect: str, key: str, runs: str = "t") -> str:
    """SQL: the tag named by the bound ``key`` where it is a string or a boolean, else NULL."""
    if dialect == "sqlite":
        return (
            f"(CASE json_type({runs}.tags, {key}) WHEN 'text' THEN json_extract({runs}.tags, {key}) "
            f"WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END)"
        )
    tag = f"(CAST({runs}.tags AS jsonb) -> CAST({key} AS TEXT))"
    return f"(CASE WHEN jsonb_typeof({tag}) IN ('string', 'boolean') THEN {tag} #>> '{{}}' END)"
