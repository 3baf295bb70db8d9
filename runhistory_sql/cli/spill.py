"""``runhistory-sql import-spill``: load points a run could not commit before it ended."""
from __future__ import annotations

import os

import click

from ..db.engine import ENV_VAR, mask
from .common import EngineFor, one_line_errors


@click.command("import-spill")
@click.argument("file")  # checked by spill.read_header: a missing or malformed file is one line
@click.option("--url", default=None, help="Database URL (default: $RUNHISTORY_SQL_URL, else the URL in the file).")
@one_line_errors
def import_spill(file: str, url: str | None) -> None:
    """Load a spill file: points a run could not commit before its process ended.

    Each file is applied once, whole or not at all, and only to the database and run it was
    written for; a batch that did land before the process gave up is skipped. A file that is
    cut short, damaged or for another database is refused with nothing imported.

    \b
    Example:
        runhistory-sql import-spill runhistory-spill-3-20261130T101500-4242.jsonl
    """
    from ..write import spill

    header, _ = spill.read(file)  # a malformed or cut file is refused before any database is opened
    target = url or os.environ.get(ENV_VAR) or header["url"]
    if "***" in target:
        raise click.ClickException(
            f"The URL in {file} hides its password ({target}). Pass it with --url or $RUNHISTORY_SQL_URL."
        )
    with EngineFor(target, read_only=True):
        pass  # a SQLite file that does not exist is refused here, never created
    with EngineFor(target) as engine:
        count = spill.import_file(engine, file)
    click.echo(f"Imported {count} operations from {file} into {mask(target)}.")
