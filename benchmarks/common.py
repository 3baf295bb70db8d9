"""What every group shares: the result row, the run's context, timing, data and raw tables."""
from __future__ import annotations

import gc
import math
import random
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

EXPERIMENT = "bench"
METRIC = "train_loss_step"


@dataclass
class Row:
    """One line of the table: a goal, our figure, the comparison's, and the verdict.

    ``ratio`` is always ``ours / theirs``; ``target`` says which way is good (``≤ 10×`` for a
    cost, ``≥ 0.5×`` for a rate, ``≤ 1 ms`` for an absolute bound on ``ours``).
    """

    key: str
    goal: str
    ours: float | None = None
    against: str = ""
    theirs: float | None = None
    unit: str = "s"
    target: str = ""
    passed: bool | None = None
    note: str = ""
    status: str = "ok"  # ok, skip or error

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.theirs:
            return None
        return self.ours / self.theirs

    @property
    def verdict(self) -> str:
        if self.status != "ok":
            return "skip" if self.status == "skip" else "ERROR"
        if self.passed is None:
            return "ref"
        return "PASS" if self.passed else "FAIL"


def ratio_goal(key: str, goal: str, ours: float, against: str, theirs: float, unit: str, *,
               at_most: float | None = None, at_least: float | None = None, note: str = "") -> Row:
    """A goal on ``ours / theirs``: at most ``at_most``× (a cost) or at least ``at_least``× (a rate)."""
    row = Row(key, goal, ours, against, theirs, unit, note=note)
    ratio = row.ratio if row.ratio is not None else math.inf
    if at_most is not None:
        row.target, row.passed = f"≤ {at_most:g}×", ratio <= at_most
    else:
        assert at_least is not None
        row.target, row.passed = f"≥ {at_least:g}×", ratio >= at_least and row.ratio is not None
    return row


def limit_goal(key: str, goal: str, ours: float, against: str, theirs: float | None, unit: str, *,
               at_most: float, shown: str, note: str = "") -> Row:
    """A goal on ``ours`` alone (``shown`` is the bound as printed, e.g. ``≤ 1 ms``)."""
    return Row(key, goal, ours, against, theirs, unit, shown, ours <= at_most, note)


def reference(key: str, goal: str, ours: float | None, against: str, theirs: float | None, unit: str,
              note: str = "") -> Row:
    """A row with no goal: a figure printed for comparison."""
    return Row(key, goal, ours, against, theirs, unit, note=note)


def skipped(key: str, goal: str, why: str) -> Row:
    return Row(key, goal, note=why, status="skip")


def failed(key: str, goal: str, error: BaseException) -> Row:
    text = (str(error).strip().splitlines() or [""])[0][:160]
    return Row(key, goal, note=f"{type(error).__name__}: {text}", status="error")


@dataclass
class Sizes:
    points: int = 1_000_000
    runs: int = 1000
    calls: int = 200_000
    reps: int = 3
    mlflow_calls: int = 200
    mlflow_points: int = 20_000
    max_block_ms: float = 20.0


@dataclass
class Context:
    """What the groups of one benchmark run share."""

    sizes: Sizes
    tmp: Path
    #: a PostgreSQL database to use: (SQLAlchemy URL, psycopg conninfo), or None
    pg: tuple[str, str] | None = None
    #: why there is no PostgreSQL database
    pg_missing: str = ""
    skip_mlflow: bool = False
    #: figures and files one group leaves for another (e.g. the 1,000,000-point run)
    shared: dict[str, Any] = field(default_factory=dict)

    def path(self, stem: str) -> Path:
        """A new file name in the run's scratch folder."""
        return self.tmp / f"{stem}-{uuid.uuid4().hex[:8]}.db"


def log(message: str) -> None:
    """Progress, on stderr, so the table on stdout stays clean."""
    import sys

    print(f"  .. {message}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` once after a garbage collection; return (seconds, its result)."""
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def repeat_median(fn: Callable[[], Any], *, budget_s: float = 0.5, at_least: int = 3, at_most: int = 50) -> float:
    """The median time of ``fn`` over as many calls as fit in ``budget_s`` (bounded)."""
    fn()  # warm caches: the goal is a steady-state query time
    times: list[float] = []
    spent = 0.0
    while len(times) < at_least or (spent < budget_s and len(times) < at_most):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return median(times)


def loss_curve(n: int, seed: int = 0) -> list[float]:
    """``n`` float values shaped like a noisy training loss (full 8-byte floats, as in training)."""
    rng = random.Random(seed)
    scale = max(n / 5, 1.0)
    return [0.05 + 2.0 * math.exp(-i / scale) + 0.1 * rng.random() for i in range(n)]


# The raw comparison: the same columns and primary key as runhistory-sql's ``points`` table.
EQUIVALENT_DDL = """
CREATE TABLE points (
    series_id INTEGER NOT NULL, rev INTEGER NOT NULL, seq INTEGER NOT NULL,
    epoch INTEGER NOT NULL, value REAL, special INTEGER, value_json TEXT,
    recorded_at INTEGER NOT NULL, step INTEGER,
    PRIMARY KEY (series_id, rev, seq)
) WITHOUT ROWID"""
EQUIVALENT_INSERT = "INSERT INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"

# What one writes without thinking: text names on every row, rowid table.
NAIVE_DDL = """
CREATE TABLE naive (
    run TEXT NOT NULL, metric TEXT NOT NULL, step INTEGER NOT NULL, epoch INTEGER NOT NULL,
    value REAL, recorded_at INTEGER NOT NULL
)"""
NAIVE_INSERT = "INSERT INTO naive VALUES (?, ?, ?, ?, ?, ?)"


def raw_sqlite(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection as a careful user would open it: WAL, synchronous=NORMAL."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def point_rows(values: list[float], series_id: int = 1) -> list[tuple[Any, ...]]:
    """Rows of the equivalent table, one per value, timestamped a millisecond apart."""
    start = int(time.time() * 1000)
    return [(series_id, 0, i, 1, v, None, None, start + i, None) for i, v in enumerate(values)]


def remove_db(path: Path) -> None:
    """Delete a SQLite database and its WAL files (scratch space is finite)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def run_store_class() -> tuple[Any, str]:
    """``(RunStore, "")`` when ``runhistory_sql.read.store.RunStore`` exists, else ``(None, why)``."""
    try:
        from runhistory_sql.read.store import RunStore
    except ImportError as e:
        return None, f"RunStore not available ({e})"
    return RunStore, ""
