"""The ``runhistory-sql`` command: a thin click shell over the library.

Each subcommand lives in its own module; library errors become one-line messages
(``click.ClickException``, see :func:`common.one_line_errors`), never tracebacks, and so do
usage errors (:class:`OneLineGroup`).
"""
from __future__ import annotations

from typing import Iterator

import click

from .common import OneLineGroup
from .compare import compare
from .db import db
from .delete import delete
from .demo import demo
from .export import export
from .plot import plot
from .query import query
from .report import report
from .runs import history, runs
from .show import show
from .spill import import_spill
from .ui import ui


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="runhistory-sql")
def main() -> None:
    """Persistent run histories for pytorch-accelerated, in plain SQL.

    \b
    Example:
        runhistory-sql demo
        runhistory-sql runs
    """


for _command in (db, demo, import_spill, query, export, delete, plot, runs, history, show, compare, ui):
    main.add_command(_command)
main.add_command(report)


def iter_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Yield the path of every command under ``group``, e.g. ``("db", "upgrade")``."""
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from iter_commands(command, (*prefix, name))
