"""RunStore, the read side: summaries, configs, events, frames, and deleting a run.

Reads run on the trained runs of ``trained_runs.py`` (``trained_any``: a SQLite copy, then the
shared PostgreSQL database) with their real, deterministic losses. Special values (NaN, -0.0,
infinities, dicts) go through runs each test records itself on both backends (``url``).
"""
from __future__ import annotations

import os
import socket
import sys
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from helpers import dump, execute, query, same
from runhistory_sql import (
    DatabaseURLError,
    InvalidArgumentError,
    RunHistorySQLError,
    RunInUseError,
    RunNotFoundError,
    RunStore,
    SQLRunHistory,
)
from runhistory_sql.db.clock import now_ms
from runhistory_sql.read.deletion import count_rows
from runhistory_sql.errors import MissingExtraError
from runhistory_sql.db.schema import VIEW_COLUMNS
from runhistory_sql.read.models import ConfigSnapshot, Event, MetricStat, Run
from runhistory_sql.read.summaries import goal_of

NAN, INF = float("nan"), float("inf")


def at(hour: int, minute: int, second: int) -> datetime:
    """A time on the trained runs' pinned clock (2026-11-01, UTC)."""
    return datetime(2026, 11, 1, hour, minute, second, tzinfo=timezone.utc)


def record(url: str, name: str, metrics: dict[str, list[Any]], **kwargs: Any) -> None:
    """Record a run with one value per epoch of each metric (epochs 1, 2, ...)."""
    with SQLRunHistory(url, run_name=name, **kwargs) as h:
        for epoch in range(max(map(len, metrics.values()))):
            for metric, values in metrics.items():
                if epoch < len(values):
                    h.update_metric(metric, values[epoch])
            h._increment_epoch()


def plain(stat: MetricStat) -> dict[str, Any]:
    """A metric's stats as a dict, in the order ``runhistory-sql show`` prints them."""
    names = ("metric", "stage", "count", "last", "min", "max", "goal", "best", "best_epoch")
    return {name: getattr(stat, name) for name in names}




# -- goal_of --------------------------------------------------------------------------------


@pytest.mark.parametrize("metric, goal", [
    ("train_loss_epoch", "min"), ("eval_loss_epoch", "min"), ("perplexity", "min"),
    ("eval_accuracy_epoch", "max"), ("val_acc", "max"), ("top1_acc", "max"), ("top5", "max"),
    ("f1", "max"), ("eval_f1_macro", "max"), ("roc_auc", "max"), ("precision", "max"),
    ("recall@5", "max"), ("bleu_score", "max"), ("mean_iou", "max"), ("mAP50", "max"),
    ("valAccuracy", "max"), ("heatmap_loss", "min"), ("mapping_cost", "min"),
    ("f1_loss", "min"), ("top1_error", "min"),
])
def test_can_tell_the_goal_of_a_metric_from_its_name(metric, goal):
    assert goal_of(metric) == goal


# -- summary --------------------------------------------------------------------------------

BASELINE_SUMMARY = [
    {"metric": "eval_loss_epoch", "stage": 1, "count": 3, "last": 2.8346123695373535, "min": 2.8346123695373535,
     "max": 9.308703422546387, "goal": "min", "best": 2.8346123695373535, "best_epoch": 3},
    {"metric": "evaluation_loss", "stage": 2, "count": 1, "last": 2.8346123695373535, "min": 2.8346123695373535,
     "max": 2.8346123695373535, "goal": "min", "best": 2.8346123695373535, "best_epoch": 1},
    {"metric": "train_loss_epoch", "stage": 1, "count": 3, "last": 5.610372543334961, "min": 5.610372543334961,
     "max": 11.459332466125488, "goal": "min", "best": 5.610372543334961, "best_epoch": 3},
]


@pytest.mark.parametrize(
    ("filters", "names"),
    [
        ({}, ["baseline", "fast", "finetune", "resumed", "solo"]),
        ({"experiment": "cli"}, ["baseline", "fast", "finetune", "resumed"]),
        ({"name_like": "f%"}, ["fast", "finetune"]),
        ({"experiment": "other", "status": "finished"}, ["solo"]),
        ({"status": "running"}, []),
    ],
)
def test_can_list_runs_filtered(trained_any, filters, names):
    with RunStore(trained_any) as store:
        found = store.runs(**filters)

    assert [run.run_name for run in found.runs] == names
    assert [f.name for f in fields(Run)][:11] == list(VIEW_COLUMNS["v_runs"])


