"""``runhistory-sql query "SQL"``: one reading statement, printed as a table, CSV or JSON."""
from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import click

from ..query import run_query
from .common import one_line_errors, url_option
from .output import emit, format_option


@click.command()
@click.argument("sql")
@url_option
@format_option
@one_line_errors
def query(sql: str, url: str | None, fmt: str) -> None:
    """Run one SQL statement READ-ONLY and print its result.

    The database is opened read-only (SQLite with mode=ro, PostgreSQL in a read-only
    transaction that is rolled back); a statement that writes, or a second statement, is
    refused and changes nothing. Query the views v_runs, v_metrics, v_configs, v_events and
    v_summaries (see the README), or the tables.

    \b
    Example:
        runhistory-sql query "SELECT run_name, status, current_epoch FROM v_runs"
        runhistory-sql query --format csv "SELECT * FROM v_metrics WHERE run_name = 'baseline'"
    """
    result = run_query(sql, url)
    emit(result.columns, [[_printable(v) for v in row] for row in result.rows], fmt)


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
