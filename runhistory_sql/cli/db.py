"""``runhistory-sql db ...``: create, inspect and upgrade the schema."""
from __future__ import annotations

import click

from ..db import migrate
from ..read.readers import create_reader
from ..db.engine import mask, resolve_url
from .common import URL_HELP, EngineFor, OneLineGroup, one_line_errors


@click.group(cls=OneLineGroup)
def db() -> None:
    """Create, inspect and upgrade the database schema.

    \b
    Example:
        runhistory-sql db upgrade sqlite:///runs.db
    """


@db.command("upgrade")
@click.argument("url", required=False)
@click.option("--url", "url_option", default=None, metavar="URL", help=URL_HELP)
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@one_line_errors
def db_upgrade(url: str | None, url_option: str | None, revision: str) -> None:
    """Create the schema, or upgrade it to the version this package needs.

    Back the database up first.

    \b
    Example:
        runhistory-sql db upgrade sqlite:///runs.db
    """
    url = _one_url(url, url_option)
    with EngineFor(url) as engine:
        before, after = migrate.upgrade(engine, revision)
    shown = mask(resolve_url(url))
    if before == after:
        click.echo(f"{shown} is already at revision {after}.")
    else:
        click.echo(f"Upgraded {shown} from revision {before or '(empty)'} to {after}.")


@db.command("current")
@click.argument("url", required=False)
@click.option("--url", "url_option", default=None, metavar="URL", help=URL_HELP)
@one_line_errors
def db_current(url: str | None, url_option: str | None) -> None:
    """Print the database's schema revision and the one this package needs.

    \b
    Example:
        runhistory-sql db current sqlite:///runs.db
    """
    url = _one_url(url, url_option)
    with EngineFor(url, read_only=True) as engine:  # looks only: creates no file
        current = migrate.current_revision(engine)
    head = migrate.head_revision()
    state = "up to date" if current == head else f"this package needs {head}"
    click.echo(f"{mask(resolve_url(url))}: revision {current or '(empty)'} ({state})")


@db.command("check")
@click.argument("url", required=False)
@click.option("--url", "url_option", default=None, metavar="URL", help=URL_HELP)
@one_line_errors
def db_check(url: str | None, url_option: str | None) -> None:
    """Check that the schema is at head and matches the models; exit 1 if not.

    \b
    Example:
        runhistory-sql db check sqlite:///runs.db
    """
    url = _one_url(url, url_option)
    with EngineFor(url, read_only=True) as engine:  # looks only: creates no file
        problems = migrate.check(engine)
    if problems:
        raise click.ClickException("; ".join(problems))
    click.echo(f"{mask(resolve_url(url))}: schema OK at revision {migrate.head_revision()}")


@db.command("create-reader")
@click.argument("role")
@click.argument("url", required=False)
@click.option("--url", "url_option", default=None, metavar="URL", help="An administrator's URL on the database (PostgreSQL).")
@click.option("--password", "ask_password", is_flag=True, help="Ask for the role's password (else it has none).")
@one_line_errors
def db_create_reader(role: str, url: str | None, url_option: str | None, ask_password: bool) -> None:
    """Create a PostgreSQL login role that may only read this database, for runhistory-sql query.

    Run it with an administrator's URL after the schema exists. The role gets CONNECT, USAGE on
    the schema and SELECT on its tables and views (also on those created later), and nothing
    else; an existing role is given read access, if it cannot do more than read.

    \b
    Example:
        runhistory-sql db create-reader reader --url postgresql://postgres@localhost/runs
        runhistory-sql query --url postgresql://reader@localhost/runs "SELECT * FROM v_runs"
    """
    url = _one_url(url, url_option)
    password = click.prompt(f"Password for {role}", hide_input=True, confirmation_prompt=True) if ask_password else None
    reader = create_reader(url, role, password=password)
    done = "Created role" if reader.created else "Granted existing role"
    click.echo(f"{done} {role} read-only access ({reader.tables} tables and views). Use: runhistory-sql query --url {reader.url} \"SQL\"")


def _one_url(argument: str | None, option: str | None) -> str | None:
    if argument and option and argument != option:
        raise click.UsageError(f"Two different URLs given ({mask(argument)} and {mask(option)}); give one.")
    return argument or option