def test_can_summarise_a_run_per_metric_in_its_latest_stage(trained_any):
    with RunStore(trained_any) as store:
        summary = store.summary("baseline")

    assert [plain(s) for s in summary] == BASELINE_SUMMARY


def test_summary_of_a_resumed_run_counts_its_effective_points(trained_any):
    with RunStore(trained_any) as store:
        summary = [plain(s) for s in store.summary("resumed", experiment="cli")]

    assert [(s["metric"], s["count"], s["best"], s["best_epoch"], s["last"]) for s in summary] == [
        ("eval_loss_epoch", 5, 0.7618724703788757, 5, 0.7618724703788757),
        ("train_loss_epoch", 5, 0.6088126301765442, 5, 0.6088126301765442),
    ]


def test_summary_can_be_told_the_goal_of_a_metric(trained_any):
    with RunStore(trained_any) as store:
        summary = [plain(s) for s in store.summary(2, goals={"eval_loss_epoch": "max"})]

    assert [(s["metric"], s["goal"], s["best"], s["best_epoch"]) for s in summary] == [
        ("eval_loss_epoch", "max", 0.2738294303417206, 1),
        ("train_loss_epoch", "min", 0.08879365026950836, 3),
    ]


def test_a_wrong_goal_is_a_clear_error(trained_any):
    with RunStore(trained_any) as store, pytest.raises(ValueError) as raised:
        store.summary("fast", goals={"eval_loss_epoch": "lowest"})

    assert str(raised.value) == "The goal of metric 'eval_loss_epoch' must be 'min' or 'max', not 'lowest'."


FINETUNE_EVAL = MetricStat("eval_loss_epoch", 1, 5, 1.0275676250457764, 1.0275676250457764, 9.399500846862793, "min")


def test_can_read_one_run_typed_with_utc_times(trained_any):
    with RunStore(trained_any) as store:
        run = store.run("finetune")

    assert (run.run_id, run.run_uuid, run.experiment, run.status, run.host, run.tags) == (
        3, "00000000-0000-4000-8000-000000000003", "cli", "finished", "trainer-1", {})
    assert (run.created_at, run.ended_at, run.current_epoch, run.num_stages, run.epochs, run.duration_s) == (
        at(12, 0, 0), at(12, 5, 0), 6, 1, 5, 300.0)
    assert run.metrics["eval_loss_epoch"] == FINETUNE_EVAL  # best_epoch is not read for a run


def test_can_list_runs_sorted_with_their_key_metrics(trained_any):
    with RunStore(trained_any) as store:
        listing = store.runs(experiment="cli", sort="eval_loss_epoch", limit=2)

    assert listing.metrics == {"eval_loss_epoch": "min", "train_loss_epoch": "min"}
    assert [(r.run_name, r.metrics["eval_loss_epoch"].best) for r in listing.runs] == [
        ("fast", 0.10933156311511993), ("resumed", 0.7618724703788757)]


def test_can_report_a_run_with_its_configs_events_and_metrics(trained_any):
    with RunStore(trained_any) as store:
        report = store.report("finetune", experiment="cli")
        run = store.run(3)

    assert report.run == run
    assert [(c.stage, c.kind, c.fields["num_epochs"]) for c in report.configs] == [(1, "train", 2), (1, "train", 4)]
    assert [e.kind for e in report.events if e.kind != "epoch_end"] == [
        "freeze", "training_run_start", "training_run_end", "unfreeze", "training_run_start", "training_run_end"]
    assert [(s.metric, s.best, s.best_epoch) for s in report.metrics] == [
        ("eval_loss_epoch", 1.0275676250457764, 5), ("train_loss_epoch", 0.7486743927001953, 5)]


def test_can_compare_runs_configs_and_metrics(trained_any):
    with RunStore(trained_any) as store:
        comparison = store.compare(["baseline", 2], ["eval_loss_epoch"])

    assert [r.run_name for r in comparison.runs] == ["baseline", "fast"]
    assert comparison.config_differences[:2] == [
        ("train_per_device_batch_size", [32, 16]), ("train_dl_kwargs.batch_size", [32, 16])]
    assert len(comparison.config_differences) == 9
    assert [(s.best, s.best_epoch) for s in comparison.metrics["eval_loss_epoch"]] == [
        (2.8346123695373535, 3), (0.10933156311511993, 3)]


