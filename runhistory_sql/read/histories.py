"""A metric's effective points, read fast: what ``RunStore.history`` returns.

Plain tuples and a raw time, so a long history is read without a Python object per point; the
rare values that are not plain numbers are decoded afterwards, in place.
"""
from __future__ import annotations

from sqlalchemy import Connection

from ..db.effective import LATEST_FIRST, effective_points, live_series
from ..db.engine import fetch_raw
from ..db.schema import metrics, runs, series, stages
from ..db.values import decode
from .models import Point


def read_history(conn: Connection, run_id: int, metric: str, stage: int | None = None) -> list[Point]:
    """The effective points of ``metric`` in ``stage`` of the run (default: the latest stage that
    has it), in order: ``(seq, epoch, value, recorded_at_ms, step)``; none when there is no such
    series (see :meth:`RunStore.history`)."""
    query = live_series(series.c.id, runs.c.created_at).join(runs, runs.c.id == series.c.run_id)
    query = query.where(series.c.run_id == run_id, metrics.c.name == metric)
    if stage is not None:
        query = query.where(stages.c.idx == stage)
    found = conn.execute(query.order_by(*LATEST_FIRST).limit(1)).first()
    if found is None:
        return []
    series_id, created = found[0], int(found[1])
    effective = effective_points(conn)
    rows = fetch_raw(conn, f"SELECT seq, epoch, value, recorded_at + {created}, step {effective} ORDER BY seq", (series_id,))
    # the rare values that are not plain numbers, fixed up in place (the seqs are 0..n-1)
    odd = fetch_raw(
        conn, f"SELECT seq, value, special, value_json {effective} AND (special IS NOT NULL OR value_json IS NOT NULL)",
        (series_id,),
    )
    for seq, value, special, value_json in odd:
        point = rows[seq]
        rows[seq] = (point[0], point[1], decode(value, special, value_json), point[3], point[4])
    return rows  # type: ignore[return-value]
