"""How a process's runs end: ``finished``, ``failed``, or (with no word at all) ``crashed``.

pytorch-accelerated has no error hook: an exception leaves ``train()`` without a callback, and
``TerminateOnNaNCallback`` calls ``sys.exit``. So, once the first writing ``SQLRunHistory`` opens,
this module wraps ``sys.excepthook`` (uncaught exceptions) and ``sys.exit`` (to learn the exit
code, which ``atexit`` cannot see), and closes every open history at exit with the right status.
A process killed without a word leaves its run ``running`` with a heartbeat that goes stale, and
the views read it as ``crashed``.

Limits: only ``sys.exit`` called in the main thread sets the exit code (elsewhere it ends just
that thread); a ``raise SystemExit(code)`` or the interactive ``exit()`` are not seen (the run
ends ``finished``, or ``failed`` if a training run was in progress); and a ``sys.exit`` whose
``SystemExit`` is caught and the program goes on still counts at exit.
"""
from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import traceback
import weakref
from types import TracebackType
from typing import Any, Protocol

from .snapshot import storable_text

log = logging.getLogger("runhistory_sql")


class Closable(Protocol):
    def close_at_exit(self, exit_code: Any, error: BaseException | None, *, signalled: bool = False) -> None: ...


_open: "weakref.WeakSet[Any]" = weakref.WeakSet()
_installed = False
_exit_code: Any = None
_error: BaseException | None = None


def register(history: Closable) -> None:
    """Close ``history`` with the right status when the process ends."""
    _install()
    _open.add(history)


def unregister(history: Closable) -> None:
    _open.discard(history)


def held_uuids() -> set[str]:
    """The uuids of the runs this process holds open for writing (the pid check that tells a
    live holder from a dead one cannot see these: the pid is this process's own)."""
    return {h._uuid for h in _open if h.is_writer}


def describe(error: BaseException) -> dict[str, Any]:
    """The payload of an ``exception`` event: type, message and the last lines of the traceback."""
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    return {
        "type": f"{type(error).__module__}.{type(error).__qualname__}",
        "message": str(error),
        "traceback": "".join(lines[-6:]),
    }


def exit_event(exit_code: Any, error: BaseException | None) -> tuple[str, dict[str, Any]] | None:
    """The event that says why a process ends badly: ``exception`` after an uncaught exception,
    ``exit`` after a non-zero exit code; ``None`` when it ends well."""
    if error is not None:
        return "exception", describe(error)
    if exit_code not in (None, 0):
        return "exit", {"code": exit_code if isinstance(exit_code, int) else str(exit_code)}
    return None


def exit_outcome(exit_code: Any, error: BaseException | None, in_run: bool) -> tuple[str, tuple[str, dict[str, Any]] | None]:
    """How a history still open at the end of its process is closed: ``(status, event)``.
    ``failed`` with the :func:`exit_event` after an uncaught exception or a non-zero exit code,
    ``failed`` with an ``interrupted`` event for an exit in the middle of a training or
    evaluation run (``in_run``); else ``finished`` and no event. A lone surrogate in the event's
    text (an error message: text the user did not choose) is escaped, never refused, so that the
    run is still closed."""
    escaped = exit_event(exit_code, error)
    if escaped is not None:
        kind, payload = escaped
        return "failed", (kind, {k: storable_text(v) if isinstance(v, str) else v for k, v in payload.items()})
    if in_run:
        return "failed", ("interrupted", {"reason": "the process ended during a training or evaluation run"})
    return "finished", None


def _install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    previous_hook, previous_exit = sys.excepthook, sys.exit

    def excepthook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        global _error
        _error = error
        _close_all()
        previous_hook(kind, error, tb)

    def exit(code: Any = None) -> None:  # noqa: A001 - stands in for sys.exit
        global _exit_code
        # in any other thread sys.exit ends that thread only, never the process
        if threading.current_thread() is threading.main_thread():
            _exit_code = code
        previous_exit(code)

    sys.excepthook = excepthook
    sys.exit = exit  # type: ignore[assignment]
    atexit.register(_close_all)
    _install_sigterm()


def _install_sigterm() -> None:
    """On SIGTERM (preemption, a launcher stopping its workers): flush and close every open
    history as ``failed`` with an ``exit`` event (code ``"signal SIGTERM"``), then die of SIGTERM
    as the process would have. Each history is done within its ``term_timeout`` (5 s by
    default): what the database has not taken by then is spilled, so that the spill file is
    written within the grace period a scheduler gives (Kubernetes: 30 s; SLURM: often less).

    Only when SIGTERM has its default action and we are in the main thread: a handler the
    program installed itself is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        global _exit_code
        _exit_code = f"signal {signal.Signals(signum).name}"
        _close_all(signalled=True)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_sigterm)


def _close_all(signalled: bool = False) -> None:
    for history in list(_open):
        try:
            history.close_at_exit(_exit_code, _error, signalled=signalled)
        except Exception as e:  # noqa: BLE001 - at exit, report and go on with the others
            log.error("runhistory-sql: could not close %r: %s", history, e)
