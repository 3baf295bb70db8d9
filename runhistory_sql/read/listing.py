"""Listing runs with the last and best values of their key metrics, for ``runhistory-sql runs``.

Everything comes from the per-series summaries the writer keeps (``series.n_points``,
``min_value``, ``max_value``) and one primary-key lookup per series for its last point, so listing
thousands of runs never reads their histories.
"""
from __future__ import annotations

import json
from typing import Any, Collection, Iterable, Sequence

from sqlalchemy import Connection, text

from ..db.clock import now_ms, pid_gone, this_host
from ..db.effective import LATEST_FIRST, last_point_join, live_series
from ..db.schema import metrics, points, series, stages
from ..errors import InvalidArgumentError, RunNotFoundError
from .filters import Condition, where_sql
from .models import MetricStat, Run, RunListing
from .params import current_params
from .records import utc
from .summaries import GOALS, goal_of
from ..db.values import decode

#: At most this many key metrics are chosen when none are asked for.
MAX_KEY_METRICS = 3


def parse_sort(spec: str) -> tuple[str, str]:
    """Split ``"METRIC[:min|max]"`` into the metric and its goal (from the name, :func:`goal_of`,
    when not given).

    :raises InvalidArgumentError: the part after the colon is not ``min`` or ``max``
    """
    metric, colon, direction = spec.rpartition(":")
    if not colon:
        metric, direction = spec, goal_of(spec)
    if not metric or direction not in GOALS:
        raise InvalidArgumentError(f"Sort by METRIC or METRIC:min or METRIC:max, e.g. eval_loss_epoch, not {spec!r}.")
    return metric, direction


def list_runs(
    conn: Connection, *, experiment: str | None = None, status: str | None = None, name_like: str | None = None,
    sort: str | None = None, limit: int | None = None, metrics: Sequence[str] = (), where: Sequence[Condition] = (),
) -> RunListing:
    """The runs as ``runhistory-sql runs`` lists them, with the last and best of their key metrics.

    Example::

        listing = list_runs(conn, experiment="mnist", sort="eval_loss_epoch", limit=10)
        for run in listing.runs:
            print(run.run_name, run.metrics["eval_loss_epoch"].extreme("min"))

    :param sort: ``METRIC[:min|max]``: order by the metric's best value (lowest first for
        ``min``; the default goal comes from the name, see :func:`goal_of`); runs without it go
        last, ties by id. Default: by run id. The sort metric is always among those shown.
    :param name_like: a SQL ``LIKE`` pattern on the run name, e.g. ``"resnet-%"``
    :param limit: keep this many runs, after sorting
    :param metrics: the metrics to show; default: the metrics ending in ``_epoch`` that the
        listed runs have, at most :data:`MAX_KEY_METRICS`, by name
    :param where: conditions on params and tags (:mod:`.filters`), all of which a run meets
    :raises InvalidArgumentError: a bad ``sort``, or a metric asked for that none of the listed runs has
    """
    sort_metric, sort_goal = parse_sort(sort) if sort else (None, None)
    clause, params = runs_filter(experiment, status, name_like, where=where, dialect=conn.dialect.name, dead=dead_runs(conn))
    listed = read_runs(conn, f"SELECT run_id FROM v_runs{clause}", params)
    names = {metric for row in listed for metric in row.metrics}
    chosen = list(dict.fromkeys(metrics)) or key_metrics(names)
    if sort_metric is not None and sort_metric not in chosen:
        chosen.insert(0, sort_metric)
    if listed:
        check_metrics(chosen, names, "the listed runs")
    goals = {m: goal_of(m) for m in chosen}
    if sort_metric is not None and sort_goal is not None:
        goals[sort_metric] = sort_goal
        listed.sort(key=lambda r: _sort_key(r, sort_metric, sort_goal))
    return RunListing(goals, listed[:limit] if limit is not None else listed)


