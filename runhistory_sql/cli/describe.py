"""A run's records as people read them: events in one line each (config fields are flattened by
:func:`~runhistory_sql.read.records.flat_config`)."""
from __future__ import annotations

import json
from typing import Any, Mapping

_MAX_DETAIL = 100


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
