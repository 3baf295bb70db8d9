"""``runhistory-sql plot``: metric curves of runs to a PNG, SVG or PDF file."""
from __future__ import annotations

from pathlib import Path

import click

from ..read.plot import X_AXES
from ..read.store import RunStore
from .common import experiment_option, one_line_errors, run_key, url_option
from .output import count


@click.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("-m", "--metric", "metrics", multiple=True, required=True, help="A metric to draw (repeat for more).")
@click.option(
    "-o", "--output", default="curves.png", show_default=True, type=click.Path(dir_okay=False, path_type=Path),
    help="The picture to write: .png, .svg or .pdf.",
)
@click.option(
    "--x", "x_axis", type=click.Choice(X_AXES), default="epoch", show_default=True,
    help="epoch; seq (the point number, for per-step metrics); or step (the step of log_metrics / SQLTracker).",
)
@click.option("--stage", type=click.IntRange(min=1), default=None, help="Stage to draw (default: the latest with the metric).")
@experiment_option
@click.option("--title", default=None, help="Title (default: the metric names).")
@url_option
@one_line_errors
def plot(
    runs: tuple[str, ...], metrics: tuple[str, ...], output: Path, x_axis: str, stage: int | None,
    experiment: str | None, title: str | None, url: str | None,
) -> None:
    """Draw metrics of runs against the epoch: one line per run and metric.

    RUN is a run name, or id:N for the run with id N. Freeze, unfreeze and resume events are
    vertical lines.

    \b
    Example:
        runhistory-sql plot baseline finetune --metric eval_loss_epoch
        runhistory-sql plot finetune -m train_loss_epoch -m eval_loss_epoch -o curves.svg
    """
    with RunStore(url) as store:
        path = store.plot([run_key(run) for run in runs], metrics, output, x=x_axis, stage=stage, experiment=experiment, title=title)
    n_runs, n_metrics = len(set(runs)), len(set(metrics))
    click.echo(f"Wrote {path} ({count(n_runs, 'run')}, {count(n_metrics, 'metric')})")

