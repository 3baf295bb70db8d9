"""The background writer: the only code that writes a run's history to the database.

The training loop appends operations to a queue and goes on; a daemon thread commits them in
batches, in order, when the queue is long, every ``interval`` seconds, and on ``flush()``. A
batch that fails (database gone, locked) is retried with backoff until it lands, before anything
queued after it; a retry first asks whether the failed attempt committed after all, so nothing is
dropped and nothing doubled. A batch that fails for any other reason is split until the failing
operation is alone; that one is set aside (see :mod:`~runhistory_sql.write.setaside`) and everything
else commits, in order. What still cannot be committed at ``close()`` goes to a spill file.
"""
from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from . import oplines, spill
from .batch import DELETE, END, FLUSH, POINT, POINT_ENC, SERIES, Cursor, Op, apply_batch, batch_landed
from ..db.clock import HEARTBEAT_S, now_ms
from ..db.engine import writer_engine
from ..errors import RunInUseError, brief
from .setaside import SetAside, is_transient

log = logging.getLogger("runhistory_sql")
_time = time.time

#: How often a waiting ``flush()`` looks at the writer thread's health.
_POLL_S = 0.05
#: More than _BURST_OPS operations queued within _BURST_PROBE_S (100,000/s) is a tight loop.
_BURST_PROBE_S = 0.002
_BURST_OPS = 200
#: How long ``close()`` lets an attempt in flight end once it has stopped waiting, by default.
IN_FLIGHT_S = 5.0
#: The kind and format of an overflow file (:mod:`oplines`): operations the writer moved out of memory.
OVERFLOW_KIND, OVERFLOW_FORMAT = "overflow", 1
#: What one commit attempt came to (see ``Writer._attempt``)
_COMMITTED, _SPLIT, _RETRY, _STOP = "committed", "split", "retry", "stop"


