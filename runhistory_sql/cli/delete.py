"""``runhistory-sql delete RUN``: the only command that removes recorded data, after asking."""
from __future__ import annotations

import click
from ..read.store import RunStore
from .common import experiment_option, one_line_errors, run_key, url_option
from .output import count


@click.command("delete")
@click.argument("run")
@experiment_option
@click.option("--yes", "-y", is_flag=True, help="Delete without asking.")
@url_option
@one_line_errors
def delete(run: str, experiment: str | None, yes: bool, url: str | None) -> None:
    """Delete a run and everything recorded for it: points, configs, events, stages, params.

    RUN is a run name, or id:N for the run with id N. Shows what will go and asks first (--yes skips the question).
    A run that a live process still holds is refused. The experiment and other runs stay.
    This cannot be undone: back the database up, or export the run first.

    \b
    Example:
        runhistory-sql delete baseline
        runhistory-sql delete id:7 --yes
    """
    with RunStore(url) as store:  # read-only: find the run and count what it holds
        record = store.run(run_key(run), experiment)
        counts = None
        if not yes:
            counts = store.rows_of(record.run_id)
    name = f"run {record.run_name!r} (id {record.run_id}, experiment {record.experiment!r}, {record.status})"
    if counts is not None:
        click.echo(f"This deletes {name}: {_listing(counts)}.")
        if not click.confirm("Delete it? This cannot be undone", default=False):
            click.echo("Nothing deleted.")
            return
    with RunStore(url, read_only=False) as store:
        removed = store.delete(record.run_id)
    click.echo(f"Deleted {name}: {_listing(removed)}.")


def _listing(counts: dict[str, int]) -> str:
    """``"7 points, 2 configs, 20 events, 2 stages"`` (singular where there is one), and the
    params where the run has some."""
    tables = ("points", "configs", "events", "stages", *(("params",) if counts.get("params") else ()))
    return ", ".join(count(counts[table], table[:-1]) for table in tables)
