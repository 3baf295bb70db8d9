"""What the read side returns: one type per concept (a run, a metric's stats, a run's report,
a comparison of runs). Times are timezone-aware UTC ``datetime``; config snapshots and events are
dicts (see :func:`~runhistory_sql.read.records.read_configs` and ``read_events``)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


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
    configs: list[dict[str, Any]]
    #: the events in the order they happened (``epoch_end`` too)
    events: list[dict[str, Any]]
    #: each metric's stats with ``best_epoch``, ordered by name
    metrics: list[MetricStat]


@dataclass(frozen=True)
class Comparison:
    """Runs side by side (see :meth:`RunStore.compare`)."""

    runs: list[Run]
    #: ``(field, [value per run])`` of the config fields that differ between the latest ``train``
    #: snapshot of each run (a run without one has ``None`` everywhere), in field order
    config_differences: list[tuple[str, list[Any]]]
    #: metric -> its stats per run (``None`` where a run lacks it), in the order asked
    metrics: dict[str, list[MetricStat | None]]