class Writer:
    """Commits queued operations of one run from a background thread.

    :param engine: the database
    :param cursor: where the run's writes go (its id, stage, and the ids already known)
    :param interval: the longest time a point waits in the queue, in seconds
    :param batch_size: a queue this long wakes the writer at once
    :param heartbeat: how often, in seconds, the run's heartbeat is refreshed
    :param max_queue: a queue longer than this (the database failing, or not keeping up with a
        tight loop) moves to a temporary file, the memory bound; it is written back in order
    :param origin: the run's database and run identities, which a spill file records
    :param names: series token -> metric name of the series known already (for set-aside points)
    """

    def __init__(
        self, engine: Engine, cursor: Cursor, *, interval: float = 1.0, batch_size: int = 50_000,
        heartbeat: float = HEARTBEAT_S, max_queue: int = 1_000_000, origin: spill.Origin,
        names: dict[int, str] | None = None,
    ) -> None:
        self.queue: deque[Op] = deque()
        self.batch_size = batch_size
        self.max_queue = max_queue
        self._overflow: list[_Overflow] = []
        self.transactions = 0
        self._engine = writer_engine(engine)
        self._cursor = cursor
        self._origin = origin
        self._holder = (socket.gethostname(), os.getpid())  # as the claim recorded it
        self._interval = min(interval, heartbeat)
        self._heartbeat_ms = heartbeat * 1000
        self._wake = threading.Event()
        self._stopping = False
        self._abandoned = False
        self._retry: tuple[list[Op], int] | None = None
        self._attempted: Cursor | None = None
        self._flush_wanted = False
        self._urgent = threading.Event()
        self._error: BaseException | None = None
        self._last_commit = 0
        #: the parts of a batch split after a failure that was not transient, in order; none landed
        self._pieces: deque[list[Op]] = deque()
        #: tokens of series whose SERIES operation was set aside: their points follow it
        self._dead: set[int] = set()
        self._ended = False
        self.names: dict[int, str] = dict(names or {})
        self.set_aside = SetAside(cursor.run_id, self.names)
        self._thread = threading.Thread(target=self._loop, name="runhistory-sql-writer", daemon=True)
        self._thread.start()

    # -- the caller's side ---------------------------------------------------------------

    def put(self, op: Op) -> None:
        """Queue one operation."""
        if op[0] == SERIES:
            self.names[op[1]] = op[2]
        self.queue.append(op)
        if len(self.queue) == self.batch_size:
            self._wake.set()

    def put_point(self, code: int, token: int, seq: int, epoch: int, value: Any) -> None:
        """Queue one point without a step, stamped with the time now (the training loop's hot path).

        :param code: ``POINT`` for a non-zero float ``value``, ``POINT_ENC`` for an encoded triple
        """
        queue = self.queue
        queue.append((code, token, seq, epoch, value, _time(), None))
        if len(queue) == self.batch_size:  # once per crossing: waking costs a GIL hand-over
            self._wake.set()

    def put_many(self, ops: list[Op]) -> None:
        """Queue several operations at once (the points of one ``log_metrics`` call)."""
        queue = self.queue
        before = len(queue)
        queue.extend(ops)
        if before < self.batch_size <= len(queue):
            self._wake.set()

    def flush(self, timeout: float | None = None, *, give_up_on_error: bool = False) -> bool:
        """Commit everything queued so far; return whether that happened within ``timeout``.

        :param give_up_on_error: return ``False`` at once while the database is failing
            (the epoch-end flush must not stall training through an outage)
        """
        if not self._thread.is_alive():
            return not self.queue and self._retry is None
        done = threading.Event()
        self.queue.append((FLUSH, done))
        self._flush_wanted = True
        self._urgent.set()
        self._wake.set()
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while not done.wait(min(_POLL_S, max(0.0, deadline - time.monotonic()))):
            failing = give_up_on_error and self._error is not None
            if failing or time.monotonic() >= deadline or not self._thread.is_alive():
                break
        return done.is_set()

    def close(self, status: str, timeout: float | None = None, *, grace: float = IN_FLIGHT_S) -> Path | None:
        """Commit everything, set the run's final ``status`` and stop the thread.

        Returns within ``timeout + grace`` seconds (and the time to write the spill file).

        :param timeout: how long to wait for the database to take everything
        :param grace: then, how long an attempt in flight may take to end before its batch is
            spilled anyway (should it commit later, it is stamped: the import skips it)
        :return: ``None``, or the spill file holding what the database did not take in time
        """
        self.queue.append((END, status, now_ms()))
        self._stopping = True
        self._urgent.set()
        self._wake.set()
        self._thread.join(timeout)
        if not self._thread.is_alive() and not self._unwritten():
            return None
        self._abandoned = True
        self._urgent.set()
        self._wake.set()
        self._thread.join(grace)  # let an attempt in flight end (one that ends after this rolls back)
        pending = list(self._retry[0]) if self._retry else []
        # none of these landed, so they are safe to apply after the batch in flight, whether or
        # not that one did (the import skips only the pending ones then)
        queued = [op for piece in self._pieces for op in piece] + self._overflowed_ops() + list(self.queue)
        batch_id = self._retry[1] if self._retry else None
        return spill.write(
            self._cursor, pending, batch_id, queued, origin=self._origin, attempted=self._attempted,
        )

    def _unwritten(self) -> bool:
        """Whether anything is left that the thread did not commit (it stopped early)."""
        queued = any(op[0] != FLUSH for op in self.queue)
        return queued or self._retry is not None or bool(self._pieces) or bool(self._overflow)

    @property
    def taken_over(self) -> bool:
        """Whether another process continued the run, so this writer stopped writing."""
        return isinstance(self._error, RunInUseError)

    @property
    def unwritten_because(self) -> str:
        """Why operations were left for the spill file, for its one-line announcement."""
        if self.taken_over:
            return "another process continued this run, so nothing more of this one was written"
        text = self.last_error_text
        return f"the database was unreachable ({text})" if text else "the database was unreachable"

    @property
    def last_error_text(self) -> str:
        """The first line of the last commit error, for one-line messages."""
        return brief(self._error)

    # -- the thread's side ---------------------------------------------------------------

    def _loop(self) -> None:
        backoff = 0.0
        while not self._abandoned:
            self._wake.wait(backoff or self._interval)
            self._wake.clear()
            if self._abandoned:
                return
            if len(self.queue) > self.max_queue:  # far behind (or failing): bound the memory
                self._overflow_to_disk()
            self._pace()
            attempt = self._next_attempt()
            if attempt is None:
                continue
            outcome = self._attempt(*attempt)
            if outcome == _STOP or (outcome == _COMMITTED and self._done_with(attempt[0])):
                return
            backoff = min(max(backoff * 2, 0.25), 5.0) if outcome == _RETRY else 0.0

    def _pace(self) -> None:
        """In a burst, wait until the interval is up, or a flush or close wants the commit now.

        (Waking often would cost the training loop a GIL hand-over each time.)
        """
        if self._retry is None and not self._pieces and self._can_wait() and self._in_a_burst():
            self._urgent.wait(max(0.0, self._interval - (now_ms() - self._last_commit) / 1000))
        self._urgent.clear()
        self._flush_wanted = False

    def _next_attempt(self) -> tuple[list[Op], int, bool] | None:
        """``(batch, batch_id, retrying)`` to commit now: the failed batch again, or the next one;
        ``None`` when there is nothing to commit and the heartbeat is not due."""
        if self._retry is None:
            batch, batch_id, retrying = self._next_batch(), secrets.randbits(62), False
        else:
            (batch, batch_id), retrying = self._retry, True
        if not batch and now_ms() - self._last_commit < self._heartbeat_ms:
            if self._pieces:
                self._wake.set()
            return None
        # unconfirmed until committed: should the commit hang, close() spills this batch
        self._retry = (batch, batch_id)
        return batch, batch_id, retrying

    def _attempt(self, batch: list[Op], batch_id: int, retrying: bool) -> str:
        """Commit ``batch``; return the outcome: ``_COMMITTED``, ``_SPLIT``, ``_RETRY`` or ``_STOP``."""
        try:
            self._commit(batch, batch_id, retrying)
        except Exception as e:  # noqa: BLE001 - retried, or split and the bad part set aside
            return self._failed(batch, batch_id, e)
        self._retry, self._error = None, None
        if self._pieces:  # the rest of a split batch: at once, not at the next interval
            self._wake.set()
        return _COMMITTED

    def _failed(self, batch: list[Op], batch_id: int, error: Exception) -> str:
        """Keep a failed batch for a retry, or split it (the bad part set aside); see ``_attempt``."""
        if isinstance(error, RunInUseError):  # another process continued the run: write no more
            log.error("runhistory-sql: %s What is pending goes to a spill file at close().", error)
            self._error, self._retry = error, (batch, batch_id)
            return _STOP
        if self._abandoned or is_transient(error) or not self._split(batch, error):
            if self._error is None and not self._abandoned:
                log.warning("runhistory-sql: commit failed, will retry: %s", brief(error))
            self._error, self._retry = error, (batch, batch_id)
            return _RETRY
        self._retry, self._error = None, None  # the database answers
        self._wake.set()  # go on with the first piece at once
        return _SPLIT

    def _done_with(self, batch: list[Op]) -> bool:
        """Whether, once ``batch`` committed, the thread is done: closing, and the END is written
        (or was set aside) with nothing of a split batch left."""
        return self._stopping and (any(op[0] == END for op in batch) or (self._ended and not self._pieces))

    def _can_wait(self) -> bool:
        """Whether this commit may be put off: nobody waits on it and the interval is not up."""
        return not (self._stopping or self._flush_wanted) and now_ms() - self._last_commit < self._interval * 1000

    def _in_a_burst(self) -> bool:
        """Whether the training loop is queueing points in a tight loop right now.

        The writer shares the GIL with it: converting and inserting in the middle of a burst
        slows every call of the burst down (about 2.5x here), so the writer waits for the lull.
        """
        before = len(self.queue)
        time.sleep(_BURST_PROBE_S)
        return len(self.queue) - before > _BURST_OPS

    def _next_batch(self) -> list[Op]:
        """The next operations to commit: what is left of a split batch comes first."""
        batch = self._pieces.popleft() if self._pieces else self._drain()
        return self._without_dead(batch) if self._dead else batch

    def _split(self, batch: list[Op], error: BaseException) -> bool:
        """Split a batch that failed for good in two, or set its one operation aside; return
        whether that was done (a batch with nothing but flush markers is retried instead)."""
        if len(batch) > 1:
            half = len(batch) // 2  # the first half commits first: the order is kept
            self._pieces.extendleft((batch[half:], batch[:half]))
            return True
        op = batch[0]
        if op[0] == FLUSH:
            return False
        try:
            event = self.set_aside.add(op, error)
        except Exception as e:  # noqa: BLE001 - the file cannot be written: keep the op, retry
            log.warning("runhistory-sql: could not set aside a refused operation: %s", e)
            return False
        if op[0] == SERIES:
            self._dead.add(op[1])
        self._ended = self._ended or op[0] == END
        if event is not None:  # committed where the bad operation was
            self._pieces.appendleft([event])
        return True

    def _without_dead(self, batch: list[Op]) -> list[Op]:
        """Set aside the points (and deletions) of series that could not be created."""
        dead, kept = self._dead, []
        for op in batch:
            if op[0] in (POINT, POINT_ENC, DELETE) and op[1] in dead:
                self.set_aside.add(op, "its series could not be created (see that series' write_error event)", event=False)
            else:
                kept.append(op)
        return kept

    def _drain(self) -> list[Op]:
        if self._overflow:  # what went to disk during an outage comes first, in order
            return self._overflow.pop(0).load()
        popleft = self.queue.popleft
        return [popleft() for _ in range(len(self.queue))]

    def _overflow_to_disk(self) -> None:
        """Move the queue to a file while the database is failing: memory stays bounded and the
        training loop, which only appends, is never blocked."""
        popleft = self.queue.popleft
        self._overflow.append(_Overflow.save([popleft() for _ in range(len(self.queue))]))
        log.warning("runhistory-sql: the writer is behind; %d queued operations moved to %s",
                    self._overflow[-1].count, self._overflow[-1].path)

    def _overflowed_ops(self) -> list[Op]:
        return [op for chunk in self._overflow for op in chunk.load()]

    def _commit(self, batch: list[Op], batch_id: int, retrying: bool) -> None:
        landed = None
        with self._engine.begin() as conn:
            if retrying and self._attempted is not None and batch_landed(conn, self._cursor.run_id, batch_id):
                # the last attempt committed but its answer was lost: apply nothing twice
                landed = self._attempted
            else:
                # kept for the check above, should the COMMIT's answer be lost
                self._attempted = None
                self._attempted = apply_batch(conn, self._cursor, batch, batch_id, holder=self._holder)
                if self._abandoned:  # close() gave up and spilled this batch: roll it back
                    raise _Abandoned()
        self._cursor, self._attempted = landed or self._attempted, None
        self.transactions += 1
        self._last_commit = now_ms()
        for op in batch:
            if op[0] == FLUSH:
                op[1].set()


class _Abandoned(Exception):
    """The batch was spilled by ``close()`` while this attempt was still running."""


class _Overflow:
    """Operations parked in a temporary file of :mod:`oplines` (the spill file's codec, checked
    whole when it is read back); flush waiters stay in memory."""

    def __init__(self, path: Path, waiters: list[Op], count: int) -> None:
        self.path, self.waiters, self.count = path, waiters, count

    @classmethod
    def save(cls, ops: list[Op]) -> "_Overflow":
        fd, name = tempfile.mkstemp(prefix="runhistory-sql-overflow-", suffix=".jsonl")
        os.close(fd)
        path = oplines.write(Path(name), {"format": OVERFLOW_FORMAT, "kind": OVERFLOW_KIND}, (op for op in ops if op[0] != FLUSH))
        return cls(path, [op for op in ops if op[0] == FLUSH], len(ops))

    def load(self) -> list[Op]:
        _, ops = oplines.read(self.path, OVERFLOW_KIND, OVERFLOW_FORMAT)
        self.path.unlink()
        return ops + self.waiters
