"""The ``runhistory-sql`` command: a thin click shell over the library.

Each subcommand lives in its own module; library errors become one-line messages
(``click.ClickException``, see :func:`common.one_line_errors`), never tracebacks, and so do
usage errors (:class:`OneLineGroup`).
"""
from __future__ import annotations

import shlex
from contextlib import contextmanager
from typing import Any, Iterator

import click

from .compare import compare
from .db import db
from .delete import delete
from .demo import demo
from .export import export
from .plot import plot
from .query import query
from .runs import history, runs
from .show import show
from .spill import import_spill


@contextmanager
def _one_line_usage() -> Iterator[None]:
    try:
        yield
    except click.UsageError as e:
        if e.ctx is None:
            raise
        # without a context click prints only "Error: ..."
        raise click.UsageError(f"{e.format_message()} (see: {e.ctx.command_path} --help)") from e


class OneLineGroup(click.Group):
    """A group whose usage errors (a bad option value, a missing argument) are one line that
    names the help to read, instead of click's usage block."""

    def make_context(self, info_name: str | None, args: list[str], *rest: Any, **kwargs: Any) -> click.Context:
        given = list(args)  # click consumes the list as it parses
        with _one_line_usage():
            try:
                return super().make_context(info_name, args, *rest, **kwargs)
            except click.NoSuchOption as e:
                if e.option_name != "--url" or e.ctx is None:
                    raise
                # options of a command follow it; say where --url goes rather than "No such option"
                raise click.UsageError(
                    f"--url goes after the command: {e.ctx.command_path} {_without_url(given)} --url URL", e.ctx,
                ) from e

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line_usage():
            return super().invoke(ctx)


def _without_url(args: list[str]) -> str:
    """The command line ``args`` without its ``--url`` (and value), for a message: the URL may
    hold a password."""
    kept, skip = [], False
    for arg in args:
        if skip or arg.startswith("--url="):
            skip = False
            continue
        skip = arg == "--url"
        if not skip:
            kept.append(arg)
    return shlex.join(kept) if kept else "COMMAND"


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="runhistory-sql")
def main() -> None:
    """Persistent run histories for pytorch-accelerated, in plain SQL.

    \b
    Example:
        runhistory-sql demo
        runhistory-sql runs
    """


for _command in (db, demo, import_spill, query, export, delete, plot, runs, history, show, compare):
    main.add_command(_command)


def iter_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Yield the path of every command under ``group``, e.g. ``("db", "upgrade")``."""
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from iter_commands(command, (*prefix, name))
