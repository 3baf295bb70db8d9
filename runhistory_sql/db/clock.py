"""Time as the schema stores it (integer milliseconds since the Unix epoch, UTC), and liveness."""
from __future__ import annotations

import os
import socket
import time

#: By default a running process refreshes its run's heartbeat this often, in seconds.
HEARTBEAT_S = 10.0
#: A ``running`` run whose heartbeat is older than this many heartbeat intervals reads as
#: ``crashed`` (60 s with the default interval). Each run stores its own bound.
STALE_AFTER_BEATS = 6


def now_ms() -> int:
    """Return the current UTC time in milliseconds."""
    return time.time_ns() // 1_000_000


def this_host() -> str:
    """The name runs record as their ``host`` (``socket.gethostname()``)."""
    return socket.gethostname()


def pid_gone(host: str | None, pid: int | None) -> bool:
    """Whether the process ``pid`` recorded on ``host`` is certainly dead: ``host`` is this
    host and no process has that pid. A process of another user counts as alive; on another
    host nothing is certain (the heartbeat decides there). The one rule for "dead at once",
    used by the write side (claiming a run) and the read side (a run reads ``crashed``).
    """
    if host != this_host() or pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False
