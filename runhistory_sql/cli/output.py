"""Printing data: a rich table in the terminal, or CSV / JSON for other programs.

Every command whose output is data takes ``--format table|csv|json`` (:func:`format_option`)
and prints through :func:`emit`, so all commands format values the same way.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import math
import sys
from typing import Any, Callable, Sequence, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = ("table", "csv", "json")


def format_option(func: F) -> F:
    """The ``--format table|csv|json`` option (``fmt`` in the command)."""
    return click.option(  # type: ignore[return-value]
        "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
        help="table for people; csv or json for other programs.",
    )(func)


def cell(value: Any) -> str:
    """A value as shown in a table: floats to 6 significant digits, times to the second."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def plain(value: Any) -> Any:
    """A value for JSON: non-finite floats as the strings "NaN", "Infinity", "-Infinity"
    (strict JSON has no such numbers), times as ISO 8601 text."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return value


def emit(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "table", *, title: str | None = None) -> None:
    """Print ``rows`` under ``columns`` as a rich table, CSV or JSON (a list of objects)."""
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[plain(v) if not isinstance(v, (dict, list)) else json.dumps(v) for v in row] for row in rows])
    elif fmt == "json":
        records = [{c: plain(v) for c, v in zip(columns, row)} for row in rows]
        click.echo(json.dumps(records, indent=2, ensure_ascii=False))
    else:
        print_table(columns, rows, title=title)


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
    from rich.table import Table

    table = Table(*columns, title=title, title_justify="left")
    for row in rows:
        table.add_row(*(cell(v) for v in row))
    console().print(table)


def console() -> Any:
    """A rich console on the current stdout (click's test runner swaps it). Not on a terminal,
    it is 200 columns wide, so piped tables are not squeezed to 80."""
    from rich.console import Console

    return Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def duration_text(seconds: float) -> str:
    """A duration for people: ``42s``, ``3m 05s``, ``2h 03m``, ``1d 04h``."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def count(n: int, noun: str) -> str:
    """``"1 run"``, ``"3 runs"``: a number and its noun, plural unless it is one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def heading(text: str) -> None:
    """A line above a table (a rich table title would be padded with spaces to the table's width)."""
    click.echo(text)


def plain_tree(value: Any) -> Any:
    """``value`` with every leaf made JSON-safe by :func:`plain` (times, NaN, infinities)."""
    if isinstance(value, dict):
        return {key: plain_tree(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_tree(v) for v in value]
    return plain(value)
