"""``runhistory-sql report``: one self-contained HTML file of a run (or a comparison of runs)."""
from __future__ import annotations

import click

from ..errors import MissingExtraError
from .common import experiment_option, one_line_errors, run_key, url_option


@click.command("report")
@click.argument("runs", nargs=-1, required=True)
@click.option("--output", "-o", default="report.html", show_default=True, help="The HTML file to write.")
@experiment_option
@url_option
@one_line_errors
def report(runs: tuple[str, ...], output: str, experiment: str | None, url: str | None) -> None:
    """Write one HTML file with the run page of RUN, or the compare page of several runs: data,
    charts and code inline, nothing fetched, so it opens offline (attach it to a pull request).

    RUN is a run name, or id:N for the run with id N; give 1 to 20.

    \b
    Example:
        runhistory-sql report baseline -o baseline.html
        runhistory-sql report baseline fast finetune -o sweep.html
    """
    try:
        import jinja2  # noqa: F401
    except ImportError as e:
        raise MissingExtraError('The HTML report needs Jinja2: pip install "runhistory-sql[ui]"') from e
    from ..ui.report import write_report  # the ui layer, only for this command

    path = write_report(url, [run_key(r) for r in runs], output, experiment=experiment)
    click.echo(f"Wrote {path}")
