"""Metric histories across runs as one pandas DataFrame (the ``pandas`` extra).

Points are read series by series with the raw driver into numpy arrays: no SQLAlchemy row and
no Python object per point, except for the rare values that are not plain numbers (-0.0, which
the float column cannot tell from 0.0, and JSON values).
"""
from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Connection

from ..db.effective import effective_points, live_series
from ..db.engine import fetch_raw
from ..errors import MissingExtraError
from ..db.schema import SPECIAL_NEG_ZERO, experiments, metrics, runs, series, stages

#: The columns of :func:`read_frame`'s DataFrame, in order (``value_json`` is added on request).
COLUMNS = ("experiment", "run_name", "run_id", "stage", "metric", "seq", "epoch", "value", "recorded_at")



def import_pandas() -> Any:
    """Return the ``pandas`` module.

    :raises MissingExtraError: pandas is not installed (with the ``pip install`` that fixes it)
    """
    try:
        import pandas
    except ImportError as e:
        raise MissingExtraError(
            'Reading runs as a DataFrame needs pandas, which is not installed. Install it with: '
            'pip install "runhistory-sql[pandas]"'
        ) from e
    return pandas


def read_frame(
    conn: Connection, run_ids: Sequence[int] | None = None, metric_names: Sequence[str] | None = None, *,
    experiment: str | None = None, stage: int | None = None, value_json: bool = False,
) -> Any:
    """Return the effective points of the chosen series as a DataFrame, ordered by run id,
    stage, metric name and seq. ``None`` for a filter means all. ``experiment``, ``run_name``
    and ``metric`` are categorical, their categories in order of appearance.

    :param value_json: add a ``value_json`` column: the JSON text of values that are not
        numbers (their ``value`` is NaN), missing for numbers
    """
    pd = import_pandas()
    import numpy as np

    found = conn.execute(series_query(run_ids, metric_names, experiment, stage)).all()
    parts = [_points(conn, row.id, value_json) for row in found]
    lengths = [len(part[0]) for part in parts]
    table = np.concatenate([part[0] for part in parts]) if parts else np.empty((0, 4))

    def repeat(key: str) -> Any:
        return np.repeat(np.array([getattr(row, key) for row in found], dtype=np.int64), lengths)

    def labels(key: str) -> Any:  # categorical: a code per point, not a string object
        names = [getattr(row, key) for row in found]
        position = {name: i for i, name in enumerate(dict.fromkeys(names))}
        codes = np.repeat(np.array([position[name] for name in names], dtype=np.int32), lengths)
        return pd.Categorical.from_codes(codes, categories=list(position))

    times = repeat("created_at") + table[:, 3].astype(np.int64)
    columns = {
        "experiment": labels("experiment"), "run_name": labels("run_name"), "run_id": repeat("run_id"),
        "stage": repeat("idx"), "metric": labels("metric"), "seq": table[:, 0].astype(np.int64),
        "epoch": table[:, 1].astype(np.int64), "value": table[:, 2].copy(),
        "recorded_at": pd.DatetimeIndex(times.astype("datetime64[ms]")).tz_localize("UTC"),
    }
    if value_json:
        columns["value_json"] = np.concatenate([part[1] for part in parts]) if parts else np.empty(0, dtype=object)
    return pd.DataFrame(columns)


def series_query(
    run_ids: Sequence[int] | None, metric_names: Sequence[str] | None, experiment: str | None, stage: int | None,
) -> Any:
    """The live series of the runs (all when ``None``) and metrics asked for, with their run's
    coordinates: the plan shared by :func:`read_frame` and the export."""
    query = (
        live_series(
            series.c.id, experiments.c.name.label("experiment"), runs.c.name.label("run_name"),
            runs.c.id.label("run_id"), stages.c.idx, metrics.c.name.label("metric"), runs.c.created_at,
        )
        .join(runs, runs.c.id == series.c.run_id)
        .join(experiments, experiments.c.id == runs.c.experiment_id)
        .order_by(runs.c.id, stages.c.idx, metrics.c.name, series.c.id)
    )
    if run_ids is not None:
        query = query.where(runs.c.id.in_(list(run_ids)))
    if metric_names is not None:
        query = query.where(metrics.c.name.in_(list(metric_names)))
    if experiment is not None:
        query = query.where(experiments.c.name == experiment)
    if stage is not None:
        query = query.where(stages.c.idx == stage)
    return query


def _points(conn: Connection, series_id: int, value_json: bool) -> tuple[Any, Any]:
    """``(seq, epoch, value, recorded_at offset)`` rows of a series as a float array (NaN where
    the value is NaN or not a number), and the JSON texts (``None`` unless ``value_json``)."""
    import numpy as np

    effective = effective_points(conn)
    rows = fetch_raw(conn, f"SELECT seq, epoch, value, recorded_at {effective} ORDER BY seq", (series_id,))
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)  # a NULL value becomes NaN
    odd = fetch_raw(
        conn, f"SELECT seq, special, value_json {effective} AND (special = {SPECIAL_NEG_ZERO} OR value_json IS NOT NULL)",
        (series_id,),
    )
    texts = np.full(len(rows), None, dtype=object) if value_json else None
    if odd:
        where = np.searchsorted(table[:, 0], [seq for seq, _, _ in odd])
        for at, (_, special, text) in zip(where, odd):
            if special == SPECIAL_NEG_ZERO:
                table[at, 2] = -0.0
            elif texts is not None:
                texts[at] = text
    return table, texts
