"""What every command shares: one-line errors, the ``--url`` option, opening the database."""
from __future__ import annotations

import functools
import shlex
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import click
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ..db.engine import make_engine, mask
from ..errors import RunHistorySQLError, brief

F = TypeVar("F", bound=Callable[..., Any])

URL_HELP = "Database URL (default: $RUNHISTORY_SQL_URL, else sqlite:///runhistory.db)."


def one_line_errors(func: F) -> F:
    """Turn library and database errors into one-line ``click.ClickException`` messages."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RunHistorySQLError as e:
            raise click.ClickException(str(e)) from e
        except SQLAlchemyError as e:
            raise click.ClickException(f"Database error: {brief(e)}") from e

    return wrapper  # type: ignore[return-value]


def url_option(func: F) -> F:
    """The ``--url`` option (falls back to ``$RUNHISTORY_SQL_URL``, then the default file)."""
    return click.option("--url", default=None, metavar="URL", help=URL_HELP)(func)  # type: ignore[return-value]


class EngineFor:
    """``with EngineFor(url) as engine``: an engine disposed of at the end."""

    def __init__(self, url: str | None, *, read_only: bool = False) -> None:
        self.engine = make_engine(url, read_only=read_only)

    def __enter__(self) -> Engine:
        return self.engine

    def __exit__(self, *exc: object) -> None:
        self.engine.dispose()


def where(url: str) -> str:
    """``url`` for a message: masked, and for a SQLite file with its absolute path."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return f"{url} (file {Path(parsed.database).resolve()})"
    return mask(url)


#: How a RUN argument names a run by id: ``id:12``. Anything else is a name, digits too.
ID_PREFIX = "id:"


def run_key(text: str) -> str | int:
    """A RUN argument: ``id:N`` is the run with id N, anything else a run name (``12`` too)."""
    digits = text[len(ID_PREFIX):] if text.startswith(ID_PREFIX) else ""
    return int(digits) if digits.isascii() and digits.isdigit() else text


def experiment_option(func: Any) -> Any:
    """``--experiment``: which experiment a run name belongs to, when several have it."""
    return click.option(
        "--experiment", "-e", default=None, help="The run's experiment (when several have a run of that name).",
    )(func)


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
