"""Points at a step: ``SQLRunHistory.log_metrics`` and ``rewind_to_step``.

A plain accelerate loop counts steps, not epochs: ``log_metrics(values, step)`` records each value
as a point of its metric at that step, in the current stage and epoch, by the rules of
``update_metric`` (the mirror sees it; world-process-zero queues it; nothing waits on the
database). Within a metric steps never go back (a step may repeat): that is what makes
``rewind_to_step(S)`` exact, superseding in every metric of the current stage precisely the
points of step >= S, the way a resumed loop that skips back to its checkpoint's step S needs.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping

from . import batch as w
from .arguments import as_integral, check_name
from .mirror import Series, StepMarks
from ..db.values import encode
from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    from .history import SQLRunHistory

#: The largest step: a BIGINT (and the mirror's 8-byte integers) holds it.
MAX_STEP = 2**63 - 1
_time = time.time


def as_step(step: Any) -> int:
    """A step as an ``int`` >= 0: any integral number (a numpy integer, a 0-dim integer tensor),
    not a bool, a float or a str.

    :raises TypeError: not an integral number
    :raises InvalidArgumentError: negative, or beyond a BIGINT
    """
    value = as_integral("A step", step)
    if not 0 <= value <= MAX_STEP:
        raise InvalidArgumentError(f"A step is an int from 0 to 2**63 - 1, not {value}.")
    return value


def log_metrics(history: "SQLRunHistory", values: Mapping[str, Any], step: Any) -> None:
    """Record each of ``values`` (metric name -> value) as a point at ``step``: all of them, or,
    when one is refused, none.

    The hot path of a plain loop: everything is checked in a first pass, then recorded in a
    second one with no call per value but the queue's; a step not below any step of the stage
    so far (``history._step_bound``, the usual case) needs no per-metric check.

    :raises TypeError: a name that is not a str, a value ``update_metric`` refuses (naming it),
        a bad step
    :raises InvalidArgumentError: (a ``ValueError``) a step before the last one of that metric
    """
    if type(step) is not int or step < 0 or step > MAX_STEP:
        step = as_step(step)
    if not isinstance(values, Mapping):
        raise TypeError(f"log_metrics takes a dict of metric name -> value, not {type(values).__qualname__}.")
    prefix, mirror = history._prefix, history._m
    bound = history._step_bound
    behind = bound is not None and step < bound
    checked = []
    stored: Any
    for name, value in values.items():
        if type(name) is not str:
            raise TypeError(f"A metric name must be a str, not {type(name).__qualname__} ({name!r}).")
        if prefix:
            name = prefix + name
        if type(value) is float and value:  # values.queued_raw, as update_metric inlines it
            code, stored = w.POINT, value
        else:
            code, stored = w.POINT_ENC, encode(value, name)
        entry = mirror.get(name)
        if entry is None:
            check_name("metric name", name)  # before anything is recorded: all or none
        elif behind:
            _check_not_behind(entry, name, step)
        checked.append((name, value, code, stored, entry))
    if not behind:
        history._step_bound = step
    _record(history, checked, step)


def _check_not_behind(entry: Series, name: str, step: int) -> None:
    last = entry.steps.last if entry.steps is not None else None
    if last is not None and step < last:
        raise InvalidArgumentError(
            f"Metric {name!r} is at step {last} already, so it cannot take a point at step {step}: "
            f"steps do not go back within a metric. To record from step {step} again, "
            f"rewind_to_step({step}) first."
        )


def _record(history: "SQLRunHistory", checked: list[tuple[str, Any, int, Any, Series | None]], step: int) -> None:
    epoch, at, ops = history._epoch, _time(), []
    for name, value, code, stored, entry in checked:
        if entry is None:
            entry = history._start_series(name)
        marks = entry.steps
        if marks is None:
            marks = entry.steps = StepMarks()
        values = entry.values
        seq = len(values)
        if entry.last_epoch != epoch:
            entry.marks.append((epoch, seq))
            entry.last_epoch = epoch
        values.append(value)
        known = marks.steps
        if not known or known[-1] != step:  # StepMarks.add, inlined
            known.append(step)
            marks.starts.append(seq)
        ops.append((code, entry.token, seq, epoch, stored, at, step))
    if history._writer is not None:
        history._writer.put_many(ops)


def last_step(mirror: Mapping[str, Series]) -> int | None:
    """The largest step of the mirror's points (the current stage's effective points)."""
    return max((entry.steps.last for entry in mirror.values() if entry.steps and entry.steps.last is not None),
               default=None)


def truncate_to_step(mirror: Mapping[str, Series], step: int) -> int | None:
    """Drop from the mirror what ``rewind_to_step(step)`` supersedes in the database; return the
    mirror's last step after it (the history's new ``_step_bound``)."""
    for entry in mirror.values():
        entry.truncate_to_step(step)
    return last_step(mirror)
