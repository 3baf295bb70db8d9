"""``runhistory-sql show``: one run with its stages, config snapshots, events and metric summary."""
from __future__ import annotations

import json
from typing import Any, Sequence

import click

from .describe import describe_event, flat_config
from ..read.listing import RunRow, run_row
from ..read.store import RunStore
from .common import experiment_option, one_line_errors, run_key, url_option
from .output import cell, duration_text, heading, plain_tree, print_table

#: Events the table leaves out (one per epoch: the metrics say as much); JSON has them all.
QUIET_EVENTS = ("epoch_end",)
SUMMARY_COLUMNS = ("metric", "stage", "count", "last", "min", "max", "goal", "best", "best_epoch")


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
    """Show a run: who and when, its stages with their TrainerRunConfig snapshots, its events
    (freeze/unfreeze, resume, stop, errors) and a summary of every metric.

    RUN is a run name, or id:N for the run with id N. Times are UTC.

    \b
    Example:
        runhistory-sql show baseline
        runhistory-sql show id:3 --format json
    """
    with RunStore(url) as store:
        record = store.run(run_key(run), experiment)
        run_id = record["run_id"]
        row = run_row(store.engine, run_id)
        configs, events, summary = store.configs(run_id), store.events(run_id), store.summary(run_id)
    if fmt == "json":
        click.echo(json.dumps(plain_tree(_structure(record, row, configs, events, summary)), indent=2, ensure_ascii=False))
        return
    _print_run(record, row)
    _print_configs(configs, row.stages)
    _print_events(events)
    _print_summary(summary)


def _tags(record: dict[str, Any]) -> dict[str, Any]:
    tags = record["tags"]
    return json.loads(tags) if isinstance(tags, str) else dict(tags or {})


def _structure(
    record: dict[str, Any], row: RunRow, configs: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]],
    summary: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    stages = [
        {"stage": stage, "configs": [c for c in configs if c["stage"] == stage]}
        for stage in range(1, row.stages + 1)
    ]
    return {
        "run": {
            "id": row.run_id, "uuid": record["run_uuid"], "experiment": row.experiment, "name": row.run_name,
            "status": row.status, "host": record["host"], "created_at": row.started, "ended_at": row.ended,
            "duration_s": row.duration_s, "stages": row.stages, "epochs": row.epochs,
            "current_epoch": record["current_epoch"], "tags": _tags(record),
        },
        "stages": stages,
        "events": list(events),
        "metrics": list(summary),
    }


def _print_run(record: dict[str, Any], row: RunRow) -> None:
    ended = cell(row.ended) if row.ended is not None else "-"
    lines = [f"Run {row.run_id}: {row.run_name} (experiment {row.experiment})"]
    for name, value in (
        ("uuid", record["run_uuid"]), ("status", row.status), ("host", record["host"] or "-"),
        ("created", cell(row.started)), ("ended", ended), ("duration", duration_text(row.duration_s)),
        ("stages", row.stages), ("epochs", row.epochs), ("tags", cell(_tags(record))),
    ):
        lines.append(f"  {name:<9} {value}")
    click.echo("\n".join(lines))


def _print_configs(configs: Sequence[dict[str, Any]], stages: int) -> None:
    click.echo()
    if not configs:
        click.echo(f"Stages: {stages}; no config snapshots (RunTrackingCallback records them).")
        return
    headers = [f"stage {c['stage']}\n{c['kind']}" for c in configs]
    flat = [flat_config(c) for c in configs]
    rows = [["captured_at", *(c["captured_at"] for c in configs)]]
    rows += [[name, *(f[name] for f in flat)] for name in flat[0] if any(f.get(name) is not None for f in flat)]
    heading("Stages and their configs")
    print_table(["field", *headers], rows)


def _print_events(events: Sequence[dict[str, Any]]) -> None:
    shown = [e for e in events if e["kind"] not in QUIET_EVENTS]
    hidden = len(events) - len(shown)
    click.echo()
    note = f" ({hidden} epoch_end not shown)" if hidden else ""
    if not shown:
        click.echo(f"Events: none{note}.")
        return
    rows = [[e["recorded_at"], e["stage"], e["epoch"], e["kind"], describe_event(e["kind"], e["payload"])] for e in shown]
    heading(f"Events{note}")
    print_table(["time", "stage", "epoch", "kind", "detail"], rows)


def _print_summary(summary: Sequence[dict[str, Any]]) -> None:
    click.echo()
    if not summary:
        click.echo("Metrics: none recorded.")
        return
    rows = [[s[c] for c in SUMMARY_COLUMNS] for s in summary]
    heading("Metrics")
    print_table(list(SUMMARY_COLUMNS), rows)
