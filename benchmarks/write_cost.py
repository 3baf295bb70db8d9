"""Goal 1: what ``update_metric`` costs the training loop, beside ``InMemoryRunHistory``; and
``log_metrics`` (a plain loop's points at a step) beside ``update_metric`` of the same values.

Both histories take the same float values under the same metric name, as the trainer gives
them, interleaved block by block so machine noise hits both alike. The median comes from
blocks of 1,000 calls (one clock read per block); the p99.9 from every single call timed
alone, while the background writer is converting and committing what the calls queue (the notes
say how many of its commits completed in that window: few means it was falling behind).
"""
from __future__ import annotations

import gc
import time
from typing import Callable

from pytorch_accelerated.tracking import InMemoryRunHistory

from runhistory_sql import SQLRunHistory

from .common import EXPERIMENT, METRIC, Context, Row, limit_goal, log, loss_curve, median, quantile, ratio_goal

ROWS = {
    "1a": "update_metric: median cost per call (DB attached)",
    "1b": "update_metric: p99.9 single call, writer busy",
    "1c": "log_metrics of 10 metrics: median cost per value",
}
#: metrics per log_metrics call in 1c (a plain loop logs a handful at every step)
PER_STEP = 10
BLOCK = 1000


def _block(update: Callable[[str, float], None], block: list[float]) -> float:
    """Seconds per call over one block of calls, read with one clock pair."""
    ns = time.perf_counter_ns
    t0 = ns()
    for v in block:
        update(METRIC, v)
    return (ns() - t0) / 1e9 / len(block)


def _singles(update: Callable[[str, float], None], block: list[float], out: list[int]) -> None:
    """Time each call of one block alone, in nanoseconds."""
    ns = time.perf_counter_ns
    for v in block:
        t0 = ns()
        update(METRIC, v)
        out.append(ns() - t0)


def run(ctx: Context) -> list[Row]:
    blocks = max(ctx.sizes.calls // BLOCK, 1)
    values = loss_curve(BLOCK * 10, seed=1)
    chunks = [values[i:i + BLOCK] for i in range(0, len(values), BLOCK)]
    ours = SQLRunHistory(f"sqlite:///{ctx.path('write-cost')}", experiment=EXPERIMENT, run_name="write-cost")
    theirs = InMemoryRunHistory()
    log(f"update_metric: {blocks * BLOCK:,} calls each, in blocks of {BLOCK:,}, interleaved")
    try:
        ours.update_metric(METRIC, 1.0)  # the series exists: the loop below is the steady state
        ours.flush()
        gc.collect()
        ours_blocks, theirs_blocks = [], []
        for i in range(blocks):
            ours_blocks.append(_block(ours.update_metric, chunks[i % len(chunks)]))
            theirs_blocks.append(_block(theirs.update_metric, chunks[i % len(chunks)]))
        ours.flush()
        commits_before = ours.write_transactions
        ours_ns: list[int] = []
        theirs_ns: list[int] = []
        for i in range(blocks):
            _singles(ours.update_metric, chunks[i % len(chunks)], ours_ns)
            _singles(theirs.update_metric, chunks[i % len(chunks)], theirs_ns)
        commits = ours.write_transactions - commits_before
        ours.flush()
        stepped, plain = _log_metrics_blocks(ours, chunks, blocks)
    finally:
        ours.close()
    ctx.shared["update_metric_s"] = median(ours_blocks)
    p999_ours, p999_theirs = quantile(ours_ns, 0.999) / 1e9, quantile(theirs_ns, 0.999) / 1e9
    return [
        ratio_goal("1a", ROWS["1a"], median(ours_blocks), "InMemoryRunHistory", median(theirs_blocks), "s",
                   at_most=10, note=f"median of {len(ours_blocks)} blocks of {BLOCK:,} calls"),
        limit_goal("1b", ROWS["1b"], p999_ours, "InMemoryRunHistory", p999_theirs, "s", at_most=1e-3,
                   shown="≤ 1 ms",
                   note=f"{len(ours_ns):,} calls, {commits} commits completed meanwhile; max {max(ours_ns) / 1e6:.2f} ms "
                        f"(in-memory max {max(theirs_ns) / 1e6:.2f} ms)"),
        ratio_goal("1c", ROWS["1c"], median(stepped), f"update_metric of the {PER_STEP}", median(plain), "s",
                   at_most=2, note=f"median of {len(stepped)} blocks of {BLOCK:,} values; dicts built beforehand"),
    ]


def _log_metrics_blocks(history: SQLRunHistory, chunks: list[list[float]], blocks: int) -> tuple[list[float], list[float]]:
    """Seconds per value of ``log_metrics`` (``PER_STEP`` metrics a call, one step each) and of
    ``update_metric`` of the same values, block by block, interleaved."""
    names = [f"m{i}" for i in range(PER_STEP)]
    ns, step = time.perf_counter_ns, 0
    stepped, plain = [], []
    for i in range(blocks):
        chunk = chunks[i % len(chunks)]
        calls = [dict(zip(names, chunk[j:j + PER_STEP])) for j in range(0, len(chunk), PER_STEP)]
        t0 = ns()
        for values in calls:
            history.log_metrics(values, step)
            step += 1
        stepped.append((ns() - t0) / 1e9 / len(chunk))
        update = history.update_metric
        t0 = ns()
        for values in calls:
            for name, value in values.items():
                update(name, value)
        plain.append((ns() - t0) / 1e9 / len(chunk))
    history.flush()
    return stepped, plain