@pytest.mark.parametrize(("runs", "metrics", "message"), [
    (["baseline"], None, "Compare needs a list of at least 2 runs, not ['baseline']."),
    (["baseline", 1], None, "Run 'baseline' (id 1) is given twice; compare different runs."),
    (["baseline", "fast"], ["nope"], "None of these runs has the metric 'nope'. Their metrics: eval_loss_epoch, "
     "evaluation_loss, train_loss_epoch."),
])
def test_compare_refuses_what_it_cannot_compare(trained_any, runs, metrics, message):
    with RunStore(trained_any) as store, pytest.raises(InvalidArgumentError) as raised:
        store.compare(runs, metrics)

    assert str(raised.value) == message


def test_summary_of_an_unknown_run_names_it(trained_any):
    with RunStore(trained_any) as store, pytest.raises(RunNotFoundError, match="no run named 'nope'"):
        store.summary("nope")


def test_summary_is_exact_with_nan_signed_zeros_infinities_and_json(url):
    record(url, "odd", {
        "loss": [2.0, NAN, -0.0, 1.0],
        "zero_loss": [0.0, -0.0, 0.0],
        "val_acc": [0.5, INF, INF, NAN],
        "low_acc": [-0.0, -INF],
        "all_nan": [NAN, NAN],
        "report": [{"f1": 0.5}, {"f1": 0.75}],
        "mixed_loss": [{"note": "warm-up"}, 3.0, 4.0],
    })

    with RunStore(url) as store:
        summary = {s.pop("metric"): tuple(s.values()) for s in map(plain, store.summary("odd"))}

    # stage, count, last, min, max, goal, best, best_epoch
    expected = {
        "all_nan": (1, 2, NAN, None, None, "min", None, None),
        "loss": (1, 4, 1.0, -0.0, 2.0, "min", -0.0, 3),
        "low_acc": (1, 2, -INF, -INF, -0.0, "max", -0.0, 1),
        "mixed_loss": (1, 3, 4.0, 3.0, 4.0, "min", 3.0, 2),
        "report": (1, 2, {"f1": 0.75}, None, None, "min", None, None),
        "val_acc": (1, 4, NAN, 0.5, INF, "max", INF, 2),
        "zero_loss": (1, 3, 0.0, -0.0, 0.0, "min", -0.0, 2),
    }
    assert list(summary) == sorted(expected)
    assert [m for m in expected if not same(summary[m], expected[m])] == [], summary


def test_summary_takes_each_metric_from_the_latest_stage_having_it_and_skips_deleted_ones(url):
    with SQLRunHistory(url, run_name="staged") as h:
        for loss in (5.0, 4.0):
            h.update_metric("loss", loss)
            h.update_metric("lr", 0.1)
            h.update_metric("gone", 1.0)
            h._increment_epoch()
        h.delete_metric("gone")
        h.reset()
        h.update_metric("loss", 3.0)

    with RunStore(url) as store:
        summary = [(s.metric, s.stage, s.count, s.last) for s in store.summary("staged")]

    assert summary == [("loss", 2, 1, 3.0), ("lr", 1, 2, 0.1)]


# -- configs and events ----------------------------------------------------------------------

DL = {"num_workers": 2, "pin_memory": False, "worker_init_fn": "pytorch_accelerated.utils.worker_init_fn"}
TRAIN_FIELDS = {
    "num_epochs": 3, "train_per_device_batch_size": 32,
    "train_dl_kwargs": {**DL, "shuffle": True, "batch_size": 32}, "eval_per_device_batch_size": 32,
    "eval_dl_kwargs": {**DL, "shuffle": False, "batch_size": 32}, "gradient_accumulation_steps": 1,
    "gradient_clip_value": None, "train_total_batch_size": 32, "eval_total_batch_size": 32,
    "num_update_steps_per_epoch": 16, "num_local_update_steps_per_epoch": 16, "max_num_train_steps": 49,
    "is_local_process_zero": True, "is_world_process_zero": True, "is_distributed": False,
    "mixed_precision": "no", "num_processes": 1,
}
BASELINE_CONFIGS = [
    ConfigSnapshot(1, "train", at(10, 0, 1), TRAIN_FIELDS),
    ConfigSnapshot(2, "evaluate", at(10, 0, 2), {
        **TRAIN_FIELDS, "num_epochs": 1, "eval_per_device_batch_size": 64,
        "eval_dl_kwargs": {**DL, "shuffle": False, "batch_size": 64}, "eval_total_batch_size": 64,
        "num_update_steps_per_epoch": 0, "num_local_update_steps_per_epoch": 0, "max_num_train_steps": 1,
    }),
]


