"""``runhistory-sql runs`` and ``runhistory-sql history`` on the trained runs of ``trained_runs.py``
(real losses, pinned clock), with the exact output."""
from __future__ import annotations

import pytest

from runhistory_sql import SQLRunHistory


RUNS_TABLE = """\
┏━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━┳━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━┓
┃    ┃            ┃          ┃          ┃        ┃        ┃                     ┃          ┃ eval_loss_epoch ┃ eval_loss_epoch ┃ train_loss_epoch ┃ train_loss_epoch ┃
┃ id ┃ experiment ┃ run      ┃ status   ┃ stages ┃ epochs ┃ started             ┃ duration ┃ last            ┃ best            ┃ last             ┃ best             ┃
┡━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━╇━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━┩
│ 1  │ cli        │ baseline │ finished │ 2      │ 3      │ 2026-11-01 10:00:00 │ 3m 00s   │ 2.83461         │ 2.83461         │ 5.61037          │ 5.61037          │
│ 2  │ cli        │ fast     │ finished │ 1      │ 3      │ 2026-11-01 11:00:00 │ 3m 00s   │ 0.109332        │ 0.109332        │ 0.0887937        │ 0.0887937        │
│ 3  │ cli        │ finetune │ finished │ 1      │ 5      │ 2026-11-01 12:00:00 │ 5m 00s   │ 1.02757         │ 1.02757         │ 0.748674         │ 0.748674         │
│ 4  │ cli        │ resumed  │ finished │ 1      │ 5      │ 2026-11-01 13:00:00 │ 5m 00s   │ 0.761872        │ 0.761872        │ 0.608813         │ 0.608813         │
│ 5  │ other      │ solo     │ finished │ 1      │ 1      │ 2026-11-01 14:00:00 │ 1m 00s   │ 9.03493         │ 9.03493         │ 11.3238          │ 11.3238          │
└────┴────────────┴──────────┴──────────┴────────┴────────┴─────────────────────┴──────────┴─────────────────┴─────────────────┴──────────────────┴──────────────────┘
"""

CSV_HEADER = (
    "id,experiment,run,status,stages,epochs,started,duration_s,"
    "eval_loss_epoch_last,eval_loss_epoch_best,train_loss_epoch_last,train_loss_epoch_best\n"
)
CSV_ROWS = {
    "baseline": "1,cli,baseline,finished,2,3,2026-11-01T10:00:00Z,180.0,2.8346123695373535,2.8346123695373535,5.610372543334961,5.610372543334961\n",
    "fast": "2,cli,fast,finished,1,3,2026-11-01T11:00:00Z,180.0,0.10933156311511993,0.10933156311511993,0.08879365026950836,0.08879365026950836\n",
    "finetune": "3,cli,finetune,finished,1,5,2026-11-01T12:00:00Z,300.0,1.0275676250457764,1.0275676250457764,0.7486743927001953,0.7486743927001953\n",
    "resumed": "4,cli,resumed,finished,1,5,2026-11-01T13:00:00Z,300.0,0.7618724703788757,0.7618724703788757,0.6088126301765442,0.6088126301765442\n",
    "solo": "5,other,solo,finished,1,1,2026-11-01T14:00:00Z,60.0,9.034934997558594,9.034934997558594,11.323795318603516,11.323795318603516\n",
}


def csv_of(*names: str) -> str:
    return CSV_HEADER + "".join(CSV_ROWS[name] for name in names)


def test_can_list_runs_as_a_table(run, trained_url):
    result = run("runs", "--url", trained_url)

    assert result.exit_code == 0
    assert result.output == RUNS_TABLE


def test_can_list_runs_as_csv(run, trained_any):
    result = run("runs", "--url", trained_any, "--format", "csv")

    assert result.output == csv_of("baseline", "fast", "finetune", "resumed", "solo")


