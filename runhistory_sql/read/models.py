"""What the read side returns: one type per concept (a run, a metric's stats, a run's report,
a comparison of runs, a config snapshot, an event). Times are timezone-aware UTC ``datetime``."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


#: One effective point of a metric, as :meth:`RunStore.history` returns it: ``(seq, epoch, value,
#: recorded_at_ms, step)``; ``step`` is ``None`` for the Trainer's points. A plain tuple, as the
#: driver returns it: a long history is read without a Python object per point (a named tuple
#: would make reading a million points about 2.5 times slower).
Point = tuple[int, int, Any, int, "int | None"]


@dataclass(frozen=True)
class Param:
    """One logged value of a run's hyperparameter (a ``params`` row): a change is a new one."""

    key: str
    value: Any
    recorded_at: dt.datetime
    #: whether it is the key's current value (its latest row)
    current: bool


@dataclass(frozen=True)
class MetricStat:
    """A metric of one run, in the latest stage that has effective points of it.

    NaN is never the ``min``, ``max`` or ``best``; they are ``None`` when the metric has no number
    that is not NaN (e.g. values that are dicts), while ``last`` is whatever was recorded last.
    """

    metric: str
    #: the stage (1 = the first ``train()``) the numbers are of: the latest that has the metric
    stage: int
    #: effective points (superseded ones are not counted)
    count: int
    last: Any
    min: float | None
    max: float | None
    #: ``"min"`` or ``"max"``: which way is better (see :func:`~runhistory_sql.read.summaries.goal_of`)
    goal: str
    #: the epoch of the first point with the best value; ``None`` when there is no best, and in
    #: :meth:`RunStore.runs` / :meth:`RunStore.run`, which do not read it (a lookup per metric)
    best_epoch: int | None = None
    #: the step of that point (:meth:`SQLRunHistory.log_metrics`, ``SQLTracker``); ``None`` for a
    #: point without a step (the Trainer's) and where ``best_epoch`` is not read
    best_step: int | None = None

    @property
    def best(self) -> float | None:
        """The min or the max, as :attr:`goal` says."""
        return self.extreme(self.goal)

    def extreme(self, goal: str) -> float | None:
        """The min for ``goal="min"``, else the max."""
        return self.min if goal == "min" else self.max


@dataclass(frozen=True)
class Run:
    """A run: the columns of ``v_runs`` in their order (times as UTC ``datetime``, ``tags``
    decoded), then its epochs, its duration and the stats of its metrics."""

    run_id: int
    run_uuid: str
    experiment: str
    run_name: str
    #: ``running``, ``finished``, ``failed`` or ``crashed``
    status: str
    created_at: dt.datetime
    ended_at: dt.datetime | None
    #: the history's ``current_epoch`` in the run's latest stage
    current_epoch: int
    num_stages: int
    host: str | None
    tags: dict[str, Any]
    #: the highest epoch with an effective point, in any stage (0: no points yet)
    epochs: int
    #: until the end; for a run still running until now, else (crashed) until its last heartbeat
    duration_s: float
    #: metric name -> its stats (``best_epoch`` not read), by name
    metrics: dict[str, MetricStat] = field(default_factory=dict)
    #: the process id recorded by the run's last writer (with :attr:`host`), ``None`` if none
    pid: int | None = None
    #: the largest step of the last points of its metrics; ``None`` when none has a step (the
    #: Trainer's runs)
    last_step: int | None = None
    #: its current params, key -> value (``SQLRunHistory.log_params``), in the order first logged
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigSnapshot:
    """The ``TrainerRunConfig`` of one ``train()`` or ``evaluate()`` call (a ``v_configs`` row).

    Example::

        snapshot.kind, snapshot.fields["num_epochs"], snapshot.fields["train_dl_kwargs"]["batch_size"]
    """

    #: the stage (1 = the first ``train()``) the call was made in
    stage: int
    #: ``"train"`` or ``"evaluate"``
    kind: str
    captured_at: dt.datetime
    #: the ``TrainerRunConfig`` fields in ``v_configs`` order (see
    #: :data:`~runhistory_sql.read.records.CONFIG_FIELDS`), the dataloader kwargs decoded to dicts
    fields: dict[str, Any]


@dataclass(frozen=True)
class Event:
    """Something that happened in a run (a ``v_events`` row): freeze/unfreeze, resume, stop,
    an error, an epoch's end or an event of the user's (``SQLRunHistory.log_event``)."""

    #: the event's id: orders events, also those recorded in the same millisecond
    event_id: int
    #: the stage it happened in; ``None`` when it happened before the run had one
    stage: int | None
    #: the epoch it happened in; ``None`` when it belongs to no epoch
    epoch: int | None
    #: e.g. ``"freeze"``, ``"resumed"``, ``"epoch_end"``
    kind: str
    recorded_at: dt.datetime
    #: the decoded JSON payload
    payload: Any


@dataclass(frozen=True)
class RunListing:
    """The runs, and the metrics shown for each with the goal they are ranked by."""

    metrics: dict[str, str]
    runs: list[Run]


@dataclass(frozen=True)
class RunReport:
    """Everything about one run, read on one connection (see :meth:`RunStore.report`)."""

    run: Run
    #: the ``TrainerRunConfig`` snapshots, in the order they were taken
    configs: list[ConfigSnapshot]
    #: the events in the order they happened (``epoch_end`` too)
    events: list[Event]
    #: each metric's stats with ``best_epoch``, ordered by name
    metrics: list[MetricStat]
    #: every logged value of its params, by key in the order first logged, then in time order
    param_history: list[Param] = field(default_factory=list)

    @property
    def params(self) -> dict[str, Any]:
        """The current params, key -> value."""
        return self.run.params


@dataclass(frozen=True)
class Comparison:
    """Runs side by side (see :meth:`RunStore.compare`)."""

    runs: list[Run]
    #: ``(field, [value per run])`` of the config fields that differ between the latest ``train``
    #: snapshot of each run (a run without one has ``None`` everywhere), in field order
    config_differences: list[tuple[str, list[Any]]]
    #: metric -> its stats per run (``None`` where a run lacks it), in the order asked
    metrics: dict[str, list[MetricStat | None]]
    #: ``(key, [current value per run])`` of the params whose values are not all the same (a run
    #: without the key has ``None``), in the order first logged
    param_differences: list[tuple[str, list[Any]]] = field(default_factory=list)

    @property
    def params(self) -> list[dict[str, Any]]:
        """The current params of each run, in the order of :attr:`runs`."""
        return [run.params for run in self.runs]
