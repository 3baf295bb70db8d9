"""Time as the schema stores it (integer milliseconds since the Unix epoch, UTC), and liveness."""
from __future__ import annotations

import time

#: By default a running process refreshes its run's heartbeat this often, in seconds.
HEARTBEAT_S = 10.0
#: A ``running`` run whose heartbeat is older than this many heartbeat intervals reads as
#: ``crashed`` (60 s with the default interval). Each run stores its own bound.
STALE_AFTER_BEATS = 6


def now_ms() -> int:
    """Return the current UTC time in milliseconds."""
    return time.time_ns() // 1_000_000
