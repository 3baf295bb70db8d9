"""``runhistory-sql export RUN... -o FILE``: the points of runs to CSV, JSON lines or Parquet."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..read.export import FORMATS
from ..read.store import RunStore
from .common import experiment_option, one_line_errors, run_key, url_option
from .output import count

#: Exports of more points than this show a progress bar (on stderr; gone when done).
PROGRESS_FROM = 100_000


@click.command("export")
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help=f"The file to write; its extension chooses the format: {', '.join(FORMATS)}.",
)
@click.option("--metric", "-m", "metrics", multiple=True, metavar="M", help="Only this metric (repeat for more).")
@experiment_option
@url_option
@one_line_errors
def export(runs: tuple[str, ...], output: Path, metrics: tuple[str, ...], experiment: str | None, url: str | None) -> None:
    """Write the points of runs to a CSV, JSON lines or Parquet file.

    RUN is a run name, or id:N for the run with id N. The columns are those of the v_metrics view: experiment,
    run_name, run_id, stage, metric, seq, epoch, value, value_json, recorded_at (UTC), step (empty for the Trainer's points);
    superseded points (rewound by a resume) are left out. Parquet needs the pandas extra.

    \b
    Example:
        runhistory-sql export baseline fast -o runs.csv
        runhistory-sql export baseline --metric eval_loss_epoch -o eval.parquet
    """
    with RunStore(url) as store, ProgressBar() as bar:
        result = store.export(
            [run_key(run) for run in runs], output, metrics=metrics or None, experiment=experiment, progress=bar.update,
        )
    click.echo(f"Exported {count(result.points, 'point')} of {count(result.runs, 'run')} to {result.path}")


class ProgressBar:
    """A rich progress bar on stderr that appears only for a big export, and vanishes when done."""

    def __init__(self) -> None:
        self.progress: Any = None
        self.task: Any = None

    def update(self, done: int, total: int) -> None:
        if self.progress is None and done == 0 and total > PROGRESS_FROM:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("Exporting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("export", total=total)
        if self.progress is not None:
            self.progress.update(self.task, completed=done)

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
