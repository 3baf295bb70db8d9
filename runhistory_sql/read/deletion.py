"""Deleting a run: the only operation of runhistory-sql that removes recorded data.

Everything recorded for the run goes in one transaction (all or nothing); the experiment, the
metric names and every other run stay. A run that a live process still holds is refused, as
:mod:`runhistory_sql.write.run` decides liveness for resuming: on the same host by its pid, across
hosts by its heartbeat.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select

from ..db.engine import writer_engine
from ..db.schema import configs, events, params, point_blocks, points, runs, series, stages
from ..errors import RunInUseError, RunNotFoundError
# the one place the read side asks the write side: who holds a run (a live run is never deleted)
from ..write import lifecycle
from ..write.run import holder_alive


def delete_run(engine: Engine, run_id: int) -> dict[str, int]:
    """Delete the run ``run_id`` and its points, series, configs, events, stages and params.

    :return: the number of rows removed per table, e.g. ``{"points": 6, "series": 2, ...,
        "runs": 1}``
    :raises RunInUseError: a live process holds the run
    :raises RunNotFoundError: the run is gone (deleted meanwhile)
    """
    # SQLite: BEGIN IMMEDIATE takes the write lock first, so no writer slips in between the
    # liveness check and the deletes; PostgreSQL: the run's row is locked FOR UPDATE
    with writer_engine(engine).begin() as conn:
        row = conn.execute(select(runs).where(runs.c.id == run_id).with_for_update()).first()
        if row is None:
            raise RunNotFoundError(f"There is no run with id {run_id}. List them with: runhistory-sql runs")
        _refuse_if_held(row)
        return _delete_rows(conn, run_id)


def _refuse_if_held(row: Any) -> None:
    if row.uuid in lifecycle.held_uuids():
        raise RunInUseError(
            f"Run {row.name!r} is open for writing in this process. close() its SQLRunHistory "
            "first, then delete it."
        )
    if holder_alive(row):
        raise RunInUseError(
            f"Run {row.name!r} is held by live process {row.pid} on {row.host}. Wait for it to "
            "end (or stop it), then delete the run."
        )


def count_rows(conn: Connection, run_id: int) -> dict[str, int]:
    """How many rows :func:`delete_run` would remove from each table (points: superseded ones
    too), e.g. to ask before deleting."""
    counted = {"points": conn.execute(select(func.count()).where(_points_of(run_id))).scalar_one()}
    for table in (series, configs, events, stages, params):
        counted[table.name] = conn.execute(select(func.count()).select_from(table).where(table.c.run_id == run_id)).scalar_one()
    counted["runs"] = conn.execute(select(func.count()).select_from(runs).where(runs.c.id == run_id)).scalar_one()
    return counted


def _series_of(run_id: int) -> Any:
    return select(series.c.id).where(series.c.run_id == run_id)


def _points_of(run_id: int) -> Any:
    return points.c.series_id.in_(_series_of(run_id))


def _delete_rows(conn: Connection, run_id: int) -> dict[str, int]:
    """Delete the rows in the order the foreign keys need: the children of a table first."""
    removed = {"points": conn.execute(delete(points).where(_points_of(run_id))).rowcount}
    # the block summaries are derived from the points (not counted: they were never recorded)
    conn.execute(delete(point_blocks).where(point_blocks.c.series_id.in_(_series_of(run_id))))
    for table in (series, configs, events, stages, params):
        removed[table.name] = conn.execute(delete(table).where(table.c.run_id == run_id)).rowcount
    removed["runs"] = conn.execute(delete(runs).where(runs.c.id == run_id)).rowcount
    return removed
