"""Measure every speed and memory goal of issue 5 beside its comparison, in one run, and print one table."""
from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import batches, best, ingest, memory, mlflow_cmp, page, postgres, read, storage, trackers, ui, write_cost
from .common import Context, Row, Sizes, failed

GROUPS = {
    "write": write_cost, "ingest": ingest, "batches": batches, "read": read, "storage": storage, "best": best,
    "memory": memory, "postgres": postgres, "mlflow": mlflow_cmp, "trackers": trackers, "ui": ui, "page": page,
}
QUICK = Sizes(points=20_000, runs=20, calls=20_000, reps=1, mlflow_calls=20, mlflow_points=2_000)
STYLE = {"PASS": "bold green", "FAIL": "bold red", "ERROR": "bold red", "skip": "yellow", "ref": "dim"}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--points", type=int,
                   help="N: points of the long run (ingest, read, storage, memory); default 1,000,000")
    p.add_argument("--runs", type=int, help="R: runs of the best-per-run goal (x 10 metrics x 100); default 1,000")
    p.add_argument("--calls", type=int, help="update_metric calls timed per history in goal 1; default 200,000")
    p.add_argument("--reps", type=int, help="alternating repetitions of ingest and read; default 3")
    p.add_argument("--max-block-ms", type=float,
                   help="the stated bound on one update_metric while the DB is locked; default 20")
    pg = p.add_mutually_exclusive_group()
    pg.add_argument("--pg-url", help="a PostgreSQL database to use (the benchmark works in a schema it drops)")
    pg.add_argument("--pg-start", action="store_true", help="start a throwaway PostgreSQL server (needs initdb)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds")
    p.add_argument("--only", help=f"comma-separated groups to run, of: {', '.join(GROUPS)}")
    p.add_argument("--skip-mlflow", action="store_true", help="leave out the MLflow comparison")
    p.add_argument("--strict", action="store_true", help="exit 1 when a goal fails or a measurement errors")
    p.add_argument("--dir", type=Path, help="where the scratch databases go (default: a temporary folder)")
    return p.parse_args(argv)


def sizes(args: argparse.Namespace) -> Sizes:
    base = QUICK if args.quick else Sizes()
    given = {k: getattr(args, k) for k in ("points", "runs", "calls", "reps", "max_block_ms")}
    return replace(base, **{k: v for k, v in given.items() if v is not None})


def machine() -> str:
    import sqlalchemy

    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())

    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip() or "?"
    return (f"{os.cpu_count()} cores, {cpu}; Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"SQLAlchemy {sqlalchemy.__version__}; runhistory-sql at {commit}")


def measure(ctx: Context, names: list[str]) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        module = GROUPS[name]
        print(f"[{name}]", file=sys.stderr, flush=True)
        start = time.monotonic()
        try:
            rows += module.run(ctx)
        except Exception as e:  # noqa: BLE001 - one broken measurement must not hide the others
            traceback.print_exc()
            rows += [failed(key, label, e) for key, label in module.ROWS.items()]
        print(f"[{name}] {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)
    return sorted(rows, key=lambda r: r.key)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value * 1e6:.3g} µs" if value < 1e-3 else f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"
    if unit == "pts/s":
        return f"{value:,.0f} pts/s"
    return f"{value:.1f} {unit}"


def table(rows: list[Row], title: str) -> Table:
    t = Table(title=title, title_justify="left", show_lines=False)
    for name, justify in (("#", "left"), ("goal", "left"), ("runhistory-sql", "right"),
                          ("comparison (same run)", "left"), ("ratio", "right"), ("target", "left"),
                          ("verdict", "left"), ("notes", "left")):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        comparison = f"{r.against}: {fmt(r.theirs, r.unit)}" if r.against else ""
        ratio = "" if r.ratio is None else f"1/{1 / r.ratio:,.0f}×" if r.ratio < 0.01 else f"{r.ratio:.3g}×"
        verdict = f"[{STYLE[r.verdict]}]{r.verdict}[/]"
        t.add_row(r.key, r.goal, fmt(r.ours, r.unit) if r.status == "ok" else "", comparison, ratio, r.target,
                  verdict, r.note)
    return t


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    names = args.only.split(",") if args.only else list(GROUPS)
    unknown = set(names) - set(GROUPS)
    if unknown:
        print(f"Unknown group(s) {', '.join(sorted(unknown))}; choose from {', '.join(GROUPS)}.", file=sys.stderr)
        return 2
    chosen = sizes(args)
    console = Console(width=None if sys.stdout.isatty() else 200)
    with tempfile.TemporaryDirectory(prefix="rhsql-bench-", dir=args.dir) as tmp, \
            postgres.database(args.pg_url, args.pg_start) as (pg, pg_missing):
        ctx = Context(chosen, Path(tmp), pg, pg_missing, args.skip_mlflow)
        rows = measure(ctx, names)
    title = (f"runhistory-sql benchmarks (issues 5, 10, 12, 13): N={chosen.points:,} points, R={chosen.runs:,} runs, "
             f"{chosen.calls:,} calls, best of {chosen.reps}")
    console.print(f"machine: {machine()}")
    console.print(table(rows, title))
    verdicts = [r.verdict for r in rows]
    console.print(", ".join(f"{verdicts.count(v)} {v}" for v in ("PASS", "FAIL", "ERROR", "skip") if v in verdicts))
    return 1 if args.strict and ("FAIL" in verdicts or "ERROR" in verdicts) else 0
