"""``runhistory-sql runs`` and ``runhistory-sql history``: the runs, and one metric's points."""
from __future__ import annotations

from typing import Any

import click

from ..db.schema import STATUSES
from ..read.models import RunListing
from ..read.records import utc
from ..read.store import RunStore
from .common import experiment_option, one_line_errors, run_key, url_option
from .output import duration_text, emit, format_option


@click.command("runs")
@url_option
@click.option("--experiment", "-e", default=None, help="Only the runs of this experiment.")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only the runs with this status.")
@click.option(
    "--sort", default=None, metavar="METRIC[:min|max]",
    help="Order by the best value of METRIC (min: lowest first; max: highest first; default from "
    "the name: accuracies and scores max, the rest min). Default: by id.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show at most this many runs (after sorting).")
@click.option(
    "--metric", "-m", "metrics", multiple=True,
    help="A metric to show the last and best value of (repeatable). Default: up to 3 metrics ending in _epoch.",
)
@click.option(
    "--where", "-w", "where", multiple=True, metavar="COND",
    help="Only the runs whose param (or tag.KEY) meets COND: KEY OP VALUE, OP one of = != < <= > >=, "
    'e.g. "lr<1e-4", "model=bert-base", "tag.team=nlp" (repeatable: all must hold).',
)
@click.option("--param", "-p", "params", multiple=True, metavar="KEY", help="A param to show the current value of (repeatable).")
@format_option
@one_line_errors
def runs(
    url: str | None, experiment: str | None, status: str | None, sort: str | None, limit: int | None,
    metrics: tuple[str, ...], where: tuple[str, ...], params: tuple[str, ...], fmt: str,
) -> None:
    """List the runs: status, stages, epochs (and the last step, where runs have steps), start,
    duration, the params asked for, and the last and best value of the key metrics.

    "epochs" is the highest epoch with a recorded point (in any stage); "duration" runs until
    the run ended, or, while it runs, until now; times are UTC. A number in a --where condition
    is compared as a number, anything else as text; quote it ('42') to compare a number as text.

    \b
    Example:
        runhistory-sql runs --experiment mnist --sort eval_loss_epoch --limit 10
        runhistory-sql runs --status crashed --format csv
        runhistory-sql runs --where "lr<1e-4" --where "model=bert-base" --param lr --param model
    """
    with RunStore(url) as store:
        listing = store.runs(experiment, status, sort=sort, limit=limit, metrics=metrics, where=where)
    if not listing.runs and fmt == "table":
        click.echo("No runs found.")
        return
    columns, rows = _table(listing, fmt, list(dict.fromkeys(params)))
    emit(columns, rows, fmt)


def _table(listing: RunListing, fmt: str, params: list[str]) -> tuple[list[str], list[list[Any]]]:
    people = fmt == "table"
    stepped = any(run.last_step is not None for run in listing.runs)  # a steps column only where there are steps
    columns = ["id", "experiment", "run", "status", "stages", "epochs", *(["last_step"] if stepped else []), "started",
               "duration" if people else "duration_s", *(f"param\n{key}" if people else f"param_{key}" for key in params)]
    for metric in listing.metrics:
        columns += [f"{metric}\nlast", f"{metric}\nbest"] if people else [f"{metric}_last", f"{metric}_best"]
    rows = []
    for run in listing.runs:
        row = [
            run.run_id, run.experiment, run.run_name, run.status, run.num_stages, run.epochs,
            *([run.last_step] if stepped else []), run.created_at, duration_text(run.duration_s) if people else run.duration_s,
            *(run.params.get(key) for key in params),
        ]
        for metric, goal in listing.metrics.items():
            stat = run.metrics.get(metric)
            row += [None, None] if stat is None else [stat.last, stat.extreme(goal)]
        rows.append(row)
    return columns, rows


@click.command("history")
@click.argument("run")
@click.argument("metric")
@click.option("--stage", type=click.IntRange(min=1), default=None, help="The stage (default: the latest that has the metric).")
@experiment_option
@url_option
@format_option
@one_line_errors
def history(run: str, metric: str, stage: int | None, experiment: str | None, url: str | None, fmt: str) -> None:
    """Print the points of one metric of a run: seq, epoch, step (where it has steps), value
    and time (UTC).

    RUN is a run name, or id:N for the run with id N. Superseded points (rewound by a resume) are not shown.

    \b
    Example:
        runhistory-sql history baseline eval_loss_epoch
        runhistory-sql history id:3 train_loss_epoch --stage 1 --format csv
    """
    with RunStore(url) as store:
        record = store.run(run_key(run), experiment)
        points = store.history(record.run_id, metric, stage)
    if not points:
        names = ", ".join(record.metrics) or "(none)"
        where = f" in stage {stage}" if stage is not None else ""
        raise click.ClickException(f"Run {record.run_name!r} has no points of {metric!r}{where}. Its metrics: {names}.")
    stepped = any(step is not None for *_, step in points)  # a step column only where there are steps
    rows = [(seq, epoch, *((step,) if stepped else ()), value, utc(ms)) for seq, epoch, value, ms, step in points]
    if fmt == "table":
        click.echo(f"{metric} of run {record.run_id}: {record.run_name} (experiment {record.experiment})")
    emit(["seq", "epoch", *(["step"] if stepped else []), "value", "recorded_at"], rows, fmt)
