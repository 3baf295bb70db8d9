"""What the SQLRunHistory tests share: how values read back, dumps without the fields every commit
refreshes, and a history's reads in one dict."""
from __future__ import annotations


import json
from typing import Any

from pytorch_accelerated.tracking import RunHistory

from helpers import dump, is_postgres, query




def as_stored(value: Any) -> Any:
    """What a value reads as once it went through the database (numbers become floats)."""
    if type(value) in (int, bool, float):
        return float(value)
    return json.loads(json.dumps(value))


def stored_data(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """``helpers.dump`` without ``runs.heartbeat_at`` and ``runs.last_batch``, which every commit refreshes."""
    return dump(url, ignore={"runs": ("heartbeat_at", "last_batch")})


def metric_rows(url: str) -> list[tuple[Any, ...]]:
    return query(
        url, "SELECT stage, metric, seq, epoch, value, value_json FROM v_metrics ORDER BY stage, metric, seq",
    )


def true(url: str) -> bool | int:
    """How a true SQL boolean reads back: ``True`` on PostgreSQL, ``1`` on SQLite."""
    return True if is_postgres(url) else 1


def false(url: str) -> bool | int:
    return False if is_postgres(url) else 0


def history_of(h: RunHistory) -> dict[str, Any]:
    names = sorted(h.get_metric_names())
    return {
        "names": names,
        "values": {n: h.get_metric_values(n) for n in names},
        "latest": {n: h.get_latest_metric(n) for n in names},
        "epoch": h.current_epoch,
    }