def test_can_list_runs_as_json(run, trained_any):
    result = run("runs", "--url", trained_any, "--format", "json", "--experiment", "other")

    assert result.output == """\
[
  {
    "id": 5,
    "experiment": "other",
    "run": "solo",
    "status": "finished",
    "stages": 1,
    "epochs": 1,
    "started": "2026-11-01T14:00:00Z",
    "duration_s": 60.0,
    "eval_loss_epoch_last": 9.034934997558594,
    "eval_loss_epoch_best": 9.034934997558594,
    "train_loss_epoch_last": 11.323795318603516,
    "train_loss_epoch_best": 11.323795318603516
  }
]
"""


def test_can_sort_by_the_best_value_and_keep_the_first_few(run, trained_any):
    result = run("runs", "--url", trained_any, "--format", "csv", "--sort", "eval_loss_epoch", "--limit", "3")

    assert result.output == csv_of("fast", "resumed", "finetune")


def test_can_sort_by_the_highest_value(run, trained_url):
    result = run("runs", "--url", trained_url, "--format", "csv", "--sort", "train_loss_epoch:max", "-m", "train_loss_epoch")

    assert result.output == """\
id,experiment,run,status,stages,epochs,started,duration_s,train_loss_epoch_last,train_loss_epoch_best
3,cli,finetune,finished,1,5,2026-11-01T12:00:00Z,300.0,0.7486743927001953,11.495970726013184
1,cli,baseline,finished,2,3,2026-11-01T10:00:00Z,180.0,5.610372543334961,11.459332466125488
4,cli,resumed,finished,1,5,2026-11-01T13:00:00Z,300.0,0.6088126301765442,11.459332466125488
5,other,solo,finished,1,1,2026-11-01T14:00:00Z,60.0,11.323795318603516,11.323795318603516
2,cli,fast,finished,1,3,2026-11-01T11:00:00Z,180.0,0.08879365026950836,3.8053603172302246
"""


def test_runs_without_the_sort_metric_come_last_and_it_is_shown(run, trained_url):
    result = run("runs", "--url", trained_url, "--format", "csv", "--sort", "evaluation_loss", "-m", "eval_loss_epoch")

    assert result.output.splitlines() == [
        "id,experiment,run,status,stages,epochs,started,duration_s,evaluation_loss_last,evaluation_loss_best,"
        "eval_loss_epoch_last,eval_loss_epoch_best",
        "1,cli,baseline,finished,2,3,2026-11-01T10:00:00Z,180.0,2.8346123695373535,2.8346123695373535,2.8346123695373535,2.8346123695373535",
        "2,cli,fast,finished,1,3,2026-11-01T11:00:00Z,180.0,,,0.10933156311511993,0.10933156311511993",
        "3,cli,finetune,finished,1,5,2026-11-01T12:00:00Z,300.0,,,1.0275676250457764,1.0275676250457764",
        "4,cli,resumed,finished,1,5,2026-11-01T13:00:00Z,300.0,,,0.7618724703788757,0.7618724703788757",
        "5,other,solo,finished,1,1,2026-11-01T14:00:00Z,60.0,,,9.034934997558594,9.034934997558594",
    ]


def test_can_filter_by_experiment_and_status(run, trained_url):
    cli_runs = run("runs", "--url", trained_url, "--format", "csv", "-e", "cli", "--status", "finished")
    none = run("runs", "--url", trained_url, "--status", "running")
    no_json = run("runs", "--url", trained_url, "--status", "crashed", "--format", "json")

    assert cli_runs.output == csv_of("baseline", "fast", "finetune", "resumed")
    assert none.output == "No runs found.\n"
    assert no_json.output == "[]\n"


