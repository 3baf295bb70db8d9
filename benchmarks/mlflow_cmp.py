"""MLflow's SQL store on SQLite, for reference: ``log_metric`` per call and ``log_batch``.

Runs only when ``mlflow`` (mlflow-skinny) is importable: ``pip install 'runhistory-sql[bench]'``.
Our figures come from goals 1 and 2 of the same run.
"""
from __future__ import annotations

import logging
import os
import time

from .common import METRIC, Context, Row, log, loss_curve, median, reference, skipped

ROWS = {
    "1m": "  (ref) MLflow log_metric, one call",
    "2m": "  (ref) MLflow log_batch on SQLite",
}
BATCH = 1000  # MLflow's limit of metrics per log_batch


def run(ctx: Context) -> list[Row]:
    if ctx.skip_mlflow:
        return [skipped(key, label, "--skip-mlflow") for key, label in ROWS.items()]
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network calls from a benchmark
    try:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient
    except ImportError:
        why = "mlflow not installed (pip install 'runhistory-sql[bench]')"
        return [skipped(key, label, why) for key, label in ROWS.items()]
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    log("MLflow: creating its SQLite store")
    client = MlflowClient(tracking_uri=f"sqlite:///{ctx.path('mlflow')}")
    run_id = client.create_run(client.create_experiment("bench")).info.run_id
    calls, points = ctx.sizes.mlflow_calls, ctx.sizes.mlflow_points

    log(f"MLflow: {calls:,} log_metric calls, {points:,} points with log_batch")
    values = loss_curve(max(calls, points), seed=3)
    per_call = []
    for step in range(calls):
        start = time.perf_counter()
        client.log_metric(run_id, METRIC, values[step], step=step)
        per_call.append(time.perf_counter() - start)
    stamp = int(time.time() * 1000)
    start = time.perf_counter()
    for first in range(0, points, BATCH):
        batch = [Metric("batch_" + METRIC, values[s], stamp + s, s) for s in range(first, min(first + BATCH, points))]
        client.log_batch(run_id, metrics=batch)
    batch_rate = points / (time.perf_counter() - start)
    return [
        reference("1m", ROWS["1m"], ctx.shared.get("update_metric_s"), "MLflow log_metric", median(per_call), "s",
                  note=f"median of {calls:,} calls"),
        reference("2m", ROWS["2m"], ctx.shared.get("ingest_rate"), "MLflow log_batch", batch_rate, "pts/s",
                  note=f"{points:,} points in batches of {BATCH:,}"),
    ]
