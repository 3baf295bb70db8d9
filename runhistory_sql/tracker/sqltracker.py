"""``SQLTracker``: an accelerate ``GeneralTracker`` that records into the runhistory-sql store.

It wraps one :class:`~runhistory_sql.write.history.SQLRunHistory`, opened in ``start()`` on the
main process: the run's status, heartbeat, crash detection, failure events, exit hooks, the
background writer and the spill files are that history's, unchanged. ``log()`` records each
value as a point at its step (``SQLRunHistory.log_metrics``); the ``config`` of
``init_trackers`` and :meth:`SQLTracker.log_params` are the run's params.
"""
from __future__ import annotations

import logging
import numbers
from typing import Any, Mapping

from accelerate.tracking import GeneralTracker

from ..errors import InvalidArgumentError, RunHistorySQLError
from ..write.arguments import check_arguments, resolve_term_timeout
from ..db.clock import HEARTBEAT_S
from ..write.history import EPOCH_COMMIT_TIMEOUT_S, SQLRunHistory
from ..write.rank import world_process_index
from .checkpoint import Checkpoint, check_same_run, from_dict

log = logging.getLogger("runhistory_sql")


def _step_or_none(what: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 0:
        return int(value)
    raise InvalidArgumentError(f"{what} must be a non-negative int or None, not {value!r}.")


class SQLTracker(GeneralTracker):
    """An accelerate tracker that keeps every logged value in a SQL database, as points at steps.

    Example::

        from accelerate import Accelerator
        from runhistory_sql import SQLTracker

        tracker = SQLTracker("sqlite:///runs.db", experiment="glue-mrpc", run_name="bert-lr3e-5")
        accelerator = Accelerator(log_with=[tracker])
        accelerator.init_trackers("glue-mrpc", config={"lr": 3e-5, "model": "bert-base"})
        accelerator.log({"train_loss": 0.71, "lr": 3e-5}, step=0)
        accelerator.end_training()  # the run is finished

    accelerate hands a tracker instance neither the project name nor ``init_kwargs``, so the
    experiment is given here. ``Accelerator(log_with="runhistory_sql")`` (registered when
    :mod:`runhistory_sql.tracker` is imported, e.g. by ``from runhistory_sql import SQLTracker``)
    builds it from ``init_trackers``: the project name is the experiment, the other arguments
    come from ``init_kwargs={"runhistory_sql": {...}}``.

    Nothing touches the database before ``start()``, which accelerate calls on the main process
    only: construct it on every rank. Checkpointable: after
    ``accelerator.register_for_checkpointing(tracker)``, ``save_state`` stores the run and its
    last step (committing every point logged so far), and ``load_state`` rewinds the run to the
    step after it: the checkpoint's step is kept, later steps are superseded.

    :param url: database URL; else ``$RUNHISTORY_SQL_URL``; else ``sqlite:///runhistory.db``
    :param experiment: the experiment of the run
    :param run_name: the run's name, unique in the experiment; generated when ``None``
    :param resume: ``"never"``, ``"allow"`` or ``"must"``, as for ``SQLRunHistory``
    :param tags: a JSON-serialisable dict stored with a new run
    :param rewind_to_step: when continuing a run, supersede its points of this step and later
        at ``start()`` (as :meth:`rewind` would)
    :param auto_upgrade: upgrade a database at an older schema revision instead of raising
    :param flush_interval: the longest time, in seconds, a point waits before it is committed
    :param heartbeat_interval: how often, in seconds, the run's heartbeat is refreshed
    :param term_timeout: the SIGTERM bound, as for ``SQLRunHistory``
    :raises RunHistorySQLError: (subclasses) for arguments that cannot be used, at once
    """

    name = "runhistory_sql"
    requires_logging_directory = False
    main_process_only = True

    def __init__(
        self, url: str | None = None, *, experiment: str = "default", run_name: str | None = None,
        resume: str = "never", tags: dict[str, Any] | None = None, rewind_to_step: int | None = None,
        auto_upgrade: bool = False, flush_interval: float = 1.0, heartbeat_interval: float = HEARTBEAT_S,
        term_timeout: float | None = None,
    ) -> None:
        super().__init__()
        if url is not None and not isinstance(url, str):
            raise TypeError(f"url must be a database URL (str) or None, not {type(url).__qualname__}.")
        check_arguments(experiment, run_name, resume, tags, flush_interval, heartbeat_interval)
        resolve_term_timeout(term_timeout)  # checked now, on every rank; the history resolves it again
        self._rewind_to = _step_or_none("rewind_to_step", rewind_to_step)
        if self._rewind_to is not None and resume == "never":
            raise InvalidArgumentError(
                "rewind_to_step continues a run: pass resume='allow' or resume='must' with it."
            )
        self._url, self._experiment, self._run_name = url, experiment, run_name
        self._options: dict[str, Any] = {
            "resume": resume, "tags": tags, "auto_upgrade": auto_upgrade, "flush_interval": flush_interval,
            "heartbeat_interval": heartbeat_interval, "term_timeout": term_timeout,
        }
        self._history: SQLRunHistory | None = None
        #: the state ``load_state_dict`` was given; applied at ``start()`` if it came first
        self._loaded: Checkpoint | None = None
        self._pending = False

    # -- accelerate's contract ---------------------------------------------------------

    @property
    def tracker(self) -> SQLRunHistory | None:
        """The run's ``SQLRunHistory`` once started (``None`` before, and off the main process)."""
        return self._history

    def start(self) -> None:
        """Open (or continue) the run: on the main process only, once."""
        if self._history is not None or not _is_main():
            return
        if self._pending and self._loaded is not None:
            check_same_run(self._loaded, self._experiment, self._run_name)  # before anything is written
        self._history = history = SQLRunHistory(
            self._url, experiment=self._experiment, run_name=self._run_name, **self._options,
        )
        if self._rewind_to is not None:
            history.rewind_to_step(self._rewind_to)
        if self._pending and self._loaded is not None:
            history.rewind_to_step(self._loaded.first_superseded)
        self._pending = False

    def store_init_configuration(self, values: Mapping[str, Any]) -> None:
        """Record the ``config`` of ``init_trackers`` as the run's params (see :meth:`log_params`)."""
        self.log_params(values)

    def log(self, values: Mapping[str, Any], step: int | None = None, **kwargs: Any) -> None:
        """Record every value as a point at ``step`` (the step after the run's last one when ``None``).

        Numbers (``int``, ``float``, ``bool``, numpy scalars, 0-dim tensors) are stored as floats,
        NaN, ±inf and -0.0 exactly; ``str``, ``dict``, ``list``, ``None`` and multi-element
        tensors as JSON, as ``SQLRunHistory.update_metric`` stores them.

        All of ``values`` are recorded, or none. Within a metric steps never go back: log an
        earlier step again after :meth:`rewind`.

        :raises TypeError: for a value of another type, naming its key
        :raises InvalidArgumentError: (a ``ValueError``) a step before that metric's last one
        """
        if kwargs:
            raise TypeError(
                f"SQLTracker.log takes no options, got {sorted(kwargs)}: leave the 'runhistory_sql' "
                "entry out of log_kwargs."
            )
        history = self._history
        if history is None:
            if _is_main():
                self._not_started("log")
            return
        if step is None:
            last = history.last_step
            step = 0 if last is None else last + 1
        history.log_metrics(values, step)

    def finish(self) -> None:
        """Commit everything and mark the run ``finished`` (``accelerator.end_training()`` calls it)."""
        if self._history is not None:
            self._history.close("finished")

    # -- params, rewinds, checkpoints -------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters of the run (``SQLRunHistory.log_params``): nested dicts flattened
        with dots; numbers, ``str``, ``bool``, ``None``, lists as JSON. A changed value is a new
        row; the old one is kept. No-op off the main process."""
        history = self._history
        if history is None:
            if _is_main():
                self._not_started("log_params")
            return
        history.log_params(params)

    @property
    def params(self) -> dict[str, Any]:
        """The run's current params (``{}`` off the main process)."""
        return self._history.params if self._history is not None else {}

    def rewind(self, *, step: int) -> None:
        """Supersede every point of the run at ``step`` or later: kept in the table, flagged, out of
        ``v_metrics``, with a ``rewind`` event; committed before it returns. No-op off the main
        process. ``load_state`` does this by itself for a tracker registered for checkpointing."""
        if self._history is None:
            if _is_main():
                self._not_started("rewind")
            return
        self._history.rewind_to_step(step)

    @property
    def last_step(self) -> int | None:
        """The run's largest step (on the main process once started); else that of the checkpoint
        ``load_state`` loaded (on every process); else ``None``. A resumed loop goes on at
        ``last_step + 1``."""
        if self._history is not None:
            return self._history.last_step
        return self._loaded.last_step if self._loaded is not None else None

    def state_dict(self) -> dict[str, Any]:
        """The run and its last step, for ``accelerator.save_state``. On the main process every
        point logged so far is committed first, so that the checkpoint's steps survive a crash."""
        history = self._history
        if history is None:
            loaded = self._loaded
            return Checkpoint(
                self._experiment, self._run_name or "", None, loaded.last_step if loaded is not None else None,
            ).as_dict()
        if not history.flush(EPOCH_COMMIT_TIMEOUT_S):
            log.warning(
                "runhistory-sql: the points before this checkpoint are not committed yet; they stay "
                "queued (a crash now loses them)."
            )
        return Checkpoint(history.experiment, history.run_name, history.run_id, history.last_step).as_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rewind the run to the checkpoint (``accelerator.load_state`` calls it on every process):
        points of the checkpoint's last step and before are kept, later ones superseded. Before
        ``start()``, the rewind happens in ``start()``.

        :raises InvalidArgumentError: the checkpoint belongs to another run
        """
        checkpoint = from_dict(state)
        self._loaded = checkpoint
        history = self._history
        if history is None:
            self._pending = True
            return
        check_same_run(checkpoint, history.experiment, history.run_name)
        history.rewind_to_step(checkpoint.first_superseded)

    def _not_started(self, what: str) -> None:
        raise RunHistorySQLError(
            f"SQLTracker.{what}() before the tracker started: call accelerator.init_trackers(...) first "
            "(it calls start() on the main process)."
        )

    def __repr__(self) -> str:
        where = self._history.url if self._history is not None else self._url
        name = self._history.run_name if self._history is not None else self._run_name
        return f"SQLTracker({where!r}, experiment={self._experiment!r}, run_name={name!r})"


class RegisteredSQLTracker(SQLTracker):
    """The form accelerate builds for ``log_with="runhistory_sql"``:
    ``RegisteredSQLTracker(project_name, **init_kwargs["runhistory_sql"])``, where the project
    name is the experiment."""

    def __init__(self, project_name: str, **kwargs: Any) -> None:
        if "experiment" in kwargs:
            raise InvalidArgumentError(
                "With log_with='runhistory_sql' the project name of init_trackers is the experiment: "
                "leave 'experiment' out of init_kwargs['runhistory_sql']."
            )
        super().__init__(experiment=project_name, **kwargs)


def _is_main() -> bool:
    return world_process_index() == 0


def register() -> bool:
    """Register ``log_with="runhistory_sql"`` with accelerate; ``False`` where the installed
    accelerate cannot (before 1.15: use the instance form)."""
    try:
        from accelerate.tracking import register_tracker_class
    except ImportError:
        return False
    register_tracker_class(RegisteredSQLTracker)
    return True


register()
