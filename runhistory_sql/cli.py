"""The ``runhistory-sql`` command: a thin click shell over the library.

Library errors become one-line messages (``click.ClickException``), never tracebacks.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import click
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from . import migrate
from .engine import ENV_VAR, mask, make_engine, resolve_url
from .errors import RunHistorySQLError

F = TypeVar("F", bound=Callable[..., Any])


def _one_line_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RunHistorySQLError as e:
            raise click.ClickException(str(e)) from e
        except SQLAlchemyError as e:
            cause = getattr(e, "orig", None) or e
            first = (str(cause).splitlines() or [type(cause).__name__])[0]
            raise click.ClickException(f"Database error: {first}") from e

    return wrapper  # type: ignore[return-value]


class _Engine:
    """``with _Engine(url) as engine``: an engine disposed of at the end."""

    def __init__(self, url: str | None) -> None:
        self.engine = make_engine(url)

    def __enter__(self) -> Engine:
        return self.engine

    def __exit__(self, *exc: object) -> None:
        self.engine.dispose()


URL_HELP = "Database URL (default: $RUNHISTORY_SQL_URL, else sqlite:///runhistory.db)."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="runhistory-sql")
def main() -> None:
    """Persistent run histories for pytorch-accelerated, in plain SQL.

    \b
    Example:
        runhistory-sql demo
        runhistory-sql db current
    """


@main.group()
def db() -> None:
    """Create, inspect and upgrade the database schema.

    \b
    Example:
        runhistory-sql db upgrade sqlite:///runs.db
    """


@db.command("upgrade")
@click.argument("url", required=False)
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@_one_line_errors
def db_upgrade(url: str | None, revision: str) -> None:
    """Create the schema, or upgrade it to the version this package needs.

    Back the database up first.

    \b
    Example:
        runhistory-sql db upgrade sqlite:///runs.db
    """
    with _Engine(url) as engine:
        before, after = migrate.upgrade(engine, revision)
    shown = mask(resolve_url(url))
    if before == after:
        click.echo(f"{shown} is already at revision {after}.")
    else:
        click.echo(f"Upgraded {shown} from revision {before or '(empty)'} to {after}.")


@db.command("current")
@click.argument("url", required=False)
@_one_line_errors
def db_current(url: str | None) -> None:
    """Print the database's schema revision and the one this package needs.

    \b
    Example:
        runhistory-sql db current sqlite:///runs.db
    """
    with _Engine(url) as engine:
        current = migrate.current_revision(engine)
    head = migrate.head_revision()
    state = "up to date" if current == head else f"this package needs {head}"
    click.echo(f"{mask(resolve_url(url))}: revision {current or '(empty)'} ({state})")


@db.command("check")
@click.argument("url", required=False)
@_one_line_errors
def db_check(url: str | None) -> None:
    """Check that the schema is at head and matches the models; exit 1 if not.

    \b
    Example:
        runhistory-sql db check sqlite:///runs.db
    """
    with _Engine(url) as engine:
        problems = migrate.check(engine)
    if problems:
        raise click.ClickException("; ".join(problems))
    click.echo(f"{mask(resolve_url(url))}: schema OK at revision {migrate.head_revision()}")


@main.command()
@click.option("--url", default=None, help=URL_HELP)
@click.option("--experiment", default="demo", show_default=True, help="Experiment to record in.")
@click.option("--run-name", default=None, help="Name of the run (generated if not given).")
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(1, 100), help="Epochs to train.")
@_one_line_errors
def demo(url: str | None, experiment: str, run_name: str | None, epochs: int) -> None:
    """Train a small model with the real Trainer on CPU and record it.

    Prints where the data is and an example SQL query with its result.

    \b
    Example:
        runhistory-sql demo --epochs 3
    """
    from .demo import run_demo  # imports torch: only when asked for

    result = run_demo(url, experiment=experiment, run_name=run_name, num_epochs=epochs)
    _print_demo(result.url, result.run_name, result.epochs, experiment)


@main.command("import-spill")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--url", default=None, help="Database URL (default: $RUNHISTORY_SQL_URL, else the URL in the file).")
@_one_line_errors
def import_spill(file: str, url: str | None) -> None:
    """Load a spill file: points a run could not commit before its process ended.

    Each file is applied once; a batch that did land before the process gave up is skipped.

    \b
    Example:
        runhistory-sql import-spill runhistory-spill-3-20261130T101500-4242.jsonl
    """
    from . import spill

    target = url or os.environ.get(ENV_VAR) or spill.read_header(file)["url"]
    if "***" in target:
        raise click.ClickException(
            f"The URL in {file} hides its password ({target}). Pass it with --url or $RUNHISTORY_SQL_URL."
        )
    with _Engine(target) as engine:
        count = spill.import_file(engine, file)
    click.echo(f"Imported {count} operations from {file} into {mask(target)}.")


DEMO_SQL = """SELECT epoch,
       MAX(CASE WHEN metric = 'train_loss_epoch' THEN value END) AS train_loss,
       MAX(CASE WHEN metric = 'eval_loss_epoch' THEN value END) AS eval_loss
FROM v_metrics
WHERE experiment = '{experiment}' AND run_name = '{run}'
GROUP BY epoch ORDER BY epoch"""


def _print_demo(url: str, run: str, epochs: int, experiment: str) -> None:
    from rich.console import Console
    from rich.table import Table

    sql = DEMO_SQL.format(experiment=experiment.replace("'", "''"), run=run.replace("'", "''"))
    with _Engine(url) as engine:
        result = engine.connect().execute(text(sql))
        columns, data = list(result.keys()), result.fetchall()
    location = _where(url)
    console = Console(soft_wrap=True)
    console.print(f"\nRecorded run [bold]{run}[/] ({epochs} epochs, experiment {experiment!r}) in {location}")
    console.print("\nQuery it with plain SQL, e.g. in sqlite3, psql or pandas:\n")
    console.print(sql, highlight=False, markup=False)
    table = Table(*columns)
    for row in data:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


def _where(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return f"{url} (file {Path(parsed.database).resolve()})"
    return mask(url)


def iter_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Yield the path of every command under ``group``, e.g. ``("db", "upgrade")``."""
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from iter_commands(command, (*prefix, name))
