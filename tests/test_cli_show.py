"""``runhistory-sql show`` and ``runhistory-sql compare`` on the trained runs of ``trained_runs.py``
(real losses, pinned clock), with the exact output; and the event lines they print."""
from __future__ import annotations

import json

import pytest

from runhistory_sql import SQLRunHistory
from runhistory_sql.cli.describe import describe_event
from runhistory_sql.read.records import config_differences


SHOW_BASELINE = """\
Run 1: baseline (experiment cli)
  uuid      00000000-0000-4000-8000-000000000001
  status    finished
  host      trainer-1
  created   2026-11-01 10:00:00
  ended     2026-11-01 10:03:00
  duration  3m 00s
  stages    2
  epochs    3
  tags      {}

Stages and their configs
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓
┃                                  ┃ stage 1                                  ┃ stage 2                                  ┃
┃ field                            ┃ train                                    ┃ evaluate                                 ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩
│ captured_at                      │ 2026-11-01 10:00:01                      │ 2026-11-01 10:00:02                      │
│ num_epochs                       │ 3                                        │ 1                                        │
│ train_per_device_batch_size      │ 32                                       │ 32                                       │
│ train_dl_kwargs.batch_size       │ 32                                       │ 32                                       │
│ train_dl_kwargs.num_workers      │ 2                                        │ 2                                        │
│ train_dl_kwargs.pin_memory       │ false                                    │ false                                    │
│ train_dl_kwargs.shuffle          │ true                                     │ true                                     │
│ train_dl_kwargs.worker_init_fn   │ pytorch_accelerated.utils.worker_init_fn │ pytorch_accelerated.utils.worker_init_fn │
│ eval_per_device_batch_size       │ 32                                       │ 64                                       │
│ eval_dl_kwargs.batch_size        │ 32                                       │ 64                                       │
│ eval_dl_kwargs.num_workers       │ 2                                        │ 2                                        │
│ eval_dl_kwargs.pin_memory        │ false                                    │ false                                    │
│ eval_dl_kwargs.shuffle           │ false                                    │ false                                    │
│ eval_dl_kwargs.worker_init_fn    │ pytorch_accelerated.utils.worker_init_fn │ pytorch_accelerated.utils.worker_init_fn │
│ gradient_accumulation_steps      │ 1                                        │ 1                                        │
│ train_total_batch_size           │ 32                                       │ 32                                       │
│ eval_total_batch_size            │ 32                                       │ 64                                       │
│ num_update_steps_per_epoch       │ 16                                       │ 0                                        │
│ num_local_update_steps_per_epoch │ 16                                       │ 0                                        │
│ max_num_train_steps              │ 49                                       │ 1                                        │
│ is_local_process_zero            │ true                                     │ true                                     │
│ is_world_process_zero            │ true                                     │ true                                     │
│ is_distributed                   │ false                                    │ false                                    │
│ mixed_precision                  │ no                                       │ no                                       │
│ num_processes                    │ 1                                        │ 1                                        │
└──────────────────────────────────┴──────────────────────────────────────────┴──────────────────────────────────────────┘

Events (3 epoch_end not shown)
┏━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━┳━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━┓
┃ time                ┃ stage ┃ epoch ┃ kind                 ┃ detail   ┃
┡━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━╇━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━┩
│ 2026-11-01 10:00:01 │ 1     │ 1     │ training_run_start   │ 3 epochs │
│ 2026-11-01 10:00:05 │ 1     │ 4     │ training_run_end     │          │
│ 2026-11-01 10:00:06 │ 2     │ 1     │ evaluation_run_start │          │
│ 2026-11-01 10:00:07 │ 2     │ 1     │ evaluation_run_end   │          │
└─────────────────────┴───────┴───────┴──────────────────────┴──────────┘

Metrics
┏━━━━━━━━━━━━━━━━━━┳━━━━━━━┳━━━━━━━┳━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━┳━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━━┓
┃ metric           ┃ stage ┃ count ┃ last    ┃ min     ┃ max     ┃ goal ┃ best    ┃ best_epoch ┃
┡━━━━━━━━━━━━━━━━━━╇━━━━━━━╇━━━━━━━╇━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━╇━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━━┩
│ eval_loss_epoch  │ 1     │ 3     │ 2.83461 │ 2.83461 │ 9.3087  │ min  │ 2.83461 │ 3          │
│ evaluation_loss  │ 2     │ 1     │ 2.83461 │ 2.83461 │ 2.83461 │ min  │ 2.83461 │ 1          │
│ train_loss_epoch │ 1     │ 3     │ 5.61037 │ 5.61037 │ 11.4593 │ min  │ 5.61037 │ 3          │
└──────────────────┴───────┴───────┴─────────┴─────────┴─────────┴──────┴─────────┴────────────┘
"""

