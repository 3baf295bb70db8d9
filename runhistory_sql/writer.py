"""The background writer: the only code that writes a run's history to the database.

The training loop appends operations to a queue and goes on; a daemon thread commits them in
batches, in order, when the queue is long, every ``interval`` seconds, and on ``flush()``. A
batch that fails (database gone, locked) is kept and retried with backoff: nothing is dropped.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .clock import HEARTBEAT_S, now_ms
from .engine import mask, writer_engine
from .errors import WriteError
from .runs import inserted_id
from .schema import configs, events, metrics, points, runs, series, stages

log = logging.getLogger("runhistory_sql")

# Operation codes: the first element of every queued tuple.
POINT, SERIES, DELETE, STAGE, EPOCH, REWIND, EVENT, CONFIG, FLUSH, END = range(10)

#: How often a waiting ``flush()`` checks that the writer thread is still alive.
_POLL_S = 0.1

_POINT_COLUMNS = "series_id, rev, seq, epoch, value, special, value_json, recorded_at"


def _point_sql(paramstyle: str) -> str:
    marks = ", ".join(["?"] * 8 if paramstyle == "qmark" else ["%s"] * 8)
    return f"INSERT INTO points ({_POINT_COLUMNS}) VALUES ({marks})"


class Writer:
    """Commits queued operations of one run from a background thread.

    :param engine: the database
    :param run_id: the run written to
    :param stage: the run's current stage number and its row id
    :param rewinds: how many rewinds the run has had (the next one is numbered one more)
    :param series_ids: series already in the database, by the caller's token
    :param interval: the longest time a point waits in the queue, in seconds
    :param batch_size: a queue this long wakes the writer at once
    :param heartbeat: how often, in seconds, the run's heartbeat is refreshed
    """

    def __init__(
        self, engine: Engine, run_id: int, *, stage: tuple[int, int], rewinds: int,
        series_ids: dict[int, int], interval: float = 1.0, batch_size: int = 4096,
        heartbeat: float = HEARTBEAT_S,
    ) -> None:
        self.queue: deque[tuple[Any, ...]] = deque()
        self.batch_size = batch_size
        self.transactions = 0
        self._engine = writer_engine(engine)
        self._run_id = run_id
        self._stage, self._stage_id = stage
        self._rewinds = rewinds
        self._series = dict(series_ids)
        self._metric_ids: dict[str, int] = {}
        self._interval = min(interval, heartbeat)
        self._heartbeat_ms = heartbeat * 1000
        self._wake = threading.Event()
        self._stopping = False
        self._retry: list[tuple[Any, ...]] = []
        self._error: BaseException | None = None
        self._last_heartbeat = 0.0
        self._thread = threading.Thread(target=self._loop, name="runhistory-sql-writer", daemon=True)
        self._thread.start()

    # -- the caller's side ---------------------------------------------------------------

    def put(self, op: tuple[Any, ...]) -> None:
        """Queue one operation."""
        self.queue.append(op)
        if len(self.queue) >= self.batch_size:
            self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Commit everything queued so far; return whether that happened within ``timeout``.

        Once the writer has stopped (after :meth:`close`) it returns at once: ``True`` when
        nothing is pending, ``False`` when operations were queued after it stopped.
        """
        if not self._thread.is_alive():
            return not self.queue and not self._retry
        done = threading.Event()
        self.queue.append((FLUSH, done))
        self._wake.set()
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        # watch the thread too: once close() has stopped it, nothing would ever set ``done``
        while not done.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or not self._thread.is_alive():
                break
            done.wait(min(left, _POLL_S))
        return done.is_set()

    def close(self, status: str, timeout: float | None = None) -> None:
        """Commit everything, set the run's final ``status``, and stop the thread.

        :raises WriteError: the database did not take the pending operations within ``timeout``
        """
        self.queue.append((END, status))
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            pending = len(self._retry) + len(self.queue)
            raise WriteError(
                f"Could not commit {pending} pending operations to {mask(self._engine.url)}: "
                f"{self._error}. Check that the database is reachable."
            )

    @property
    def last_error(self) -> BaseException | None:
        """The error of the last failed commit, or ``None`` after a successful one."""
        return self._error

    # -- the thread's side ---------------------------------------------------------------

    def _loop(self) -> None:
        backoff = 0.0
        while True:
            self._wake.wait(backoff or self._interval)
            self._wake.clear()
            batch = self._retry + self._drain()
            self._retry = []
            due = now_ms() - self._last_heartbeat >= self._heartbeat_ms
            if batch or due:
                try:
                    self._commit(batch)
                    backoff, self._error = 0.0, None
                except Exception as e:  # noqa: BLE001 - any failure is retried; nothing dropped
                    if self._error is None:
                        log.warning("runhistory-sql: commit failed, will retry: %s", e)
                    self._error, self._retry = e, batch
                    backoff = min(max(backoff * 2, 0.25), 5.0)
                    continue
            if self._stopping and any(op[0] == END for op in batch):
                return

    def _drain(self) -> list[tuple[Any, ...]]:
        popleft, queue = self.queue.popleft, self.queue
        return [popleft() for _ in range(len(queue))]

    def _commit(self, batch: list[tuple[Any, ...]]) -> None:
        saved = (self._stage, self._stage_id, self._rewinds, dict(self._series), dict(self._metric_ids))
        try:
            with self._engine.begin() as conn:
                self._apply_ops(conn, batch)
                now = now_ms()
                conn.execute(update(runs).where(runs.c.id == self._run_id).values(heartbeat_at=now))
        except BaseException:
            # the transaction rolled back, so must everything learnt inside it
            self._stage, self._stage_id, self._rewinds, self._series, self._metric_ids = saved
            raise
        self.transactions += 1
        self._last_heartbeat = now
        for op in batch:
            if op[0] == FLUSH:
                op[1].set()

    def _apply_ops(self, conn: Connection, batch: list[tuple[Any, ...]]) -> None:
        rows: list[tuple[Any, ...]] = []
        sql = _point_sql(conn.dialect.paramstyle)
        for op in batch:
            code = op[0]
            if code == POINT:
                _, token, seq, epoch, value, special, value_json, at = op
                rows.append((self._series[token], 0, seq, epoch, value, special, value_json, at))
                continue
            if rows:
                conn.exec_driver_sql(sql, rows)
                rows = []
            if code != FLUSH:
                self._apply_one(conn, op)
        if rows:
            conn.exec_driver_sql(sql, rows)

    def _apply_one(self, conn: Connection, op: tuple[Any, ...]) -> None:
        code, run = op[0], runs.c.id == self._run_id
        if code == SERIES:
            _, token, name = op
            row = dict(run_id=self._run_id, stage_id=self._stage_id, metric_id=self._metric_id(conn, name))
            self._series[token] = inserted_id(conn.execute(insert(series).values(row)))
        elif code == DELETE:
            conn.execute(update(series).where(series.c.id == self._series[op[1]]).values(deleted=True))
        elif code == STAGE:
            _, new_stage = op
            values: dict[str, Any] = {"current_epoch": 1}
            if new_stage:
                self._stage += 1
                result = conn.execute(insert(stages).values(run_id=self._run_id, idx=self._stage, started_at=now_ms()))
                self._stage_id = inserted_id(result)
                values["current_stage"] = self._stage
            conn.execute(update(runs).where(run).values(values))
        elif code == EPOCH:
            conn.execute(update(runs).where(run).values(current_epoch=op[1]))
        elif code == REWIND:
            self._rewind(conn, op[1], op[2])
        elif code == EVENT:
            _, kind, epoch, at, payload = op
            conn.execute(insert(events).values(
                run_id=self._run_id, stage_id=self._stage_id, epoch=epoch, kind=kind,
                recorded_at=at, payload=payload,
            ))
        elif code == CONFIG:
            conn.execute(insert(configs).values(run_id=self._run_id, stage_id=self._stage_id, **op[1]))
        elif code == END:
            conn.execute(update(runs).where(run).values(status=op[1], ended_at=now_ms()))

    def _rewind(self, conn: Connection, to_epoch: int, at: int) -> None:
        self._rewinds += 1
        in_stage = select(series.c.id).where(series.c.stage_id == self._stage_id)
        superseded = conn.execute(
            update(points)
            .where(points.c.rev == 0, points.c.epoch >= to_epoch, points.c.series_id.in_(in_stage))
            .values(rev=self._rewinds)
        ).rowcount
        conn.execute(update(runs).where(runs.c.id == self._run_id).values(
            rewinds=self._rewinds, current_epoch=to_epoch,
        ))
        conn.execute(insert(events).values(
            run_id=self._run_id, stage_id=self._stage_id, epoch=to_epoch, kind="rewind",
            recorded_at=at,
            payload=json.dumps({"to_epoch": to_epoch, "superseded_points": superseded, "rev": self._rewinds}),
        ))

    def _metric_id(self, conn: Connection, name: str) -> int:
        found = self._metric_ids.get(name)
        if found is None:
            upsert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            conn.execute(upsert(metrics).values(name=name).on_conflict_do_nothing())
            found = conn.execute(select(metrics.c.id).where(metrics.c.name == name)).scalar_one()
            self._metric_ids[name] = found
        return found
