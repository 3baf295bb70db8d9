"""What counts when reading: the effective points of a series and the live series of a run.

A point is *effective* when no rewind superseded it (``rev = 0``, see :mod:`.schema`); a series
is *live* when ``delete_metric`` has not flagged it and it has effective points. The read side
and the write side spell both rules only here (the views in the migrations spell them in SQL of
their own).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, select

from .engine import placeholder
from .schema import metrics, points, series, stages

#: A point that no rewind superseded.
EFFECTIVE: ColumnElement[bool] = points.c.rev == 0
#: A series that is neither deleted nor empty.
LIVE: ColumnElement[bool] = and_(series.c.deleted.is_(False), series.c.n_points > 0)
#: The order in which the first series of each metric is of the latest stage that has it (keep
#: the first row per metric): the rule for "a run's metric" everywhere on the read side.
LATEST_FIRST = (stages.c.idx.desc(), series.c.id.desc())


def effective_points(conn: Connection) -> str:
    """``FROM points WHERE series_id = ? AND rev = 0``: the effective points of one series, for
    the raw driver (:func:`~runhistory_sql.db.engine.fetch_raw`, the series id its first
    parameter); callers append further conditions with ``AND``."""
    return f"FROM points WHERE series_id = {placeholder(conn)} AND rev = 0"


def live_series(*columns: Any) -> Select[Any]:
    """``SELECT columns`` from the live series joined to their metric and stage (the columns
    may be of ``series``, ``metrics`` and ``stages``; join further tables onto the result)."""
    return (
        select(*columns)
        .select_from(series)
        .join(metrics, metrics.c.id == series.c.metric_id)
        .join(stages, stages.c.id == series.c.stage_id)
        .where(LIVE)
    )


def last_point_join() -> ColumnElement[bool]:
    """The join condition from a series to its last effective point (the effective seqs of a
    series are ``0 .. n_points - 1``, so this is one primary-key lookup)."""
    return and_(points.c.series_id == series.c.id, EFFECTIVE, points.c.seq == series.c.n_points - 1)
