"""The in-memory mirror of one metric of the current stage, which answers every read."""
from __future__ import annotations

from typing import Any


class Series:
    """One metric's values in the current stage, where each epoch begins, and its queue token.

    :param values: the values recorded, in order
    :param marks: ``(epoch, index of its first value)``, one per epoch that has values
    :param token: the writer's name for the series (the database id is the writer's business)
    """

    __slots__ = ("values", "marks", "token", "last_epoch")

    def __init__(self, values: list[Any], marks: list[tuple[int, int]], token: int) -> None:
        self.values = values
        self.marks = marks
        self.token = token
        #: the epoch of the last mark: a value at another epoch starts a new mark
        self.last_epoch: int | None = marks[-1][0] if marks else None

    def truncate(self, epoch: int) -> None:
        """Drop the values recorded at ``epoch`` or later."""
        marks = self.marks
        keep = next((i for i, (e, _) in enumerate(marks) if e >= epoch), len(marks))
        if keep < len(marks):
            del self.values[marks[keep][1]:]
            del marks[keep:]
            self.last_epoch = marks[-1][0] if marks else None
