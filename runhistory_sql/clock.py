"""Time as the schema stores it: integer milliseconds since the Unix epoch, UTC."""
from __future__ import annotations

import time

#: A running process refreshes its run's heartbeat this often.
HEARTBEAT_S = 10.0
#: A ``running`` run whose heartbeat is older than this reads as ``crashed`` (the views agree).
STALE_AFTER_S = 60.0


def now_ms() -> int:
    """Return the current UTC time in milliseconds."""
    return time.time_ns() // 1_000_000