def test_can_read_the_config_snapshots_of_a_run(trained_any):
    with RunStore(trained_any) as store:
        configs = store.configs("baseline")

    assert configs == BASELINE_CONFIGS
    assert [tuple(c.fields) for c in configs] == [VIEW_COLUMNS["v_configs"][4:]] * 2  # v_configs' order
    assert all(type(c.fields["is_distributed"]) is bool for c in configs)


def test_configs_of_a_run_trained_twice_in_one_stage(trained_any):
    with RunStore(trained_any) as store:
        configs = store.configs("finetune")

    assert [(c.stage, c.kind, c.fields["num_epochs"], c.fields["max_num_train_steps"], c.captured_at) for c in configs] == [
        (1, "train", 2, 33, at(12, 0, 1)), (1, "train", 4, 65, at(12, 0, 2)),
    ]


def test_configs_and_events_are_typed_with_utc_times(trained_any):
    with RunStore(trained_any) as store:
        (snapshot, _), events = store.configs("baseline"), store.events("finetune")

    assert type(snapshot) is ConfigSnapshot and {type(e) for e in events} == {Event}
    assert [f.name for f in fields(ConfigSnapshot)] == ["stage", "kind", "captured_at", "fields"]
    assert [f.name for f in fields(Event)] == ["event_id", "stage", "epoch", "kind", "recorded_at", "payload"]
    assert (snapshot.captured_at.tzinfo, snapshot.captured_at.utcoffset()) == (timezone.utc, timedelta(0))
    assert {(e.recorded_at.tzinfo, e.recorded_at.utcoffset()) for e in events} == {(timezone.utc, timedelta(0))}
    assert events[0].recorded_at.isoformat() == "2026-11-01T12:00:01+00:00"


FINETUNE_FIRST_EVENT, RESUMED_EVENT = 13, 28  # v_events.event_id in the trained runs
FREEZE = {
    "call": "freeze", "args": {"from_index": 0, "to_index": 0, "set_modules_as_eval": False},
    "groups_frozen": [0], "groups_unfrozen": [], "params_frozen": 2, "numel_frozen": 288, "params_unfrozen": 0,
    "numel_unfrozen": 0, "trainable_numel": 1089, "total_numel": 1377, "frozen_groups_after": [0],
    "train_mode_after": ["train", "train", "train"],
}


def test_can_read_the_events_of_a_run_in_order(trained_any):
    with RunStore(trained_any) as store:
        events = store.events("finetune")

    assert events[0] == Event(FINETUNE_FIRST_EVENT, 1, 1, "freeze", at(12, 0, 1), FREEZE)
    assert [e.event_id for e in events] == list(range(FINETUNE_FIRST_EVENT, FINETUNE_FIRST_EVENT + 11))
    assert [(e.epoch, e.kind, e.payload.get("epoch")) for e in events] == [
        (1, "freeze", None), (1, "training_run_start", None), (1, "epoch_end", 1), (2, "epoch_end", 2),
        (3, "training_run_end", 3), (3, "unfreeze", None), (3, "training_run_start", None),
        (3, "epoch_end", 3), (4, "epoch_end", 4), (5, "epoch_end", 5), (6, "training_run_end", 6),
    ]
    assert [e.recorded_at for e in events] == [at(12, 0, s) for s in range(1, 12)]


def test_can_read_the_events_of_one_kind(trained_any):
    with RunStore(trained_any) as store:
        resumed = store.events("resumed", kind="resumed")
        none = store.events("baseline", "freeze")

    assert resumed == [Event(
        RESUMED_EVENT, 1, 3, "resumed", at(13, 0, 5),
        {"host": "trainer-1", "pid": 4242, "from_epoch": 3, "stage": 1, "previous_status": "finished"},
    )]
    assert none == []