COMPARE_BASELINE_FAST = """\
Config fields that differ (latest train snapshot of each run)
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━┓
┃ config field                     ┃ baseline ┃ fast ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━┩
│ train_per_device_batch_size      │ 32       │ 16   │
│ train_dl_kwargs.batch_size       │ 32       │ 16   │
│ eval_per_device_batch_size       │ 32       │ 16   │
│ eval_dl_kwargs.batch_size        │ 32       │ 16   │
│ train_total_batch_size           │ 32       │ 16   │
│ eval_total_batch_size            │ 32       │ 16   │
│ num_update_steps_per_epoch       │ 16       │ 32   │
│ num_local_update_steps_per_epoch │ 16       │ 32   │
│ max_num_train_steps              │ 49       │ 97   │
└──────────────────────────────────┴──────────┴──────┘

Metrics
┏━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━┓
┃ metric           ┃            ┃ baseline          ┃ fast                ┃
┡━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━┩
│ eval_loss_epoch  │ best (min) │ 2.83461 (epoch 3) │ 0.109332 (epoch 3)  │
│                  │ last       │ 2.83461           │ 0.109332            │
│ train_loss_epoch │ best (min) │ 5.61037 (epoch 3) │ 0.0887937 (epoch 3) │
│                  │ last       │ 5.61037           │ 0.0887937           │
└──────────────────┴────────────┴───────────────────┴─────────────────────┘
"""


FINETUNE_EVENTS = """\
Events (5 epoch_end not shown)
┏━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━┳━━━━━━━┳━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓
┃ time                ┃ stage ┃ epoch ┃ kind               ┃ detail                                                        ┃
┡━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━╇━━━━━━━╇━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩
│ 2026-11-01 12:00:01 │ 1     │ 1     │ freeze             │ froze group 0 (288 params); 1,089 of 1,377 params trainable   │
│ 2026-11-01 12:00:02 │ 1     │ 1     │ training_run_start │ 2 epochs                                                      │
│ 2026-11-01 12:00:05 │ 1     │ 3     │ training_run_end   │                                                               │
│ 2026-11-01 12:00:06 │ 1     │ 3     │ unfreeze           │ unfroze group 0 (288 params); 1,377 of 1,377 params trainable │
│ 2026-11-01 12:00:07 │ 1     │ 3     │ training_run_start │ 4 epochs                                                      │
│ 2026-11-01 12:00:11 │ 1     │ 6     │ training_run_end   │                                                               │
└─────────────────────┴───────┴───────┴────────────────────┴───────────────────────────────────────────────────────────────┘
"""

RESUMED_EVENT = "│ 2026-11-01 13:00:05 │ 1     │ 3     │ resumed            │ from epoch 3 (was finished), on trainer-1 pid 4242 │\n"


def test_can_show_a_run_with_its_stages_configs_events_and_metrics(run, trained_url):
    result = run("show", "baseline", "--url", trained_url)

    assert result.exit_code == 0
    assert result.output == SHOW_BASELINE


def test_show_lists_freezes_with_what_became_trainable(run, trained_url):
    result = run("show", "id:3", "--url", trained_url)

    assert FINETUNE_EVENTS in result.output


def test_show_lists_a_resume_with_its_epoch(run, trained_url):
    result = run("show", "resumed", "-e", "cli", "--url", trained_url)

    assert RESUMED_EVENT in result.output


