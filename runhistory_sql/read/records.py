"""A run's records beside its metrics: ``TrainerRunConfig`` snapshots and events, read back.

Rows come from the tables (not the views), so that they keep the order they were written in
(the table's id: two events of the same millisecond stay in order) and the same Python types on
every backend: times as timezone-aware UTC ``datetime``, booleans as ``bool``, JSON decoded.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, select

from ..db.schema import VIEW_COLUMNS, configs, events, stages

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_JSON_CONFIG_FIELDS = ("train_dl_kwargs", "eval_dl_kwargs")


def utc(ms: int | None) -> datetime | None:
    """Turn stored milliseconds since the Unix epoch into a UTC ``datetime`` (exact, no float)."""
    return None if ms is None else _UNIX_EPOCH + timedelta(milliseconds=ms)


def read_configs(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """The run's config snapshots in the order they were taken: the ``v_configs`` columns
    without ``run_id``, ``captured_at`` a UTC ``datetime`` and the dataloader kwargs decoded."""
    names = VIEW_COLUMNS["v_configs"][1:]
    columns = [stages.c.idx.label("stage") if name == "stage" else configs.c[name] for name in names]
    query = (
        select(*columns).join(stages, stages.c.id == configs.c.stage_id)
        .where(configs.c.run_id == run_id).order_by(configs.c.id)
    )
    found = []
    for row in conn.execute(query):
        record = dict(row._mapping)
        record["captured_at"] = utc(record["captured_at"])
        for name in _JSON_CONFIG_FIELDS:
            if record[name] is not None:
                record[name] = json.loads(record[name])
        found.append(record)
    return found


def read_events(conn: Connection, run_id: int, kind: str | None = None) -> list[dict[str, Any]]:
    """The run's events in the order they were recorded: ``stage``, ``epoch``, ``kind``,
    ``recorded_at`` (UTC ``datetime``) and ``payload`` (decoded JSON)."""
    query = (
        select(stages.c.idx.label("stage"), events.c.epoch, events.c.kind, events.c.recorded_at, events.c.payload)
        .select_from(events.outerjoin(stages, stages.c.id == events.c.stage_id))
        .where(events.c.run_id == run_id).order_by(events.c.id)
    )
    if kind is not None:
        query = query.where(events.c.kind == kind)
    return [
        {**row._mapping, "recorded_at": utc(row.recorded_at), "payload": json.loads(row.payload)}
        for row in conn.execute(query)
    ]
