"""The mirror entry: a slotted class, not a list indexed 0..3."""
from __future__ import annotations

import pytest

from runhistory_sql.write.mirror import Series


def test_can_truncate_a_series_at_an_epoch() -> None:
    entry = Series([1.0, 2.0, 3.0, 4.0], [(1, 0), (2, 2), (3, 3)], token=7)

    entry.truncate(2)

    assert (entry.values, entry.marks, entry.token, entry.last_epoch) == ([1.0, 2.0], [(1, 0)], 7, 1)


def test_a_series_has_only_its_four_fields() -> None:
    entry = Series([], [], token=1)

    with pytest.raises(AttributeError):
        entry.other = 1  # type: ignore[attr-defined]
    assert entry.last_epoch is None
