"""One encoding decision: every path a value can take stores the same bytes for it."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sqlalchemy import create_engine, text

from runhistory_sql import SQLRunHistory
from runhistory_sql.db.values import encode, encode_float, queued_raw, stored_plain
from runhistory_sql.write.batch import POINT, POINT_ENC

FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1.5, -2.25, 1e308, 5e-324]
OTHERS: list[Any] = [0, 3, -7, True, 2**1100, torch.tensor(0.5), torch.tensor(-0.0), np.float32(math.nan),
                     torch.tensor([1.0, 2.0]), {"a": [1, None]}, "text", None]


def _sign(x: Any) -> Any:
    return math.copysign(1.0, x) if isinstance(x, float) else x


def _stored(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT m.name, p.value, p.special, p.value_json FROM points p JOIN series s ON s.id = p.series_id "
            "JOIN metrics m ON m.id = s.metric_id ORDER BY m.name, p.seq"
        )).all()
    engine.dispose()
    found: dict[str, list[tuple[Any, ...]]] = {}
    for name, value, special, value_json in rows:
        found.setdefault(name, []).append((value, _sign(value), special, value_json))
    return found


def _expected(values: list[Any]) -> list[tuple[Any, ...]]:
    return [(v, _sign(v), s, j) for v, s, j in (encode(x, "m") for x in values)]


def test_the_predicates_agree_with_encode_float() -> None:
    assert [queued_raw(x) for x in FLOATS] == [True, True, True, False, False, True, True, True, True]
    assert [stored_plain(x) for x in FLOATS] == [encode_float(x) == (x, None, None) for x in FLOATS]
    assert [stored_plain(x) for x in FLOATS] == [False, True, True, True, False, True, True, True, True]


def test_every_path_stores_the_same_bytes_for_the_same_value(url: str) -> None:
    history = SQLRunHistory(url, run_name="r")
    for x in FLOATS:
        history.update_metric("a_floats", x)  # raw (SQLite: the CASE insert) or encoded at once
        history.update_metric("b_mixed", x)  # the same, in slices that mix raw and encoded points
        history.update_metric("b_mixed", 7)
    for x in OTHERS:
        history.update_metric("c_others", x)
    history.update_metric("d_encoded", 1.0)
    token = history._m["d_encoded"].token
    assert history._writer is not None
    for seq, x in enumerate(FLOATS, start=1):  # every float encoded before it is queued
        history._writer.put_point(POINT_ENC, token, seq, 1, encode_float(x))
    history._writer.put_point(POINT, token, len(FLOATS) + 1, 1, math.nan)
    history.close()

    stored = _stored(url)

    mixed = [v for x in FLOATS for v in (x, 7)]
    assert stored["a_floats"] == _expected(FLOATS) == stored["d_encoded"][1:-1]
    assert stored["b_mixed"] == _expected(mixed)
    assert stored["c_others"] == _expected(OTHERS)
    assert stored["d_encoded"][-1] == (None, None, 1, None)
