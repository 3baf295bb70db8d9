"""``runhistory-sql show``: one run with its stages, config snapshots, events and metric summary."""
from __future__ import annotations

import json
from typing import Any, Sequence

import click

from .describe import describe_event
from ..read.models import ConfigSnapshot, Event, MetricStat, Param, Run, RunReport
from ..read.records import flat_config
from ..read.store import RunStore
from .common import experiment_option, one_line_errors, run_key, url_option
from .output import cell, duration_text, heading, plain_tree, print_table

#: Events the table leaves out (one per epoch: the metrics say as much); JSON has them all.
QUIET_EVENTS = ("epoch_end",)
SUMMARY_COLUMNS = ("metric", "stage", "count", "last", "min", "max", "goal", "best", "best_epoch", "best_step")


@click.command("show")
@click.argument("run")
@experiment_option
@url_option
@click.option(
    "--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True,
    help="table for people; json for other programs (everything, epoch_end events too).",
)
@one_line_errors
def show(run: str, experiment: str | None, url: str | None, fmt: str) -> None:
    """Show a run: who and when, its params, its stages with their TrainerRunConfig snapshots,
    its events (freeze/unfreeze, resume, stop, errors) and a summary of every metric.

    RUN is a run name, or id:N for the run with id N. Times are UTC.

    \b
    Example:
        runhistory-sql show baseline
        runhistory-sql show id:3 --format json
    """
    with RunStore(url) as store:
        report = store.report(run_key(run), experiment=experiment)
    if fmt == "json":
        click.echo(json.dumps(plain_tree(_structure(report)), indent=2, ensure_ascii=False))
        return
    _print_run(report.run)
    _print_params(report.param_history)
    _print_configs(report.configs, report.run.num_stages)
    _print_events(report.events)
    _print_summary(report.metrics)


def _stat(stat: MetricStat) -> dict[str, Any]:
    return {column: getattr(stat, column) for column in SUMMARY_COLUMNS}


def _config(snapshot: ConfigSnapshot) -> dict[str, Any]:
    # the v_configs columns in their order, as the JSON has always had them
    return {"stage": snapshot.stage, "captured_at": snapshot.captured_at, "kind": snapshot.kind, **snapshot.fields}


def _event(event: Event) -> dict[str, Any]:
    return {
        "stage": event.stage, "epoch": event.epoch, "kind": event.kind, "recorded_at": event.recorded_at,
        "payload": event.payload,
    }


def _structure(report: RunReport) -> dict[str, Any]:
    run = report.run
    stages = [
        {"stage": stage, "configs": [_config(c) for c in report.configs if c.stage == stage]}
        for stage in range(1, run.num_stages + 1)
    ]
    return {
        "run": {
            "id": run.run_id, "uuid": run.run_uuid, "experiment": run.experiment, "name": run.run_name,
            "status": run.status, "host": run.host, "created_at": run.created_at, "ended_at": run.ended_at,
            "duration_s": run.duration_s, "stages": run.num_stages, "epochs": run.epochs,
            "current_epoch": run.current_epoch, "tags": run.tags, "last_step": run.last_step,
        },
        "stages": stages,
        "events": [_event(e) for e in report.events],
        "metrics": [_stat(s) for s in report.metrics],
        "params": report.params,
        "param_history": [
            {"key": p.key, "value": p.value, "recorded_at": p.recorded_at, "current": p.current} for p in report.param_history
        ],
    }


def _print_run(run: Run) -> None:
    ended = cell(run.ended_at) if run.ended_at is not None else "-"
    lines = [f"Run {run.run_id}: {run.run_name} (experiment {run.experiment})"]
    for name, value in (
        ("uuid", run.run_uuid), ("status", run.status), ("host", run.host or "-"),
        ("created", cell(run.created_at)), ("ended", ended), ("duration", duration_text(run.duration_s)),
        ("stages", run.num_stages), ("epochs", run.epochs),
        *((("last step", run.last_step),) if run.last_step is not None else ()), ("tags", cell(run.tags)),
    ):
        lines.append(f"  {name:<9} {value}")
    click.echo("\n".join(lines))


def _print_params(history: Sequence[Param]) -> None:
    """The current params, with the values each replaced (``log_params`` keeps them all)."""
    if not history:
        return
    click.echo()
    earlier: dict[str, list[Param]] = {}
    for param in history:
        earlier.setdefault(param.key, []).append(param)
    rows = [
        [key, cell(found[-1].value), found[-1].recorded_at, ", ".join(cell(p.value) for p in found[:-1])]
        for key, found in earlier.items()
    ]
    heading("Params")
    print_table(["param", "value", "set at", "earlier values"], rows)


def _print_configs(configs: Sequence[ConfigSnapshot], stages: int) -> None:
    click.echo()
    if not configs:
        click.echo(f"Stages: {stages}; no config snapshots (RunTrackingCallback records them).")
        return
    headers = [f"stage {c.stage}\n{c.kind}" for c in configs]
    flat = [flat_config(c.fields) for c in configs]
    rows: list[list[Any]] = [["captured_at", *(c.captured_at for c in configs)]]
    rows += [[name, *(f[name] for f in flat)] for name in flat[0] if any(f.get(name) is not None for f in flat)]
    heading("Stages and their configs")
    print_table(["field", *headers], rows)


def _print_events(events: Sequence[Event]) -> None:
    shown = [e for e in events if e.kind not in QUIET_EVENTS]
    hidden = len(events) - len(shown)
    click.echo()
    note = f" ({hidden} epoch_end not shown)" if hidden else ""
    if not shown:
        click.echo(f"Events: none{note}.")
        return
    rows = [[e.recorded_at, e.stage, e.epoch, e.kind, describe_event(e.kind, e.payload)] for e in shown]
    heading(f"Events{note}")
    print_table(["time", "stage", "epoch", "kind", "detail"], rows)


def _print_summary(summary: Sequence[MetricStat]) -> None:
    click.echo()
    if not summary:
        click.echo("Metrics: none recorded.")
        return
    # best_step only where a metric has steps (SQLTracker, log_metrics): the Trainer's have none
    columns = SUMMARY_COLUMNS if any(s.best_step is not None for s in summary) else SUMMARY_COLUMNS[:-1]
    rows = [[getattr(s, column) for column in columns] for s in summary]
    heading("Metrics")
    print_table(list(columns), rows)
