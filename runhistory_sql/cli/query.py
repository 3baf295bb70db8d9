"""``runhistory-sql query "SQL"``: one reading statement, printed as a table, CSV or JSON."""
from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import click

from ..read.query import DEFAULT_LIMIT, DEFAULT_TIMEOUT_S, check_reading
from ..read.store import RunStore
from .common import one_line_errors, url_option
from .output import emit, format_option


@click.command()
@click.argument("sql")
@url_option
@format_option
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT_S,
              show_default=True, metavar="SECONDS", help="Stop the statement after this long.")
@click.option("--limit", type=click.IntRange(min=1), default=DEFAULT_LIMIT, show_default=True,
              metavar="ROWS", help="Print at most this many rows.")
@one_line_errors
def query(sql: str, url: str | None, fmt: str, timeout: float, limit: int) -> None:
    """Run one SQL statement READ-ONLY and print its result.

    SQLite is opened read-only (mode=ro); on PostgreSQL the URL's role must be one that can
    only read (make one with: runhistory-sql db create-reader), and the transaction is read-only
    and rolled back. A statement that writes, or a second statement, is refused and changes
    nothing. Query the views v_runs, v_metrics, v_configs, v_events and v_summaries (see the
    README), or the tables.

    \b
    Example:
        runhistory-sql query "SELECT run_name, status, current_epoch FROM v_runs"
        runhistory-sql query --format csv "SELECT * FROM v_metrics WHERE run_name = 'baseline'"
        runhistory-sql query --limit 10 --timeout 30 "SELECT * FROM v_metrics ORDER BY value"
    """
    check_reading(sql)  # a statement that is not one is the first thing to fix, before the database
    with RunStore(url) as store:
        result = store.query(sql, timeout=timeout, limit=limit)
    emit(result.columns, [[_printable(v) for v in row] for row in result.rows], fmt)
    if result.truncated:
        click.echo(f"showing the first {limit} rows (--limit to change)", err=True)


def _printable(value: Any) -> Any:
    """A driver value ``emit`` can print in every format: numerics as numbers, bytes as hex,
    dates, intervals and uuids as text."""
    if isinstance(value, decimal.Decimal):  # PostgreSQL's SUM, AVG and NUMERIC
        return int(value) if value.is_finite() and value == value.to_integral_value() else float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (dt.date, dt.time)) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dt.timedelta, uuid.UUID)):
        return str(value)
    return value