def test_events_of_the_same_millisecond_keep_the_order_they_were_recorded_in(url):
    with SQLRunHistory(url, run_name="busy") as h:
        for kind in ("checkpoint", "lr_change", "alert"):
            h.log_event(kind, at=kind)
    execute(url, "UPDATE events SET recorded_at = 1793527200000")

    with RunStore(url) as store:
        events = [(e.kind, e.payload, e.recorded_at) for e in store.events("busy")]

    same_time = at(10, 0, 0)
    assert events == [
        ("checkpoint", {"at": "checkpoint"}, same_time), ("lr_change", {"at": "lr_change"}, same_time),
        ("alert", {"at": "alert"}, same_time),
    ]


# -- frame ----------------------------------------------------------------------------------


def rows_of(frame: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in frame.itertuples(index=False)]


def test_can_read_histories_across_runs_as_a_data_frame(trained_any):

    with RunStore(trained_any) as store:
        frame = store.frame(["fast", "baseline"], "eval_loss_epoch")

    def ts(hour: int, second: int) -> Any:
        return pd.Timestamp(at(hour, 0, second))

    assert rows_of(frame) == [
        ("cli", "baseline", 1, 1, "eval_loss_epoch", 0, 1, 9.308703422546387, ts(10, 0)),
        ("cli", "baseline", 1, 1, "eval_loss_epoch", 1, 2, 7.274295330047607, ts(10, 1)),
        ("cli", "baseline", 1, 1, "eval_loss_epoch", 2, 3, 2.8346123695373535, ts(10, 2)),
        ("cli", "fast", 2, 1, "eval_loss_epoch", 0, 1, 0.2738294303417206, ts(11, 0)),
        ("cli", "fast", 2, 1, "eval_loss_epoch", 1, 2, 0.11056560277938843, ts(11, 1)),
        ("cli", "fast", 2, 1, "eval_loss_epoch", 2, 3, 0.10933156311511993, ts(11, 2)),
    ]


def test_a_data_frame_has_the_same_columns_and_types_on_every_backend(trained_any):

    with RunStore(trained_any) as store:
        dtypes = {name: str(dtype) for name, dtype in store.frame().dtypes.items()}
        empty = {name: str(dtype) for name, dtype in store.frame([]).dtypes.items()}

    assert dtypes == empty == {
        "experiment": "category", "run_name": "category", "run_id": "int64", "stage": "int64",
        "metric": "category", "seq": "int64", "epoch": "int64", "value": "float64",
        "recorded_at": "datetime64[ms, UTC]",
    }


def test_a_data_frame_can_be_filtered_by_experiment_and_stage(trained_any):

    with RunStore(trained_any) as store:
        everything = store.frame()
        other = store.frame(experiment="other")
        second = store.frame(stage=2)

    counts = everything.groupby(["run_name", "metric"], observed=True).size()
    assert counts.to_dict() == {
        ("baseline", "eval_loss_epoch"): 3, ("baseline", "evaluation_loss"): 1, ("baseline", "train_loss_epoch"): 3,
        ("fast", "eval_loss_epoch"): 3, ("fast", "train_loss_epoch"): 3, ("finetune", "eval_loss_epoch"): 5,
        ("finetune", "train_loss_epoch"): 5, ("resumed", "eval_loss_epoch"): 5, ("resumed", "train_loss_epoch"): 5,
        ("solo", "eval_loss_epoch"): 1, ("solo", "train_loss_epoch"): 1,
    }
    assert rows_of(other[["run_name", "metric", "value"]]) == [
        ("solo", "eval_loss_epoch", 9.034934997558594), ("solo", "train_loss_epoch", 11.323795318603516),
    ]
    assert rows_of(second[["run_name", "stage", "metric", "epoch", "value"]]) == [
        ("baseline", 2, "evaluation_loss", 1, 2.8346123695373535),
    ]


def test_a_data_frame_keeps_nan_signed_zeros_infinities_and_json_exact(url):
    record(url, "odd", {"loss": [1.5, NAN, -0.0, 0.0, INF, -INF, {"f1": 0.5}, 2.5]})

    with RunStore(url) as store:
        frame = store.frame("odd", value_json=True)

    assert same(list(frame["value"]), [1.5, NAN, -0.0, 0.0, INF, -INF, NAN, 2.5])
    assert [None if pd.isna(text) else text for text in frame["value_json"]] == [None] * 6 + ['{"f1": 0.5}', None]
    assert list(frame["epoch"]) == list(range(1, 9))


