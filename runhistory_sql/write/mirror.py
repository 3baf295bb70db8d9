"""The in-memory mirror of the current stage, which answers every read: a :class:`Series` per
metric, each with the token the writer knows its series by."""
from __future__ import annotations

import itertools
from array import array
from bisect import bisect_left
from typing import Any, Iterable, Mapping

#: series tokens, unique within the process (the writer maps each to its series id)
_tokens = itertools.count(1)


class StepMarks:
    """Where each step of a metric begins among its values: ``(step, index of its first value)``
    for every distinct step, in order (steps never go back within a metric, see
    :func:`~runhistory_sql.write.steps.log_metrics`). Two arrays of 8-byte integers: a point of
    its own step costs 16 bytes here. Values recorded without a step (``update_metric``) have
    no mark.
    """

    __slots__ = ("steps", "starts")

    def __init__(self) -> None:
        self.steps = array("q")
        self.starts = array("q")

    @classmethod
    def of(cls, steps: Iterable[int | None]) -> "StepMarks":
        """The marks of values whose steps are ``steps`` (``None``: a value without one)."""
        marks = cls()
        for index, step in enumerate(steps):
            if step is not None:
                marks.add(step, index)
        return marks

    @property
    def last(self) -> int | None:
        """The last (largest) step, or ``None`` when no value has one."""
        return self.steps[-1] if self.steps else None

    def add(self, step: int, index: int) -> None:
        """Note that the value at ``index`` is of ``step`` (not smaller than :attr:`last`)."""
        steps = self.steps
        if not steps or steps[-1] != step:
            steps.append(step)
            self.starts.append(index)

    def first_index_at(self, step: int) -> int | None:
        """The index of the first value of step ``step`` or later, or ``None`` when there is none."""
        k = bisect_left(self.steps, step)
        return self.starts[k] if k < len(self.steps) else None

    def drop_from(self, index: int) -> None:
        """Forget the marks of the values at ``index`` and after (they were dropped)."""
        k = bisect_left(self.starts, index)
        del self.steps[k:]
        del self.starts[k:]


class Series:
    """One metric's values in the current stage, where each epoch begins, and its queue token.

    :param values: the values recorded, in order
    :param marks: ``(epoch, index of its first value)``, one per epoch that has values
    :param token: the writer's name for the series (the database id is the writer's business)
    :param steps: where each step begins, once the metric has a value with a step
    """

    __slots__ = ("values", "marks", "token", "last_epoch", "steps")

    def __init__(self, values: list[Any], marks: list[tuple[int, int]], token: int,
                 steps: StepMarks | None = None) -> None:
        self.values = values
        self.marks = marks
        self.token = token
        #: the epoch of the last mark: a value at another epoch starts a new mark
        self.last_epoch: int | None = marks[-1][0] if marks else None
        self.steps = steps

    def truncate(self, epoch: int) -> None:
        """Drop the values recorded at ``epoch`` or later."""
        marks = self.marks
        keep = next((i for i, (e, _) in enumerate(marks) if e >= epoch), len(marks))
        if keep < len(marks):
            self.cut(marks[keep][1])

    def truncate_to_step(self, step: int) -> int:
        """Drop the values from the first one of step ``step`` or later on (values without a step
        that were recorded after it too); return how many were dropped."""
        cut = self.steps.first_index_at(step) if self.steps is not None else None
        if cut is None:
            return 0
        dropped = len(self.values) - cut
        self.cut(cut)
        return dropped

    def cut(self, index: int) -> None:
        """Drop the values at ``index`` and after, with their epoch and step marks."""
        del self.values[index:]
        marks = self.marks
        del marks[bisect_left(marks, index, key=lambda mark: mark[1]):]
        self.last_epoch = marks[-1][0] if marks else None
        if self.steps is not None:
            self.steps.drop_from(index)


def new_token() -> int:
    """A series token no other series of this process has."""
    return next(_tokens)


def loaded_mirror(series: Mapping[str, tuple[Any, list[Any], list[tuple[int, int]]]],
                  steps: Mapping[str, Any]) -> dict[str, Series]:
    """The mirror of a stage read back on resume: ``series`` is metric name -> (its series id,
    values, epoch marks), ``steps`` metric name -> its points' steps (for metrics that have steps);
    each series gets a new token."""
    return {
        name: Series(values, marks, new_token(), StepMarks.of(steps[name]) if name in steps else None)
        for name, (_, values, marks) in series.items()
    }
