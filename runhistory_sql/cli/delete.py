"""``runhistory-sql delete RUN``: the only command that removes recorded data, after asking."""
from __future__ import annotations

from typing import Any

import click
from sqlalchemy import func, select

from ..schema import configs, events, points, series, stages
from ..store import RunStore
from .common import experiment_option, one_line_errors, run_key, url_option
from .output import count


@click.command("delete")
@click.argument("run")
@experiment_option
@click.option("--yes", "-y", is_flag=True, help="Delete without asking.")
@url_option
@one_line_errors
def delete(run: str, experiment: str | None, yes: bool, url: str | None) -> None:
    """Delete a run and everything recorded for it: points, configs, events, stages.

    RUN is a run name or id. Shows what will go and asks first (--yes skips the question).
    A run that a live process still holds is refused. The experiment and other runs stay.
    This cannot be undone: back the database up, or export the run first.

    \b
    Example:
        runhistory-sql delete baseline
        runhistory-sql delete 7 --yes
    """
    with RunStore(url) as store:  # read-only: find the run and count what it holds
        record = store.run(run_key(run), experiment)
        counts = None if yes else _rows_of(store, record["run_id"])
    name = f"run {record['run_name']!r} (id {record['run_id']}, experiment {record['experiment']!r}, {record['status']})"
    if counts is not None:
        click.echo(f"This deletes {name}: {_listing(counts)}.")
        if not click.confirm("Delete it? This cannot be undone", default=False):
            click.echo("Nothing deleted.")
            return
    with RunStore(url, read_only=False) as store:
        removed = store.delete(record["run_id"])
    click.echo(f"Deleted {name}: {_listing(removed)}.")


def _rows_of(store: RunStore, run_id: int) -> dict[str, int]:
    """How many rows of each kind the run holds (points: superseded ones too)."""
    queries: dict[str, Any] = {
        "points": select(func.count()).where(points.c.series_id.in_(select(series.c.id).where(series.c.run_id == run_id))),
    }
    for table in (configs, events, stages):
        queries[table.name] = select(func.count()).select_from(table).where(table.c.run_id == run_id)
    with store.engine.connect() as conn:
        return {name: int(conn.execute(query).scalar_one()) for name, query in queries.items()}


def _listing(counts: dict[str, int]) -> str:
    """``"7 points, 2 configs, 20 events, 2 stages"`` (singular where there is one)."""
    return ", ".join(count(counts[table], table[:-1]) for table in ("points", "configs", "events", "stages"))
