"""``accelerator.log`` of 10 metrics per step: ``SQLTracker`` beside accelerate's TensorBoard and
MLflow trackers (MLflow's SQLite store), each on its own ``Accelerator``, in one process.

Ours and TensorBoard's alternate in blocks of steps; the figure is the median cost of one step
(one ``accelerator.log`` call) over the blocks. MLflow's, much slower, is timed over fewer steps.
The TensorBoard and MLflow rows skip, with a note, when their package is not installed
(``pip install 'runhistory-sql[bench]'``).
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

from .common import Context, Row, log, loss_curve, median, ratio_goal, skipped

ROWS = {
    "9a": "accelerator.log, 10 metrics/step: SQLTracker (per step)",
    "9b": "  the same, against accelerate's MLflow tracker",
}
METRICS = [f"metric_{i}" for i in range(10)]
BLOCK = 100  # steps per timed block


def _steps(n: int, seed: int) -> list[dict[str, float]]:
    values = loss_curve(n * len(METRICS), seed=seed)
    return [dict(zip(METRICS, values[i * len(METRICS):(i + 1) * len(METRICS)])) for i in range(n)]


def _block_timer(accelerator: Any, steps: list[dict[str, float]]) -> Callable[[int], float]:
    """A function that logs the next block of steps and returns its cost per step."""
    position = [0]

    def block(size: int) -> float:
        first = position[0]
        chunk = steps[first:first + size]
        position[0] += len(chunk)
        start = time.perf_counter()
        for offset, values in enumerate(chunk):
            accelerator.log(values, step=first + offset)
        return (time.perf_counter() - start) / len(chunk)

    return block


def _ours(ctx: Context) -> Any:
    from accelerate import Accelerator

    from runhistory_sql import SQLTracker

    tracker = SQLTracker(f"sqlite:///{ctx.path('tracker')}", experiment="bench", run_name="tracker")
    accelerator = Accelerator(cpu=True, log_with=[tracker])
    accelerator.init_trackers("bench", config={"lr": 1e-3, "model": "bench"})
    return accelerator, tracker


def _tensorboard(ctx: Context) -> tuple[Any, str]:
    try:
        from torch.utils import tensorboard  # noqa: F401 - what accelerate's tracker imports
    except ImportError:
        return None, "tensorboard not installed (pip install 'runhistory-sql[bench]')"
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True, log_with=["tensorboard"], project_dir=str(ctx.tmp / "tensorboard"))
    accelerator.init_trackers("bench", config={"lr": 1e-3, "model": "bench"})
    return accelerator, ""


def _mlflow(ctx: Context) -> tuple[Any, str]:
    if ctx.skip_mlflow:
        return None, "--skip-mlflow"
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        import mlflow
    except ImportError:
        return None, "mlflow not installed (pip install 'runhistory-sql[bench]')"
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from accelerate import Accelerator

    log("MLflow tracker: creating its SQLite store")
    mlflow.set_tracking_uri(f"sqlite:///{ctx.path('mlflow-tracker')}")
    accelerator = Accelerator(cpu=True, log_with=["mlflow"])
    accelerator.init_trackers("bench", config={"lr": 1e-3, "model": "bench"},
                              init_kwargs={"mlflow": {"logging_dir": str(ctx.tmp / "mlflow-artifacts")}})
    return accelerator, ""


def run(ctx: Context) -> list[Row]:
    n = max(ctx.sizes.calls // len(METRICS), 2 * BLOCK)
    n -= n % BLOCK
    ours_acc, tracker = _ours(ctx)
    tb_acc, tb_missing = _tensorboard(ctx)
    log(f"trackers: {n:,} steps of {len(METRICS)} metrics, SQLTracker and TensorBoard in alternate blocks")
    ours = _block_timer(ours_acc, _steps(n, seed=7))
    tb = _block_timer(tb_acc, _steps(n, seed=7)) if tb_acc is not None else None
    ours_blocks, tb_blocks = [], []
    for _ in range(n // BLOCK):
        ours_blocks.append(ours(BLOCK))
        if tb is not None:
            tb_blocks.append(tb(BLOCK))
    start = time.perf_counter()
    assert tracker.tracker is not None and tracker.tracker.flush(120.0)
    commit_s = time.perf_counter() - start
    ours_acc.end_training()
    if tb_acc is not None:
        tb_acc.end_training()
    ours_step = median(ours_blocks)
    note = f"median of {n // BLOCK:,} blocks of {BLOCK} steps; the last points committed {commit_s * 1e3:.0f} ms after the loop"
    rows = [
        ratio_goal("9a", ROWS["9a"], ours_step, "TensorBoard tracker", median(tb_blocks), "s", at_most=1.0, note=note)
        if tb is not None else skipped("9a", ROWS["9a"], tb_missing),
    ]
    ml_acc, ml_missing = _mlflow(ctx)
    if ml_acc is None:
        return rows + [skipped("9b", ROWS["9b"], ml_missing)]
    ml_steps = max(ctx.sizes.mlflow_calls, 10)
    log(f"trackers: {ml_steps:,} steps with the MLflow tracker")
    ml = _block_timer(ml_acc, _steps(ml_steps, seed=7))
    ml_step = ml(ml_steps)
    ml_acc.end_training()
    rows.append(ratio_goal("9b", ROWS["9b"], ours_step, "MLflow tracker (SQLite)", ml_step, "s", at_most=0.01,
                           note=f"MLflow: mean of {ml_steps:,} steps"))
    return rows
