"""The JSON of the dashboard's API: pure functions over a :class:`RunStore`, returning dicts
that ``json.dumps`` takes as they are. The one place this JSON is built: the HTTP routes
(:mod:`.app`) and the report file both call these.

Times are integer milliseconds since the Unix epoch, UTC. A float that is not finite (NaN,
+inf, -inf) is ``null``: JSON has no such numbers, and a chart draws a gap there.
"""
from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from typing import Any, Sequence

from ..errors import InvalidArgumentError
from ..read.models import ConfigSnapshot, Event, MetricStat, Run
from ..read.query import DEFAULT_LIMIT, DEFAULT_TIMEOUT_S, run_query
from ..read.records import flat_config
from ..read.store import RunStore
from .recipes import recipes_for

#: How many runs ``/api/compare`` takes.
COMPARE_RUNS = (2, 20)


def ms(value: dt.datetime | None) -> int | None:
    """A UTC ``datetime`` as integer ms since the Unix epoch."""
    if value is None:
        return None
    return (value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(milliseconds=1)


def jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it: non-finite floats ``None``, times in ms, containers walked."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        return ms(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else jsonable(float(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (dt.date, dt.time, dt.timedelta, uuid.UUID)):
        return str(value)
    return value


def _stat(stat: MetricStat | None) -> dict[str, Any] | None:
    if stat is None:
        return None
    return {"last": jsonable(stat.last), "best": jsonable(stat.best), "n": stat.count}


def run_row(run: Run, metrics: Sequence[str] = ()) -> dict[str, Any]:
    """A run as the API lists it (``RunRow``), with the stats of ``metrics`` it has."""
    return {
        "id": run.run_id, "uuid": run.run_uuid, "experiment": run.experiment, "name": run.run_name,
        "status": run.status, "created_at": ms(run.created_at), "ended_at": ms(run.ended_at),
        "duration_s": run.duration_s, "num_stages": run.num_stages, "current_epoch": run.current_epoch,
        "epochs": run.epochs, "host": run.host, "pid": run.pid, "tags": jsonable(run.tags),
        "params": jsonable(run.params),
        "metrics": {m: _stat(run.metrics.get(m)) for m in metrics if m in run.metrics},
    }


def runs_payload(
    store: RunStore, *, experiment: str | None = None, status: str | None = None, q: str | None = None,
    where: Sequence[str] = (), sort: str = "id", order: str = "desc", offset: int = 0, limit: int = 50,
    metrics: Sequence[str] = (),
) -> dict[str, Any]:
    """``GET /api/runs``: one page of runs and what the filters can choose from."""
    page = store.runs_page(
        experiment=experiment, status=status, text_in_name=q, where=where, sort=sort, order=order,
        offset=offset, limit=limit,
    )
    names = store.names()
    return {
        "total": page.total, "offset": page.offset, "limit": page.limit, **names,
        "runs": [run_row(run, metrics) for run in page.runs],
    }


def run_payload(store: RunStore, run_id: int) -> dict[str, Any]:
    """``GET /api/runs/{id}``: everything about one run."""
    report = store.report(run_id)
    row = run_row(report.run, list(report.run.metrics))
    row["stages"] = [{"stage": stage, "started_at": started} for stage, started in store.stages(run_id)]
    return {
        "run": row,
        "summaries": [
            {"metric": s.metric, "stage": s.stage, "n_points": s.count, "last": jsonable(s.last),
             "best": jsonable(s.best), "min": jsonable(s.min), "max": jsonable(s.max), "goal": s.goal,
             "best_epoch": s.best_epoch, "best_step": s.best_step}
            for s in report.metrics
        ],
        "params": jsonable(report.run.params),
        "param_history": [
            {"key": p.key, "value": jsonable(p.value), "recorded_at": ms(p.recorded_at), "current": p.current}
            for p in report.param_history
        ],
        "configs": configs_list(report.configs),
        "events": events_list(report.events),
    }


def configs_list(snapshots: Sequence[ConfigSnapshot]) -> list[dict[str, Any]]:
    """The config snapshots, each with the (flattened) fields that differ from the one before."""
    found, before = [], None
    for snapshot in snapshots:
        flat = flat_config(snapshot.fields)
        changed: list[str] = [] if before is None else [k for k in flat if k not in before or _differs(before[k], flat[k])]
        found.append({
            "stage": snapshot.stage, "kind": snapshot.kind, "captured_at": ms(snapshot.captured_at),
            "fields": jsonable(snapshot.fields), "changed": changed,
        })
        before = flat
    return found


def _differs(a: Any, b: Any) -> bool:
    return type(a) is not type(b) or a != b


def events_list(events: Sequence[Event]) -> list[dict[str, Any]]:
    """The events, in the order they happened."""
    return [
        {"id": e.event_id, "stage": e.stage, "epoch": e.epoch, "kind": e.kind, "recorded_at": ms(e.recorded_at),
         "payload": jsonable(e.payload)}
        for e in events
    ]


def history_payload(store: RunStore, run_id: int, metric: str, **options: Any) -> dict[str, Any]:
    """``GET /api/runs/{id}/history``: a metric's points across stages, downsampled in SQL."""
    window = store.window(run_id, metric, **options)
    return {
        "metric": window.metric, "x": window.x, "downsampled": window.downsampled, "cursor": window.cursor,
        "reset": window.reset,
        "series": [
            {"stage": s.stage, "rev": s.rev, "x": s.x, "y": [_number(v) for v in s.y], "seq": s.seq}
            for s in window.series
        ],
    }


def _number(value: Any) -> float | None:
    """A chart's y: the finite numbers; NaN, infinities and values that are not numbers are gaps."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def compare_payload(store: RunStore, run_ids: Sequence[int]) -> dict[str, Any]:
    """``GET /api/compare``: the runs, and the params and config fields that differ."""
    low, high = COMPARE_RUNS
    if not low <= len(run_ids) <= high:
        raise InvalidArgumentError(f"Compare {low} to {high} runs (runs=1,2,3), not {len(run_ids)}.")
    names = sorted({metric for run_id in run_ids for metric in store.run(run_id).metrics})
    comparison = store.compare(list(run_ids), metrics=names)
    ids = [run.run_id for run in comparison.runs]
    metrics = {
        metric: {str(i): ({"last": jsonable(s.last), "best": jsonable(s.best)} if s else None) for i, s in zip(ids, stats)}
        for metric, stats in comparison.metrics.items()
    }
    return {
        "runs": [run_row(run, list(comparison.metrics)) for run in comparison.runs],
        "params": {key: {str(i): jsonable(v) for i, v in zip(ids, values)} for key, values in comparison.param_differences},
        "configs": {name: {str(i): jsonable(v) for i, v in zip(ids, values)} for name, values in comparison.config_differences},
        "metrics": metrics,
    }


def query_payload(store: RunStore, sql: str, *, timeout: float = DEFAULT_TIMEOUT_S, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """``GET /api/query``: one reading statement, through :func:`~runhistory_sql.read.query.run_query`."""
    result = run_query(store, sql, timeout=timeout, limit=limit)
    return {
        "columns": result.columns, "rows": [[jsonable(v) for v in row] for row in result.rows],
        "truncated": result.truncated, "limit": limit,
    }


def recipes_payload(store: RunStore) -> list[dict[str, str]]:
    """``GET /api/recipes``: the README's SQL recipes that run on the store's backend."""
    return [{"title": title, "sql": sql} for title, sql in recipes_for(store.engine.dialect.name)]
