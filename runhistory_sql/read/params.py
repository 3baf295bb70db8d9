"""A run's hyperparameters read back (``params``, see :mod:`runhistory_sql.write.params`).

Values come from ``value_json``, exact (NaN, infinities and -0.0 too); the current value of a
key is its latest row (the highest id: rows are written in order).
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from sqlalchemy import Connection, select

from ..db.schema import params
from .models import Param
from .records import utc


def current_params(conn: Connection, run_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """run id -> its current params (key -> value, in the order first logged), for the runs
    that have any."""
    found: dict[int, dict[str, Any]] = {}
    if not run_ids:
        return found
    query = select(params.c.run_id, params.c.key, params.c.value_json).where(params.c.run_id.in_(list(run_ids)))
    for run_id, key, value_json in conn.execute(query.order_by(params.c.id)):
        found.setdefault(run_id, {})[key] = json.loads(value_json)
    return found


def param_history(conn: Connection, run_id: int) -> list[Param]:
    """Every logged value of the run's params: by key in the order first logged, then in the
    order logged, the last of each key ``current``."""
    query = select(params.c.id, params.c.key, params.c.value_json, params.c.recorded_at).where(params.c.run_id == run_id)
    rows = conn.execute(query.order_by(params.c.id)).all()
    last = {key: row_id for row_id, key, _, _ in rows}
    by_key: dict[str, list[Param]] = {}
    for row_id, key, value_json, at in rows:
        recorded = utc(at)
        assert recorded is not None  # NOT NULL
        by_key.setdefault(key, []).append(Param(key, json.loads(value_json), recorded, row_id == last[key]))
    return [param for history in by_key.values() for param in history]


def param_differences(per_run: Sequence[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """``(key, [value per run])`` of the params whose current values are not all the same (a
    value of another type differs: ``1`` is not ``1.0``), in the order first logged."""
    table = [(key, [p.get(key) for p in per_run]) for key in dict.fromkeys(k for p in per_run for k in p)]
    return [(key, values) for key, values in table if any(_differ(values[0], v) for v in values[1:])]


def _differ(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return False  # NaN is NaN
    return type(a) is not type(b) or a != b