def test_a_live_run_is_listed_as_running(run, trained_url):
    with SQLRunHistory(trained_url, experiment="live", run_name="now") as history:
        history.update_metric("train_loss_epoch", 0.5)
        history.flush()

        result = run("runs", "--url", trained_url, "--format", "csv", "-e", "live", "--status", "running")

    assert result.output.splitlines()[1].startswith("6,live,now,running,1,1,")
    assert result.output.splitlines()[1].endswith(",0.5,0.5")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-m", "accuracy"), "Error: None of the listed runs has the metric 'accuracy'. "
                             "Their metrics: eval_loss_epoch, evaluation_loss, train_loss_epoch.\n"),
        (("--sort", "eval_loss_epoch:best"), "Error: Sort by METRIC or METRIC:min or METRIC:max, "
                                             "e.g. eval_loss_epoch, not 'eval_loss_epoch:best'.\n"),
    ],
)
def test_a_bad_metric_is_a_one_line_error(run, trained_url, args, message):
    result = run("runs", "--url", trained_url, *args)

    assert result.exit_code == 1
    assert result.output == message


def test_can_print_a_metric_history(run, trained_url):
    result = run("history", "baseline", "eval_loss_epoch", "--url", trained_url)

    assert result.exit_code == 0
    assert result.output == """\
eval_loss_epoch of run 1: baseline (experiment cli)
┏━━━━━┳━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━┓
┃ seq ┃ epoch ┃ value   ┃ recorded_at         ┃
┡━━━━━╇━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━┩
│ 0   │ 1     │ 9.3087  │ 2026-11-01 10:00:00 │
│ 1   │ 2     │ 7.2743  │ 2026-11-01 10:00:01 │
│ 2   │ 3     │ 2.83461 │ 2026-11-01 10:00:02 │
└─────┴───────┴─────────┴─────────────────────┘
"""


def test_can_print_a_history_as_csv_by_run_id_and_stage(run, trained_any):
    result = run("history", "id:1", "evaluation_loss", "--stage", "2", "--url", trained_any, "--format", "csv")

    assert result.output == "seq,epoch,value,recorded_at\n0,1,2.8346123695373535,2026-11-01T10:00:00Z\n"


def test_can_print_a_history_as_json(run, trained_any):
    result = run("history", "resumed", "eval_loss_epoch", "-e", "cli", "--url", trained_any, "--format", "json")

    assert result.output.startswith('[\n  {\n    "seq": 0,\n    "epoch": 1,\n    "value": 9.308703422546387,\n')
    assert result.output.endswith('    "seq": 4,\n    "epoch": 5,\n    "value": 0.7618724703788757,\n'
                                  '    "recorded_at": "2026-11-01T13:00:04Z"\n  }\n]\n')


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", "eval_loss_epoch"), "Error: There is no run named 'nope'. List them with: runhistory-sql runs\n"),
        (("id:99", "eval_loss_epoch"), "Error: There is no run with id 99. List them with: runhistory-sql runs\n"),
        (("solo", "eval_loss_epoch", "-e", "cli"),
         "Error: There is no run named 'solo' in experiment 'cli'. List them with: runhistory-sql runs\n"),
        (("fast", "accuracy"),
         "Error: Run 'fast' has no points of 'accuracy'. Its metrics: eval_loss_epoch, train_loss_epoch.\n"),
        (("baseline", "eval_loss_epoch", "--stage", "2"),
         "Error: Run 'baseline' has no points of 'eval_loss_epoch' in stage 2. "
         "Its metrics: eval_loss_epoch, evaluation_loss, train_loss_epoch.\n"),
    ],
)
def test_an_unknown_run_or_metric_is_a_one_line_error(run, trained_url, args, message):
    result = run("history", *args, "--url", trained_url)

    assert result.exit_code == 1
    assert result.output == message


def test_the_experiment_chooses_among_runs_of_one_name(run, trained_url):
    SQLRunHistory(trained_url, experiment="other", run_name="fast").close()

    chosen = run("history", "fast", "eval_loss_epoch", "-e", "cli", "--url", trained_url, "--format", "csv")

    assert chosen.output.startswith("seq,epoch,value,recorded_at\n0,1,0.2738294303417206,")
