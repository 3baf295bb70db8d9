"""``runhistory-sql ui``: the local dashboard (the ``ui`` extra)."""
from __future__ import annotations

import click

from ..errors import MissingExtraError
from ..read.query import DEFAULT_TIMEOUT_S
from .common import one_line_errors, url_option


@click.command("ui")
@url_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on; any other than loopback needs a token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8686, show_default=True, help="The port (0: a free one).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.option("--token", default=None, metavar="TOKEN", help="The access token (default: a new one when --host is not loopback).")
@click.option("--no-token", is_flag=True, help="Serve without a token even on a public address: anyone who can reach it reads every run.")
@click.option("--query-timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT_S, show_default=True,
              metavar="SECONDS", help="Cancel a statement of the SQL page after this long.")
@one_line_errors
def ui(url: str | None, host: str, port: int, no_browser: bool, token: str | None, no_token: bool, query_timeout: float) -> None:
    """Serve a live, read-only dashboard of the runs in the browser.

    Binds 127.0.0.1 by default. On any other address every request needs the access token,
    printed in the URL (as Jupyter does). Ctrl-C stops it.

    \b
    Example:
        runhistory-sql ui
        runhistory-sql ui --url sqlite:///runs.db --port 9000 --no-browser
        runhistory-sql ui --host 0.0.0.0          # prints http://HOST:8686/?token=...
    """
    try:
        from ..ui.auth import is_loopback, new_token
        from ..ui.server import serve
    except ImportError as e:
        raise MissingExtraError(
            f'runhistory-sql ui needs Starlette, uvicorn and Jinja2 ({e.name} is not installed). '
            'Install them with: pip install "runhistory-sql[ui]"'
        ) from e
    if token is not None and no_token:
        raise click.UsageError("Give --token or --no-token, not both.")
    if no_token:
        if not is_loopback(host):
            click.secho(
                f"WARNING: --no-token: anyone who can reach {host}:{port} can read every run, config and "
                "event of this database, and run read-only SQL on it.", fg="red", bold=True, err=True,
            )
    elif token is None and not is_loopback(host):
        token = new_token()
    try:
        serve(url, host=host, port=port, token=token, open_browser=not no_browser, query_timeout=query_timeout, say=click.echo)
    except KeyboardInterrupt:
        pass
    click.echo("runhistory-sql ui: stopped.")