def test_show_says_when_there_are_no_configs_events_or_metrics(run, trained_url):
    SQLRunHistory(trained_url, experiment="bare", run_name="empty").close()

    result = run("show", "empty", "--url", trained_url)

    assert result.output.splitlines()[11:] == [
        "Stages: 1; no config snapshots (RunTrackingCallback records them).",
        "",
        "Events: none.",
        "",
        "Metrics: none recorded.",
    ]


def test_can_show_a_run_as_json(run, trained_any):
    result = run("show", "finetune", "--url", trained_any, "--format", "json")

    shown = json.loads(result.output)
    assert shown["run"] == {
        "id": 3, "uuid": "00000000-0000-4000-8000-000000000003", "experiment": "cli", "name": "finetune",
        "status": "finished", "host": "trainer-1", "created_at": "2026-11-01T12:00:00Z",
        "ended_at": "2026-11-01T12:05:00Z", "duration_s": 300.0, "stages": 1, "epochs": 5, "current_epoch": 6,
        "tags": {}, "last_step": None,
    }
    assert (shown["params"], shown["param_history"]) == ({}, [])
    assert [(c["stage"], c["kind"], c["num_epochs"], c["captured_at"]) for c in shown["stages"][0]["configs"]] == [
        (1, "train", 2, "2026-11-01T12:00:01Z"), (1, "train", 4, "2026-11-01T12:00:02Z"),
    ]
    assert [(e["kind"], e["epoch"]) for e in shown["events"]] == [
        ("freeze", 1), ("training_run_start", 1), ("epoch_end", 1), ("epoch_end", 2), ("training_run_end", 3),
        ("unfreeze", 3), ("training_run_start", 3), ("epoch_end", 3), ("epoch_end", 4), ("epoch_end", 5),
        ("training_run_end", 6),
    ]
    assert shown["events"][0]["payload"]["trainable_numel"] == 1089
    assert shown["metrics"][0] == {
        "metric": "eval_loss_epoch", "stage": 1, "count": 5, "last": 1.0275676250457764, "min": 1.0275676250457764,
        "max": 9.399500846862793, "goal": "min", "best": 1.0275676250457764, "best_epoch": 5,
        "best_step": None,  # the Trainer's points have no step
    }


def test_can_compare_runs_side_by_side(run, trained_url):
    result = run("compare", "baseline", "fast", "--url", trained_url)

    assert result.exit_code == 0
    assert result.output == COMPARE_BASELINE_FAST


def test_compare_says_when_configs_do_not_differ(run, trained_url):
    result = run("compare", "resumed", "finetune", "-m", "eval_loss_epoch", "--url", trained_url)

    assert result.output == """\
Configs: no differences (latest train snapshot of each run).

Metrics
┏━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┓
┃ metric          ┃            ┃ resumed            ┃ finetune          ┃
┡━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━┩
│ eval_loss_epoch │ best (min) │ 0.761872 (epoch 5) │ 1.02757 (epoch 5) │
│                 │ last       │ 0.761872           │ 1.02757           │
└─────────────────┴────────────┴────────────────────┴───────────────────┘
"""


def test_can_compare_as_csv(run, trained_any):
    result = run("compare", "id:1", "id:5", "-m", "eval_loss_epoch", "--url", trained_any, "--format", "csv")

    assert result.output == """\
what,name,baseline,solo
config,num_epochs,3,1
config,max_num_train_steps,49,17
best,eval_loss_epoch,2.8346123695373535,9.034934997558594
best_epoch,eval_loss_epoch,3,1
last,eval_loss_epoch,2.8346123695373535,9.034934997558594
"""


