"""``SQLRunHistory``: pytorch-accelerated's ``RunHistory``, persisted to SQL.

Every process keeps an in-memory mirror of the current stage that answers all reads, exactly as
``InMemoryRunHistory`` would. World-process-zero also queues every change for the background
:class:`~runhistory_sql.write.writer.Writer`; no other rank ever writes.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any, Mapping

from pytorch_accelerated.tracking import RunHistory
from sqlalchemy import Engine

from . import lifecycle
from . import steps
from . import batch as w
from .arguments import as_epoch, check_arguments, check_name, resolve_term_timeout
from .writer import IN_FLIGHT_S, Writer
from ..db.clock import HEARTBEAT_S, now_ms
from ..db.engine import mask
from ..errors import RunHistorySQLError
from ..db.schema import END_STATUSES
from .rank import world_process_index
from .mirror import Series, loaded_mirror, new_token
from .params import ParamState
from .opening import open_history, start_writer
from .run import RunState
from .snapshot import config_row
from ..db.values import encode, event_json

log = logging.getLogger("runhistory_sql")
#: How long ``_increment_epoch`` waits for the epoch's points to be committed.
EPOCH_COMMIT_TIMEOUT_S = 60.0
#: How long ``close()`` waits for pending points by default.
CLOSE_TIMEOUT_S = 60.0
#: Of the SIGTERM bound (``term_timeout``), the last part left to a commit already in flight.
TERM_GRACE_S = 1.0


class SQLRunHistory(RunHistory):
    """A ``RunHistory`` that keeps every metric in a SQL database.

    Example::

        from pytorch_accelerated import Trainer
        from runhistory_sql import SQLRunHistory

        history = SQLRunHistory("sqlite:///runs.db", experiment="mnist", run_name="baseline")
        trainer = Trainer(model, loss_func, optimizer, run_history=history)
        trainer.train(train_dataset=train_ds, eval_dataset=eval_ds, num_epochs=3)
        history.close()

    :param url: database URL; else ``$RUNHISTORY_SQL_URL``; else ``sqlite:///runhistory.db``
        in the working directory
    :param experiment: the experiment the run belongs to; run names are unique within it
    :param run_name: the run's name; a unique one is generated when ``None``
    :param resume: ``"never"``: a new run (an existing name is an error); ``"allow"``: continue
        the run of that name if it exists, else create it; ``"must"``: continue it, which must exist
    :param tags: a JSON-serialisable dict stored with a new run
    :param auto_upgrade: upgrade a database at an older schema revision instead of raising
    :param flush_interval: the longest time, in seconds, a point waits before it is committed
    :param heartbeat_interval: how often, in seconds, the run's heartbeat is refreshed; a run
        whose heartbeat is 6 intervals old (60 s by default) reads as ``crashed``
    :param term_timeout: on SIGTERM, what is pending is committed, or else spilled, within this
        many seconds of the signal (plus the time to write the spill file); then the process dies
        of the signal. Else ``$RUNHISTORY_SQL_TERM_TIMEOUT``; else 5
    :raises RunHistorySQLError: (subclasses) for an unusable URL, schema, or run name
    """

    def __init__(
        self, url: str | None = None, *, experiment: str = "default", run_name: str | None = None,
        resume: str = "never", tags: dict[str, Any] | None = None, auto_upgrade: bool = False,
        flush_interval: float = 1.0, heartbeat_interval: float = HEARTBEAT_S,
        term_timeout: float | None = None,
    ) -> None:
        check_arguments(experiment, run_name, resume, tags, flush_interval, heartbeat_interval)
        self._term_timeout = resolve_term_timeout(term_timeout)
        opened = open_history(
            url, experiment, run_name, resume, tags or {}, writes=world_process_index() == 0,
            auto_upgrade=auto_upgrade, heartbeat_interval=heartbeat_interval,
        )
        self._engine: Engine = opened.engine
        state, writes = opened.state, opened.writes
        self._adopt(state)
        self._closed = False
        self._in_run = False
        self.spill_path: Path | None = None
        self._writer: Writer | None = None
        self._put_point: Any = None  # the writer's, bound once: the hot path calls it
        if writes and state.run_id is not None:
            tokens = {name: self._m[name].token for name in state.series}
            self._writer = start_writer(opened, tokens, interval=flush_interval, heartbeat=heartbeat_interval)
            self._put_point = self._writer.put_point
            if state.resumed:
                self.log_event(
                    "resumed", host=socket.gethostname(), pid=os.getpid(), from_epoch=state.epoch,
                    stage=state.stage, previous_status=state.previous_status,
                )
        lifecycle.register(self)

    def _adopt(self, state: RunState) -> None:
        self.run_id, self.run_name, self.experiment = state.run_id, state.name, state.experiment
        self._uuid = state.uuid
        self._prefix = ""
        self._epoch = state.epoch
        self._stage_used = state.stage_used
        self._m: dict[str, Series] = loaded_mirror(state.series, state.steps)
        self._params = ParamState(state.params)
        #: no step of the current stage is above it (None: none has a step): see steps.log_metrics
        self._step_bound = steps.last_step(self._m)

    # -- reads: always from the mirror ------------------------------------------------

    def get_metric_names(self) -> set[str]:
        return {name for name, entry in self._m.items() if entry.values}

    def get_metric_values(self, metric_name: str) -> list[Any]:
        entry = self._m.get(metric_name)
        return list(entry.values) if entry is not None else []

    def get_latest_metric(self, metric_name: str) -> Any:
        entry = self._m.get(metric_name)
        if entry is None or not entry.values:
            raise ValueError(f"No values have been recorded for the metric {metric_name}")
        return entry.values[-1]

    @property
    def metric_name_prefix(self) -> str:
        return self._prefix

    @property
    def current_epoch(self) -> int:
        return self._epoch

    # -- writes: the mirror first, then the queue (world-process-zero only) -------------

    def set_metric_name_prefix(self, prefix: str = "") -> None:
        if not isinstance(prefix, str):
            raise TypeError(f"The metric name prefix must be a str, not {type(prefix).__qualname__}.")
        self._prefix = prefix

    def update_metric(self, metric_name: str, metric_value: Any) -> None:
        # The training loop's hot path: no function calls for a float, one append to the queue.
        # The writer thread encodes floats; anything else is encoded (and checked) right here.
        if self._closed:
            self._check_open()
        if type(metric_name) is not str:
            raise TypeError(
                f"A metric name must be a str, not {type(metric_name).__qualname__} ({metric_name!r})."
            )
        name = self._prefix + metric_name
        stored: Any
        if type(metric_value) is float and metric_value:  # values.queued_raw, inlined
            code, stored = w.POINT, metric_value
        else:  # zeros too: -0.0 needs a flag that only Python can set
            code, stored = w.POINT_ENC, encode(metric_value, name)
        entry = self._m.get(name)
        if entry is None:
            entry = self._start_series(name)
        values, epoch = entry.values, self._epoch
        seq = len(values)
        if entry.last_epoch != epoch:
            entry.marks.append((epoch, seq))
            entry.last_epoch = epoch
        values.append(metric_value)
        if self._put_point is not None:
            self._put_point(code, entry.token, seq, epoch, stored)

    def _start_series(self, name: str) -> Series:
        check_name("metric name", name)  # once per name and stage: not on the hot path
        token = new_token()
        self._m[name] = entry = Series([], [], token)
        self._stage_used = True
        self._put((w.SERIES, token, name))
        return entry

    def delete_metric(self, metric_name: str) -> None:
        self._check_open()
        entry = self._m.get(metric_name)
        if entry is None or not entry.values:
            raise KeyError(metric_name)
        del self._m[metric_name]
        self._put((w.DELETE, entry.token))

    def reset(self) -> None:
        """Start a new stage of the run: the mirror is cleared, the epoch is 1 again.

        Nothing stored is removed. A stage with no metrics and no config yet is reused rather
        than leaving an empty stage behind (the trainer resets at the start of every run).
        """
        self._check_open()
        self._put((w.STAGE, self._stage_used, now_ms()))
        self._epoch, self._stage_used, self._m, self._step_bound = 1, False, {}, None

    def _increment_epoch(self) -> None:
        """Move to the next epoch; on world-process-zero, return once the epoch is committed."""
        self._check_open()
        self._epoch += 1
        if self._writer is not None:
            self._writer.put((w.EPOCH, self._epoch))
            if not self._writer.flush(EPOCH_COMMIT_TIMEOUT_S, give_up_on_error=True):
                log.warning(
                    "runhistory-sql: epoch %d is not committed yet (%s); training goes on and "
                    "the points stay queued.", self._epoch - 1, self._writer.last_error_text,
                )

    def _set_epoch(self, epoch: int) -> None:
        """Set the epoch, as the trainer does when resuming from a checkpoint.

        Points of the current stage recorded at ``epoch`` or later are superseded: dropped from
        the mirror and from ``v_metrics``, kept in the table (the trainer re-runs that epoch).
        """
        self._check_open()
        epoch = as_epoch(epoch)
        if epoch < 0:
            raise ValueError(f"The epoch must be a non-negative int, not {epoch!r}.")
        for entry in self._m.values():
            entry.truncate(epoch)
        self._epoch = epoch
        self._put((w.REWIND, epoch, now_ms()))
        # rare (once per resume): commit now, so no superseded point lingers in v_metrics
        self.flush(EPOCH_COMMIT_TIMEOUT_S)

    # -- steps and params (plain accelerate loops, SQLTracker): the rules are in .steps, .params --

    def log_metrics(self, values: Mapping[str, Any], step: int) -> None:
        """Record each value (name -> value, by ``update_metric``'s rules) as a point at ``step``
        (an int >= 0, not before that metric's last step) in the current stage and epoch; all
        of them, or none if one is refused (:func:`.steps.log_metrics`)."""
        self._check_open()
        steps.log_metrics(self, values, step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters (:mod:`.params`): a changed value is a new row, the old one kept;
        an unchanged one records nothing; a bad one (a ``TypeError`` naming it) records nothing."""
        self._check_open()
        rows = self._params.changes(params)
        if rows:
            self._put((w.PARAMS, now_ms(), rows))

    @property
    def params(self) -> dict[str, Any]:
        """The run's current params, key -> value (loaded on resume)."""
        return self._params.values

    @property
    def last_step(self) -> int | None:
        """The largest step of the current stage's effective points (``None``: none has one)."""
        return steps.last_step(self._m)

    def rewind_to_step(self, step: int) -> None:
        """Supersede the current stage's effective points at ``step`` or later (kept, flagged, out of
        ``v_metrics`` and the mirror) with a ``rewind`` event; committed before it returns."""
        self._check_open()
        to_step = steps.as_step(step)
        self._step_bound = steps.truncate_to_step(self._m, to_step)
        self._put((w.STEP_REWIND, to_step, self._epoch, now_ms()))
        self.flush(EPOCH_COMMIT_TIMEOUT_S)

    # -- the run ------------------------------------------------------------------------

    def log_event(self, kind: str, **payload: Any) -> None:
        """Record an event of the run (a learning-rate change, a checkpoint) at the current epoch.

        :param kind: what happened, e.g. ``"checkpoint"``
        :param payload: details: numbers, str, dict, list, None, tensors and numpy values
        :raises TypeError: for anything else in the payload, as ``update_metric`` would
        """
        if not isinstance(kind, str) or not kind:
            raise TypeError(f"An event kind must be a non-empty str, not {kind!r}.")
        check_name("event kind", kind)
        self._check_open()
        body = event_json(kind, payload)  # the rule of metric values; NaN as the string "NaN"
        self._put((w.EVENT, kind, self._epoch, now_ms(), body))

    def record_config(self, kind: str, fields: dict[str, Any]) -> None:
        """Snapshot a ``TrainerRunConfig`` (as JSON-safe ``fields``) into the current stage.

        :param kind: ``"train"`` or ``"evaluate"``
        :param fields: field name -> JSON-safe value, e.g. from ``snapshot.dataclass_fields``
        """
        self._check_open()
        if kind not in ("train", "evaluate"):
            raise ValueError(f"kind must be 'train' or 'evaluate', not {kind!r}.")
        self._stage_used = True
        self._put((w.CONFIG, {"kind": kind, "captured_at": now_ms(), **config_row(fields)}))

    def set_in_run(self, in_run: bool) -> None:
        """Say whether a ``train()``/``evaluate()`` is in progress (an exit meanwhile is a failure)."""
        self._in_run = in_run

    def _check_open(self) -> None:
        if self._closed:
            raise RunHistorySQLError(
                f"{self!r} is closed: nothing more can be recorded. Open a new one with "
                "resume='allow' to continue the run."
            )

    def _put(self, op: tuple[Any, ...]) -> None:
        if self._writer is not None:
            self._writer.put(op)

    @property
    def set_aside_path(self) -> Path | None:
        """The file of operations the database refused (each also a ``write_error`` event), or
        ``None`` while there is none."""
        return self._writer.set_aside.path if self._writer is not None else None

    @property
    def is_writer(self) -> bool:
        """Whether this process writes to the database (world-process-zero)."""
        return self._writer is not None

    @property
    def write_transactions(self) -> int:
        """How many write transactions this process has committed (0 on other ranks)."""
        return self._writer.transactions if self._writer is not None else 0

    @property
    def url(self) -> str:
        """The database URL, with any password masked."""
        return mask(self._engine.url)

    def flush(self, timeout: float | None = None) -> bool:
        """Commit everything recorded so far; return whether it happened within ``timeout``."""
        return self._writer.flush(timeout) if self._writer is not None else True

    def close(self, status: str = "finished", *, timeout: float | None = CLOSE_TIMEOUT_S) -> Path | None:
        """Commit everything pending, mark the run ``status`` and release the database.

        If the database cannot take the pending operations within ``timeout``, they are saved
        to a spill file (JSON lines) whose path is logged and returned; load it later with
        ``runhistory-sql import-spill FILE``. Nothing is lost.

        :param status: ``"finished"`` or ``"failed"``
        :param timeout: how long to wait for the database, in seconds (``None``: for ever); a
            commit still in flight then gets up to 5 s more
        :return: ``None``, or the path of the spill file
        :raises ValueError: ``status`` is not one ``close()`` may store
        """
        if status not in END_STATUSES:
            raise ValueError(
                f"A run is closed 'finished' or 'failed', not {status!r}: close(status='failed') marks a "
                "run that went wrong."
            )
        return self._close(status, timeout, IN_FLIGHT_S)

    def _close(self, status: str, timeout: float | None, grace: float) -> Path | None:
        if self._closed:
            return self.spill_path
        self._closed = True
        lifecycle.unregister(self)
        try:
            if self._writer is not None:
                self.spill_path = self._writer.close(status, timeout, grace=grace)
        finally:
            self._engine.dispose()
        if self.spill_path is not None and self._writer is not None:
            print(f"runhistory-sql: {self._writer.unwritten_because}; pending points saved to {self.spill_path}. "
                  f"Load them with: runhistory-sql import-spill {self.spill_path}", file=sys.stderr)
        return self.spill_path

    def close_at_exit(self, exit_code: Any, error: BaseException | None, *, signalled: bool = False) -> None:
        """Close at the end of the process: ``failed`` after an uncaught exception, a non-zero
        exit code, or an exit in the middle of a training or evaluation run; else ``finished``.
        Nothing to do if it is closed already (the user's own error then goes on unchanged).

        :param signalled: the process is ending on SIGTERM: it must be done within ``term_timeout``
        """
        if self._closed:
            return
        status, event = lifecycle.exit_outcome(exit_code, error, self._in_run)
        if event is not None:
            self.log_event(event[0], **event[1])
        if signalled:  # preemption: a grace period of seconds, not the minute close() may wait
            grace = min(TERM_GRACE_S, self._term_timeout)
            self._close(status, self._term_timeout - grace, grace)
        else:
            self.close(status)

    def __enter__(self) -> "SQLRunHistory":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is SystemExit:
            self.close_at_exit(exc.code, None)
        else:
            self.close_at_exit(None, exc)

    def __repr__(self) -> str:
        return f"SQLRunHistory({self.url!r}, experiment={self.experiment!r}, run_name={self.run_name!r})"