def read_runs(conn: Connection, ids: str, params: dict[str, Any]) -> list[Run]:
    """The runs whose ids ``ids`` gives (SQL for ``IN (...)``: a subquery, e.g. on ``v_runs``
    with :func:`runs_filter`, or a bound ``:run_id``), by id, with the stats of their metrics."""
    rows = conn.execute(text(f"{_RUNS_SQL} WHERE v.run_id IN ({ids}) ORDER BY v.run_id"), params).all()
    stats, epochs, steps = _series_stats(conn, ids, params)
    found = current_params(conn, [row.run_id for row in rows])
    now, dead = now_ms(), set(dead_runs(conn))
    return [
        _run(row, stats.get(row.run_id, {}), epochs.get(row.run_id, 0), now, steps.get(row.run_id), found.get(row.run_id, {}),
             row.run_id in dead)
        for row in rows
    ]


def dead_runs(conn: Connection) -> list[int]:
    """The ids of the runs still marked running whose recorded process, on this host, is gone
    (:func:`~runhistory_sql.db.clock.pid_gone`): they read ``crashed`` at once, without waiting
    for their heartbeat to go stale. Elsewhere the heartbeat decides, as ``v_runs`` says."""
    found = conn.execute(
        text("SELECT id, host, pid FROM runs WHERE status = 'running' AND host = :host"), {"host": this_host()},
    )
    return [row.id for row in found if pid_gone(row.host, row.pid)]


def status_sql(dead: Collection[int], column: str = "status", run_id: str = "run_id") -> str:
    """The SQL of a run's status on ``v_runs``: the view's, or ``crashed`` for the ``dead``
    runs (see :func:`dead_runs`; their ids are integers from the database, inlined)."""
    if not dead:
        return column
    listed = ", ".join(str(int(i)) for i in sorted(dead))
    return f"(CASE WHEN {run_id} IN ({listed}) THEN 'crashed' ELSE {column} END)"


def key_metrics(names: Iterable[str]) -> list[str]:
    """The metrics to show when none are asked for: those ending in ``_epoch``, by name, at most
    :data:`MAX_KEY_METRICS`."""
    return sorted(m for m in set(names) if m.endswith("_epoch"))[:MAX_KEY_METRICS]


def check_metrics(asked: Iterable[str], names: Collection[str], runs: str = "the runs") -> None:
    """Check that every metric in ``asked`` is among ``names``, the metrics that ``runs`` have.

    :raises InvalidArgumentError: one is not, with the names to choose from
    """
    missing = [m for m in asked if m not in names]
    if missing:
        known = ", ".join(sorted(names)) or "(none)"
        raise InvalidArgumentError(f"None of {runs} has the metric {missing[0]!r}. Their metrics: {known}.")


_RUNS_SQL = (
    "SELECT v.run_id, v.run_uuid, v.experiment, v.run_name, v.status, v.host, v.tags, v.current_epoch, v.num_stages, "
    "r.created_at, r.ended_at, r.heartbeat_at, r.pid FROM v_runs v JOIN runs r ON r.id = v.run_id"
)


def runs_filter(
    experiment: str | None = None, status: str | None = None, name_like: str | None = None, *,
    where: Sequence[Condition] = (), dialect: str = "sqlite", dead: Collection[int] = (),
) -> tuple[str, dict[str, Any]]:
    """A ``WHERE`` clause on ``v_runs`` (``""`` for no filter) and its bound values.

    :param name_like: a SQL ``LIKE`` pattern on the run name
    :param where: conditions on params and tags (:func:`.filters.where_sql`)
    :param dialect: the database's (``conn.dialect.name``): how tags are read differs
    :param dead: the runs that read ``crashed`` whatever ``v_runs`` says (:func:`dead_runs`)
    """
    parts, params = [], {}
    for key, column, value in (("experiment", "experiment", experiment), ("status", status_sql(dead), status)):
        if value is not None:
            parts.append(f"{column} = :{key}")
            params[key] = value
    if name_like is not None:
        parts.append("run_name LIKE :name_like")
        params["name_like"] = name_like
    for i, condition in enumerate(where):
        sql, bound = where_sql(condition, dialect, f"w{i}_", "v_runs.run_id")
        parts.append(sql)
        params.update(bound)
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