def test_can_compare_as_json(run, trained_any):
    result = run("compare", "fast", "solo", "-m", "train_loss_epoch", "--url", trained_any, "--format", "json")

    assert json.loads(result.output) == {
        "runs": [
            {"id": 2, "experiment": "cli", "name": "fast", "label": "fast"},
            {"id": 5, "experiment": "other", "name": "solo", "label": "solo"},
        ],
        "param_differences": [],
        "config_differences": [
            {"field": name, "values": {"fast": fast, "solo": solo}} for name, fast, solo in [
                ("num_epochs", 3, 1), ("train_per_device_batch_size", 16, 32), ("train_dl_kwargs.batch_size", 16, 32),
                ("eval_per_device_batch_size", 16, 32), ("eval_dl_kwargs.batch_size", 16, 32),
                ("train_total_batch_size", 16, 32), ("eval_total_batch_size", 16, 32),
                ("num_update_steps_per_epoch", 32, 16), ("num_local_update_steps_per_epoch", 32, 16),
                ("max_num_train_steps", 97, 17),
            ]
        ],
        "metrics": [{"metric": "train_loss_epoch", "goal": "min", "values": {
            "fast": {"best": 0.08879365026950836, "best_epoch": 3, "best_step": None, "last": 0.08879365026950836, "stage": 1, "count": 3},
            "solo": {"best": 11.323795318603516, "best_epoch": 1, "best_step": None, "last": 11.323795318603516, "stage": 1, "count": 1},
        }}],
    }


def test_runs_of_the_same_name_are_told_apart(run, trained_url):
    SQLRunHistory(trained_url, experiment="other", run_name="fast").close()

    result = run("compare", "id:2", "id:6", "--url", trained_url, "--format", "csv", "-m", "eval_loss_epoch")

    assert result.output.splitlines()[0] == "what,name,cli/fast,other/fast"


def _record_runs_x_and_1(url):
    """Run 1 is named ``x``, run 2 is named ``1``."""
    for name in ("x", "1"):
        SQLRunHistory(url, experiment="e", run_name=name).close()


@pytest.mark.parametrize(("args", "first_line"), [
    (("1",), "Run 2: 1 (experiment e)"),
    (("1", "-e", "e"), "Run 2: 1 (experiment e)"),
    (("id:1",), "Run 1: x (experiment e)"),
    (("id:2", "-e", "e"), "Run 2: 1 (experiment e)"),
])
def test_a_name_of_digits_is_a_name_and_id_n_is_an_id(run, url, args, first_line):
    _record_runs_x_and_1(url)

    result = run("show", *args, "--url", url)

    assert result.exit_code == 0
    assert result.output.splitlines()[0] == first_line


def test_every_run_argument_takes_names_of_digits_and_ids(run, url, tmp_path):
    _record_runs_x_and_1(url)

    compared = run("compare", "1", "id:1", "--url", url, "--format", "csv")
    deleted = run("delete", "1", "--yes", "--url", url)

    assert compared.output.splitlines()[0] == "what,name,1,x"
    assert deleted.output.startswith("Deleted run '1' (id 2, experiment 'e',")


def test_plot_and_export_take_an_id(run, trained_url, tmp_path):
    plotted = run("plot", "id:4", "-m", "eval_loss_epoch", "-o", str(tmp_path / "c.png"), "--url", trained_url)
    exported = run("export", "id:4", "-m", "eval_loss_epoch", "-o", str(tmp_path / "e.csv"), "--url", trained_url)

    assert plotted.output == f"Wrote {tmp_path / 'c.png'} (1 run, 1 metric)\n"
    assert exported.output == f"Exported 5 points of 1 run to {tmp_path / 'e.csv'}\n"


def test_a_name_of_digits_that_no_run_has_says_how_to_give_an_id(run, trained_url):
    result = run("show", "3", "--url", trained_url)

    assert result.exit_code == 1
    assert result.output == (
        "Error: There is no run named '3'. For the run with id 3, give id:3 (in Python: the int 3). "
        "List them with: runhistory-sql runs\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("compare", "baseline"), "Error: compare needs at least 2 runs, e.g.: runhistory-sql compare baseline fast\n"),
        (("compare", "baseline", "nope"), "Error: There is no run named 'nope'. List them with: runhistory-sql runs\n"),
        (("compare", "baseline", "fast", "-m", "accuracy"),
         "Error: None of these runs has the metric 'accuracy'. "
         "Their metrics: eval_loss_epoch, evaluation_loss, train_loss_epoch.\n"),
        (("compare", "fast", "id:2"), "Error: Run 'fast' (id 2) is given twice; compare different runs.\n"),
        (("show", "nope"), "Error: There is no run named 'nope'. List them with: runhistory-sql runs\n"),
        (("show", "fast", "-e", "other"),
         "Error: There is no run named 'fast' in experiment 'other'. List them with: runhistory-sql runs\n"),
    ],
)
def test_errors_are_one_line(run, trained_url, args, message):
    result = run(*args, "--url", trained_url)

    assert result.exit_code == 1
    assert result.output == message


