"""A run's records beside its metrics: ``TrainerRunConfig`` snapshots and events, read back.

Rows come from the tables (not the views), so that they keep the order they were written in
(the table's id: two events of the same millisecond stay in order) and the same Python types on
every backend: times as timezone-aware UTC ``datetime``, booleans as ``bool``, JSON decoded.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Sequence

from sqlalchemy import Connection, RowMapping, select

from ..db.schema import VIEW_COLUMNS, configs, events, stages
from .models import ConfigSnapshot, Event

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_JSON_CONFIG_FIELDS = ("train_dl_kwargs", "eval_dl_kwargs")
#: The ``TrainerRunConfig`` fields of a snapshot, in ``v_configs`` order.
CONFIG_FIELDS = VIEW_COLUMNS["v_configs"][4:]


def utc(ms: int | None) -> datetime | None:
    """Turn stored milliseconds since the Unix epoch into a UTC ``datetime`` (exact, no float)."""
    return None if ms is None else _UNIX_EPOCH + timedelta(milliseconds=ms)


def read_configs(conn: Connection, run_id: int) -> list[ConfigSnapshot]:
    """The run's config snapshots in the order they were taken (``captured_at`` a UTC
    ``datetime``, the dataloader kwargs decoded)."""
    query = (
        select(stages.c.idx.label("stage"), configs.c.kind, configs.c.captured_at, *(configs.c[n] for n in CONFIG_FIELDS))
        .join(stages, stages.c.id == configs.c.stage_id)
        .where(configs.c.run_id == run_id).order_by(configs.c.id)
    )
    return [_snapshot(row._mapping) for row in conn.execute(query)]


def _snapshot(row: RowMapping) -> ConfigSnapshot:
    fields = {name: row[name] for name in CONFIG_FIELDS}
    for name in _JSON_CONFIG_FIELDS:
        if fields[name] is not None:
            fields[name] = json.loads(fields[name])
    return ConfigSnapshot(row["stage"], row["kind"], _utc(row["captured_at"]), fields)


def read_events(conn: Connection, run_id: int, kind: str | None = None) -> list[Event]:
    """The run's events in the order they were recorded (``recorded_at`` a UTC ``datetime``,
    the payload decoded)."""
    query = (
        select(events.c.id, stages.c.idx, events.c.epoch, events.c.kind, events.c.recorded_at, events.c.payload)
        .select_from(events.outerjoin(stages, stages.c.id == events.c.stage_id))
        .where(events.c.run_id == run_id).order_by(events.c.id)
    )
    if kind is not None:
        query = query.where(events.c.kind == kind)
    return [
        Event(event_id, stage, epoch, found, _utc(at), json.loads(payload))
        for event_id, stage, epoch, found, at, payload in conn.execute(query)
    ]


def _utc(ms: int) -> datetime:
    # the columns are NOT NULL: a time is always there
    return _UNIX_EPOCH + timedelta(milliseconds=ms)


def flat_config(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a config snapshot (its :attr:`~ConfigSnapshot.fields`), the dataloader
    kwargs spread into one field per key: ``train_dl_kwargs.batch_size`` and so on.

    Example::

        flat_config({"num_epochs": 3, "train_dl_kwargs": {"shuffle": True}, ...})
        # {"num_epochs": 3, "train_dl_kwargs.shuffle": True, ...}
    """
    fields: dict[str, Any] = {}
    for name in CONFIG_FIELDS:
        value = snapshot.get(name)
        if isinstance(value, dict):
            fields.update({f"{name}.{key}": value[key] for key in sorted(value)})
        else:
            fields[name] = value
    return fields


def config_differences(snapshots: Sequence[Mapping[str, Any] | None]) -> list[tuple[str, list[Any]]]:
    """The config fields whose values are not all the same, with the value in each snapshot.

    :param snapshots: the :attr:`~ConfigSnapshot.fields` of one config snapshot per run;
        ``None`` for a run without one (its values are all ``None``)
    :return: ``(field, [value per snapshot])``, in field order
    """
    flat = [flat_config(s) if s is not None else {} for s in snapshots]
    names = list(dict.fromkeys(name for fields in flat for name in fields))
    table = [(name, [fields.get(name) for fields in flat]) for name in names]
    return [(name, values) for name, values in table if any(_differ(values[0], v) for v in values[1:])]


def _differ(a: Any, b: Any) -> bool:
    # 1 == True and 1 == 1.0 in Python; a config that changed type did change
    return type(a) is not type(b) or a != b


def latest(snapshots: Sequence[ConfigSnapshot], kind: str = "train") -> ConfigSnapshot | None:
    """The last snapshot of ``kind`` (``"train"`` or ``"evaluate"``), or ``None``."""
    return next((s for s in reversed(snapshots) if s.kind == kind), None)