def _series_stats(
    conn: Connection, ids: str, params: dict[str, Any],
) -> tuple[dict[int, dict[str, MetricStat]], dict[int, int], dict[int, int]]:
    """The summaries of every live series of the runs ``ids`` gives, each run's highest epoch
    and the highest step of its series' last points (runs with one). The last point of a series
    is one primary-key lookup: the effective seqs of a series are 0 .. n_points - 1."""
    query = (
        live_series(
            series.c.run_id, metrics.c.name, stages.c.idx, series.c.n_points, series.c.min_value, series.c.max_value,
            points.c.value, points.c.special, points.c.value_json, points.c.epoch, points.c.step,
        )
        .join(points, last_point_join())
        .where(text(f"series.run_id IN ({ids})"))
        .order_by(*LATEST_FIRST)
    )
    stats: dict[int, dict[str, MetricStat]] = {}
    epochs: dict[int, int] = {}
    steps: dict[int, int] = {}
    for run_id, name, stage, count, low, high, value, special, value_json, epoch, step in conn.execute(query, params):
        stat = MetricStat(name, stage, count, decode(value, special, value_json), low, high, goal_of(name))
        stats.setdefault(run_id, {}).setdefault(name, stat)  # the first is of the latest stage
        epochs[run_id] = max(epochs.get(run_id, 0), epoch)
        if step is not None:
            steps[run_id] = max(steps.get(run_id, step), step)
    return stats, epochs, steps


def _run(row: Any, stats: dict[str, MetricStat], epochs: int, now: int, last_step: int | None,
         params: dict[str, Any], dead: bool = False) -> Run:
    status = "crashed" if dead else row.status
    end = row.ended_at if row.ended_at is not None else (now if status == "running" else row.heartbeat_at)
    created = utc(row.created_at)
    assert created is not None
    tags = json.loads(row.tags) if isinstance(row.tags, str) else dict(row.tags or {})
    return Run(
        run_id=row.run_id, run_uuid=str(row.run_uuid), experiment=row.experiment, run_name=row.run_name,
        status=status, created_at=created, ended_at=utc(row.ended_at), current_epoch=row.current_epoch,
        num_stages=row.num_stages, host=row.host, tags=tags, epochs=epochs, pid=row.pid,
        duration_s=max(0, (end or row.created_at) - row.created_at) / 1000, metrics=dict(sorted(stats.items())),
        last_step=last_step, params=params,
    )


def _sort_key(run: Run, metric: str, goal: str) -> tuple[bool, float, int]:
    stat = run.metrics.get(metric)
    best = stat.extreme(goal) if stat is not None else None
    if best is None or best != best:
        return (True, 0.0, run.run_id)
    return (False, best if goal == "min" else -best, run.run_id)


def find_run(conn: Connection, name_or_id: str | int, experiment: str | None = None) -> int:
    """The id of the run named (or numbered) so: the one rule for finding a run
    (:meth:`RunStore.run_id <runhistory_sql.read.store.RunStore.run_id>`).

    :raises RunNotFoundError: no such run, or the name is in several experiments
    """
    key = "run_id" if isinstance(name_or_id, int) else "run_name"
    sql = f"SELECT run_id, experiment FROM v_runs WHERE {key} = :key" + (" AND experiment = :experiment" if experiment else "")
    found = list(conn.execute(text(sql), {"key": name_or_id, "experiment": experiment}))
    if len(found) == 1:
        return int(found[0].run_id)
    where = f" in experiment {experiment!r}" if experiment else ""
    if not found:
        what = f"with id {name_or_id}" if key == "run_id" else f"named {name_or_id!r}"
        by_id = ""
        if isinstance(name_or_id, str) and name_or_id.isascii() and name_or_id.isdigit():
            by_id = f" For the run with id {name_or_id}, give id:{name_or_id} (in Python: the int {name_or_id})."
        raise RunNotFoundError(f"There is no run {what}{where}.{by_id} List them with: runhistory-sql runs")
    found.sort(key=lambda r: r.experiment)
    names = ", ".join(repr(r.experiment) for r in found)
    ids = " or ".join(f"id:{r.run_id}" for r in found)
    raise RunNotFoundError(
        f"{len(found)} runs are named {name_or_id!r} (in experiments {names}); choose one with "
        f"experiment= (in the CLI: --experiment), or give the run id (in the CLI: {ids})."
    )