@pytest.mark.parametrize("args", [("show", "fast"), ("compare", "fast", "baseline"), ("history", "fast", "eval_loss_epoch")])
def test_an_ambiguous_name_is_one_line_saying_how_to_choose(run, trained_url, args):
    SQLRunHistory(trained_url, experiment="other", run_name="fast").close()

    result = run(*args, "--url", trained_url)

    assert result.exit_code == 1
    assert result.output == (
        "Error: 2 runs are named 'fast' (in experiments 'cli', 'other'); choose one with experiment= "
        "(in the CLI: --experiment), or give the run id (in the CLI: id:2 or id:6).\n"
    )


@pytest.mark.parametrize("args", [
    ("runs",), ("runs", "--format", "csv", "--sort", "eval_loss_epoch:max"), ("runs", "--format", "json"),
    ("history", "finetune", "train_loss_epoch"), ("history", "id:4", "eval_loss_epoch", "--format", "json"),
    ("show", "baseline"), ("show", "finetune", "--format", "json"), ("compare", "id:1", "id:2", "id:3", "id:4", "id:5"),
    ("compare", "baseline", "resumed", "--format", "json"),
])
def test_both_backends_print_the_same(run, trained_url, trained_pg_database, args):
    on_sqlite = run(*args, "--url", trained_url)
    on_postgres = run(*args, "--url", trained_pg_database)

    assert on_sqlite.exit_code == 0
    assert on_postgres.output == on_sqlite.output


@pytest.mark.parametrize(
    ("kind", "payload", "line"),
    [
        ("freeze", {"groups_frozen": [0, 1], "numel_frozen": 1200, "trainable_numel": 34, "total_numel": 1234},
         "froze groups 0, 1 (1,200 params); 34 of 1,234 params trainable"),
        ("unfreeze", {"groups_unfrozen": [], "numel_unfrozen": 0, "trainable_numel": 9, "total_numel": 9},
         "unfroze no layer group; 9 of 9 params trainable"),
        ("resumed", {"from_epoch": 7, "previous_status": "crashed", "host": "node-2", "pid": 12},
         "from epoch 7 (was crashed), on node-2 pid 12"),
        ("rewind", {"to_epoch": 3, "superseded_points": 8, "rev": 1}, "to epoch 3, 8 points superseded"),
        ("stop_training", {"reason": "early stopping: no improvement for 3 epochs"},
         "early stopping: no improvement for 3 epochs"),
        ("exception", {"type": "builtins.RuntimeError", "message": "CUDA out of memory\nmore", "traceback": "..."},
         "builtins.RuntimeError: CUDA out of memory"),
        ("exit", {"code": 3}, "exit code 3"),
        ("interrupted", {"reason": "the process ended"}, "the process ended"),
        ("checkpoint", {"path": "ckpt/5.pt", "epoch": 5}, 'path="ckpt/5.pt", epoch=5'),
        ("note", {"text": "x" * 200}, 'text="' + "x" * 93 + "…"),  # 100 characters
    ],
)
def test_can_describe_an_event_in_one_short_line(kind, payload, line):
    assert describe_event(kind, payload) == line


def test_config_differences_see_a_changed_type_and_a_missing_snapshot():
    differences = config_differences([{"num_epochs": 1, "gradient_clip_value": 1.0}, {"num_epochs": True}, None])

    assert differences == [("num_epochs", [1, True, None]), ("gradient_clip_value", [1.0, None, None])]