def test_a_data_frame_and_a_summary_hold_only_the_effective_points_of_a_rewound_run(url):
    with SQLRunHistory(url, run_name="rewound") as h:
        for loss in (1.0, 2.0, 3.0):
            h.update_metric("loss", loss)
            h._increment_epoch()
        h._set_epoch(2)  # as train(resume_from=...) does: epochs >= 2 are superseded
        for loss in (0.5, 0.25):
            h.update_metric("loss", loss)
            h._increment_epoch()

    with RunStore(url) as store:
        frame = store.frame("rewound")
        summary = [plain(s) for s in store.summary("rewound")]

    assert rows_of(frame[["seq", "epoch", "value"]]) == [(0, 1, 1.0), (1, 2, 0.5), (2, 3, 0.25)]
    assert summary == [{
        "metric": "loss", "stage": 1, "count": 3, "last": 0.25, "min": 0.25, "max": 1.0, "goal": "min",
        "best": 0.25, "best_epoch": 3,
    }]


def test_a_data_frame_of_an_unknown_run_names_it(trained_any):

    with RunStore(trained_any) as store, pytest.raises(RunNotFoundError, match="no run named 'nope'"):
        store.frame(["baseline", "nope"])


def test_a_data_frame_without_pandas_says_how_to_install_it(trained_url, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # what "import pandas" sees without the extra

    with RunStore(trained_url) as store, pytest.raises(MissingExtraError) as raised:
        store.frame()

    assert str(raised.value) == (
        'Reading runs as a DataFrame needs pandas, which is not installed. Install it with: '
        'pip install "runhistory-sql[pandas]"'
    )
    assert isinstance(raised.value, ImportError) and isinstance(raised.value, RunHistorySQLError)


# -- read-only by default ---------------------------------------------------------------------


@pytest.mark.parametrize("statement", [
    "DELETE FROM runs", "UPDATE runs SET name = 'x'", "INSERT INTO experiments (name, created_at) VALUES ('x', 0)",
    "DROP TABLE points", "CREATE TABLE notes (id INTEGER)",
])
def test_a_default_store_cannot_write(url, statement):
    record(url, "kept", {"loss": [1.0, 0.5]})
    before = dump(url)

    with RunStore(url) as store, pytest.raises(DBAPIError), store.engine.begin() as conn:
        conn.execute(text(statement))

    assert dump(url) == before


def test_a_store_on_a_missing_sqlite_file_is_a_clear_error_and_creates_no_file(tmp_path):
    path = tmp_path / "nope.db"

    for read_only in (True, False):
        with pytest.raises(DatabaseURLError) as raised:
            RunStore(f"sqlite:///{path}", read_only=read_only)

        assert str(raised.value) == (
            f"There is no database at {path} (URL sqlite:///{path}). Record a run first "
            "(e.g. runhistory-sql demo), or point --url / $RUNHISTORY_SQL_URL at your database."
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("open_it", [
    lambda url: RunStore(url).runs(),
    lambda url: RunStore(url, read_only=False).runs(),
    lambda url: SQLRunHistory(url, experiment="e"),
])
def test_a_file_that_is_not_a_database_is_a_clear_error_and_stays_as_it_was(tmp_path, open_it):
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n")

    with pytest.raises(DatabaseURLError) as raised:
        open_it(f"sqlite:///{path}")

    assert str(raised.value) == (
        f"The file {path} is not a SQLite database (URL sqlite:///{path}). Point --url / "
        "$RUNHISTORY_SQL_URL at a runhistory-sql database, or at a new file to create one there."
    )
    assert path.read_text() == "not a database\n"
    assert list(tmp_path.iterdir()) == [path]


# -- delete ---------------------------------------------------------------------------------


def test_a_read_only_store_refuses_to_delete_and_says_how(trained_url):
    before = dump(trained_url)

    with RunStore(trained_url) as store, pytest.raises(RunHistorySQLError) as raised:
        store.delete("baseline")

    assert str(raised.value) == (
        f"RunStore({trained_url!r}) is read-only, so it cannot delete run 'baseline'. "
        "Open it with RunStore(url, read_only=False) to delete runs."
    )
    assert dump(trained_url) == before


def without_run(tables: dict[str, list[tuple[Any, ...]]], run_id: int, series_ids: set[int]) -> dict[str, list[tuple[Any, ...]]]:
    """``tables`` (a ``dump``) less the rows of one run: column 0 of runs, points and point_blocks,
    1 elsewhere."""
    keep = {
        "runs": lambda row: row[0] != run_id, "points": lambda row: row[0] not in series_ids,
        "point_blocks": lambda row: row[0] not in series_ids,
        **{t: (lambda row: row[1] != run_id) for t in ("stages", "series", "configs", "events")},
    }
    return {t: [row for row in rows if keep.get(t, lambda _: True)(row)] for t, rows in tables.items()}


def test_can_count_what_deleting_a_run_would_remove(trained_any):
    with RunStore(trained_any) as store:
        counted = store.rows_of("finetune")

    assert counted == {"points": 10, "series": 2, "configs": 2, "events": 11, "stages": 1, "params": 0, "runs": 1}


def test_can_delete_a_run_and_leave_every_other_run_untouched(trained_url):
    before = dump(trained_url)
    finetune_series = {s for (s,) in query(trained_url, "SELECT id FROM series WHERE run_id = 3")}

    with RunStore(trained_url, read_only=False) as store:
        removed = store.delete("finetune")
        names = [run.run_name for run in store.runs().runs]

    assert removed == {"points": 10, "series": 2, "configs": 2, "events": 11, "stages": 1, "params": 0, "runs": 1}
    assert names == ["baseline", "fast", "resumed", "solo"]
    assert dump(trained_url) == without_run(before, 3, finetune_series)


def test_can_delete_a_run_on_every_backend(url):
    record(url, "keep", {"loss": [1.0, 0.5]}, experiment="e")
    with SQLRunHistory(url, experiment="e", run_name="drop") as h:
        h.record_config("train", {"num_epochs": 2})
        h.log_params({"lr": 0.1})
        h.log_params({"lr": 0.2})  # its params go too, both rows
        h.update_metric("loss", 3.0)
        h.log_event("checkpoint", path="a.pt")
        h.reset()
        h.update_metric("eval_acc", 0.5)
    with RunStore(url) as store, store.engine.connect() as conn:
        kept = (store.run("keep"), store.summary("keep"))
        counted = count_rows(conn, store.run("drop").run_id)

    with RunStore(url, read_only=False) as store:
        removed = store.delete("drop", experiment="e")
    with RunStore(url) as store:
        after = (store.run("keep"), store.summary("keep"))
        runs = [run.run_name for run in store.runs().runs]

    assert removed == counted == {"points": 2, "series": 2, "configs": 1, "events": 1, "stages": 2, "params": 2, "runs": 1}
    assert runs == ["keep"]
    assert after == kept
    assert query(url, "SELECT name FROM experiments") == [("e",)]
    assert query(url, "SELECT COUNT(*) FROM points") == [(2,)]


def test_cannot_delete_a_run_this_process_is_still_writing(url):
    h = SQLRunHistory(url, run_name="live")
    h.update_metric("loss", 1.0)
    h.flush()
    try:
        with RunStore(url, read_only=False) as store, pytest.raises(RunInUseError) as raised:
            store.delete("live")
    finally:
        h.close()

    assert str(raised.value) == (
        "Run 'live' is open for writing in this process. close() its SQLRunHistory first, then delete it."
    )
    assert query(url, "SELECT name FROM runs") == [("live",)]


def test_cannot_delete_a_run_another_live_process_on_this_host_holds(url):
    record(url, "held", {"loss": [1.0]})
    parent, host = os.getppid(), socket.gethostname()
    execute(url, f"UPDATE runs SET status = 'running', pid = {parent}, host = '{host}'")

    with RunStore(url, read_only=False) as store, pytest.raises(RunInUseError) as raised:
        store.delete("held")

    assert str(raised.value) == (
        f"Run 'held' is held by live process {parent} on {host}. Wait for it to end (or stop it), then delete the run."
    )
    assert query(url, "SELECT COUNT(*) FROM points") == [(1,)]


@pytest.mark.parametrize("heartbeat_age_ms, deleted", [(0, False), (10 * 60_000, True)])
def test_a_run_of_another_host_is_held_while_its_heartbeat_is_fresh(url, heartbeat_age_ms, deleted):
    record(url, "remote", {"loss": [1.0]})
    execute(url, f"UPDATE runs SET status = 'running', host = 'elsewhere', heartbeat_at = {now_ms() - heartbeat_age_ms}")

    with RunStore(url, read_only=False) as store:
        if deleted:
            store.delete("remote")
        else:
            with pytest.raises(RunInUseError, match="held by live process .* on elsewhere"):
                store.delete("remote")

    assert query(url, "SELECT COUNT(*) FROM runs") == [(0 if deleted else 1,)]
