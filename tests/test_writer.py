"""The writer's overflow file is a file of the spill's codec (oplines), checked whole on load."""
from __future__ import annotations

import math
import threading

from runhistory_sql.write import oplines
from runhistory_sql.write.batch import FLUSH, POINT, POINT_ENC, SERIES
from runhistory_sql.write.writer import _Overflow


def test_can_park_operations_in_an_overflow_file_and_load_them_back() -> None:
    done = threading.Event()
    ops = [(SERIES, 1, "loss"), (POINT, 1, 0, 1, math.inf, 1.5, None), (POINT_ENC, 1, 1, 1, [0.0, 2, None], 2.5, 7),
           (FLUSH, done), (POINT, 1, 2, 1, -math.inf, 3.5, None)]

    parked = _Overflow.save(ops)
    header, stored = oplines.read(parked.path, "overflow", 1)
    loaded = parked.load()

    assert (header["ops"], parked.count) == (4, 5)
    assert stored == [(SERIES, 1, "loss"), (POINT, 1, 0, 1, math.inf, 1.5, None), (POINT_ENC, 1, 1, 1, [0.0, 2, None], 2.5, 7),
                      (POINT, 1, 2, 1, -math.inf, 3.5, None)]
    assert loaded == [*stored, (FLUSH, done)]
    assert not parked.path.exists()
