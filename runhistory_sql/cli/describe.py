"""A run's records as people read them: config fields flattened, the fields in which runs differ,
and events in one line each."""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from ..db.schema import VIEW_COLUMNS

#: The ``TrainerRunConfig`` fields of a snapshot, in ``v_configs`` order.
CONFIG_FIELDS = VIEW_COLUMNS["v_configs"][4:]
_MAX_DETAIL = 100


def flat_config(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a config snapshot (as :meth:`RunStore.configs` gives it), the dataloader
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

    :param snapshots: one config snapshot per run; ``None`` for a run without one (its values
        are all ``None``)
    :return: ``(field, [value per snapshot])``, in field order
    """
    flat = [flat_config(s) if s is not None else {} for s in snapshots]
    names = list(dict.fromkeys(name for fields in flat for name in fields))
    table = [(name, [fields.get(name) for fields in flat]) for name in names]
    return [(name, values) for name, values in table if any(_differ(values[0], v) for v in values[1:])]


def _differ(a: Any, b: Any) -> bool:
    # 1 == True and 1 == 1.0 in Python; a config that changed type did change
    return type(a) is not type(b) or a != b


def latest(snapshots: Sequence[Mapping[str, Any]], kind: str = "train") -> Mapping[str, Any] | None:
    """The last snapshot of ``kind`` (``"train"`` or ``"evaluate"``), or ``None``."""
    return next((s for s in reversed(snapshots) if s.get("kind") == kind), None)


def describe_event(kind: str, payload: Mapping[str, Any]) -> str:
    """One short line saying what an event recorded, e.g. ``froze group 0 (288 params);
    1,089 of 1,377 params trainable`` or ``from epoch 3 (was crashed), on node-7 pid 4242``.

    :param kind: the event's kind (``v_events.kind``)
    :param payload: its decoded payload
    """
    p = payload
    if kind in ("freeze", "unfreeze"):
        verb, groups, numel = (
            ("froze", p.get("groups_frozen"), p.get("numel_frozen")) if kind == "freeze"
            else ("unfroze", p.get("groups_unfrozen"), p.get("numel_unfrozen"))
        )
        what = f"{verb} {_groups(groups)}" + (f" ({numel:,} params)" if groups and numel is not None else "")
        if p.get("trainable_numel") is not None and p.get("total_numel") is not None:
            what += f"; {p['trainable_numel']:,} of {p['total_numel']:,} params trainable"
        return what
    if kind == "resumed":
        was = f" (was {p['previous_status']})" if p.get("previous_status") else ""
        return f"from epoch {p.get('from_epoch')}{was}, on {p.get('host')} pid {p.get('pid')}"
    if kind == "rewind":
        return f"to epoch {p.get('to_epoch')}, {p.get('superseded_points')} points superseded"
    if kind == "training_run_start":
        return f"{p.get('num_epochs')} epochs"
    if kind in ("stop_training", "interrupted"):
        return str(p.get("reason") or "")
    if kind == "exception":
        return _short(f"{p.get('type')}: {p.get('message')}")
    if kind == "exit":
        return f"exit code {p.get('code')}"
    if kind in ("epoch_end", "training_run_end"):
        return ""  # the epoch column says it all
    return _short(", ".join(f"{key}={json.dumps(value, sort_keys=True)}" for key, value in p.items()))


def _groups(groups: Any) -> str:
    if not groups:
        return "no layer group"
    if len(groups) == 1:
        return f"group {groups[0]}"
    return "groups " + ", ".join(str(g) for g in groups)


def _short(text: str) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 1] + "…"
