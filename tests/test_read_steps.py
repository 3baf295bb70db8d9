"""The read side of steps and params (issue 12) on SQLite and PostgreSQL: a point's step,
``RunStore.params`` / ``param_history``, ``Run.last_step``, ``RunReport.params``,
``Comparison.param_differences``, conditions on params and tags (``RunStore.runs(where=...)``,
``runs --where/--param``), ``show`` and ``compare`` listing params, the export's step column and
``plot --x step``."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from helpers import same
from runhistory_sql import InvalidArgumentError, RunStore, SQLRunHistory
from runhistory_sql.read.filters import Condition, parse_condition


@pytest.fixture
def runs_url(url: str) -> str:
    """Four runs: three of a plain loop (steps, params, tags), one of the Trainer's kind."""
    with SQLRunHistory(url, experiment="glue", run_name="bert-a", tags={"team": "nlp", "gpus": 2, "spot": True}) as h:
        h.log_params({"lr": 1e-3, "model": "bert-base"})
        h.log_params({"lr": 3e-5, "epochs": 3})  # lr changed: both rows kept
        for step in range(3):
            h.log_metrics({"loss": 1.0 - step / 4}, step=step * 10)
    with SQLRunHistory(url, experiment="glue", run_name="bert-b", tags={"team": "vision", "gpus": 8}) as h:
        h.log_params({"lr": 1e-4, "model": "bert-base", "seed": "42"})
        h.log_metrics({"loss": 0.5}, step=5)
    with SQLRunHistory(url, experiment="glue", run_name="gpt", tags={"team": "nlp"}) as h:
        h.log_params({"lr": 5e-5, "model": "gpt2", "fp16": True, "layers": [12, 12]})
        h.log_metrics({"loss": 0.25}, step=7)
    with SQLRunHistory(url, experiment="glue", run_name="trainer") as h:
        h.update_metric("loss", 2.0)
    return url


def names(url: str, *where: str) -> list[str]:
    with RunStore(url) as store:
        return [run.run_name for run in store.runs(where=where).runs]


# -- reading steps and params back -------------------------------------------------------------


def test_history_gives_points_with_their_step(runs_url: str) -> None:
    with RunStore(runs_url) as store:
        stepped, plain = store.history("bert-a", "loss"), store.history("trainer", "loss")

    assert [(seq, epoch, value, step) for seq, epoch, value, _, step in stepped] == [
        (0, 1, 1.0, 0), (1, 1, 0.75, 10), (2, 1, 0.5, 20)]
    assert [(seq, value, step) for seq, _, value, _, step in plain] == [(0, 2.0, None)]
    assert type(stepped[0]) is tuple and type(stepped[0][3]) is int


def test_can_read_params_and_their_history(runs_url: str) -> None:
    with RunStore(runs_url) as store:
        params, history, none = store.params("bert-a"), store.param_history("bert-a"), store.params("trainer")
        gpt = store.params("gpt")

    assert params == {"lr": 3e-5, "model": "bert-base", "epochs": 3}
    assert [(p.key, p.value, p.current) for p in history] == [
        ("lr", 1e-3, False), ("lr", 3e-5, True), ("model", "bert-base", True), ("epochs", 3, True)]
    assert history[0].recorded_at <= history[1].recorded_at and history[0].recorded_at.tzinfo is not None
    assert (none, gpt) == ({}, {"lr": 5e-5, "model": "gpt2", "fp16": True, "layers": [12, 12]})


def test_runs_and_reports_carry_last_step_and_params(runs_url: str) -> None:
    with RunStore(runs_url) as store:
        listed = {run.run_name: (run.last_step, run.params) for run in store.runs().runs}
        report = store.report("bert-a")

    assert listed == {
        "bert-a": (20, {"lr": 3e-5, "model": "bert-base", "epochs": 3}),
        "bert-b": (5, {"lr": 1e-4, "model": "bert-base", "seed": "42"}),
        "gpt": (7, {"lr": 5e-5, "model": "gpt2", "fp16": True, "layers": [12, 12]}),
        "trainer": (None, {}),
    }
    assert report.params == {"lr": 3e-5, "model": "bert-base", "epochs": 3}
    assert [(p.key, p.value) for p in report.param_history] == [("lr", 1e-3), ("lr", 3e-5), ("model", "bert-base"), ("epochs", 3)]


def test_a_comparison_lists_the_params_that_differ(runs_url: str) -> None:
    with RunStore(runs_url) as store:
        comparison = store.compare(["bert-a", "bert-b", "trainer"], ["loss"])

    assert comparison.param_differences == [
        ("lr", [3e-5, 1e-4, None]), ("model", ["bert-base", "bert-base", None]), ("epochs", [3, None, None]),
        ("seed", [None, "42", None]),
    ]
    assert comparison.params[2] == {}


# -- conditions --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "condition"), [
    ("lr<1e-4", Condition("lr", "<", 1e-4)),
    (" lr <= 1E-4 ", Condition("lr", "<=", 1e-4)),
    ("model=bert-base", Condition("model", "=", "bert-base")),
    ("model == bert base", Condition("model", "=", "bert base")),
    ("seed='42'", Condition("seed", "=", "42")),
    ("optim.lr>=-.5", Condition("optim.lr", ">=", -0.5)),
    ("tag.team!=nlp", Condition("team", "!=", "nlp", tag=True)),
    ("tag.gpus>2", Condition("gpus", ">", 2.0, tag=True)),
    ("fp16=true", Condition("fp16", "=", "true")),
])
def test_can_parse_a_condition(text: str, condition: Condition) -> None:
    assert parse_condition(text) == condition


@pytest.mark.parametrize("text", ["lr", "lr<", "<1e-4", "lr ~ 3", "tag.=x", "lr =", ""])
def test_a_bad_condition_is_one_line_naming_the_syntax(text: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_condition(text)

    assert str(info.value) == (
        f"Cannot read the condition {text!r}: write KEY OP VALUE with OP one of = != < <= > >=, KEY a param key or "
        'tag.KEY, e.g. "lr<1e-4", "model=bert-base" or "tag.team=nlp".'
    )


@pytest.mark.parametrize(("where", "expected"), [
    (("lr<1e-4",), ["bert-a", "gpt"]),
    (("lr<=1e-4",), ["bert-a", "bert-b", "gpt"]),
    (("lr>1e-4",), []),  # bert-a's 1e-3 is not its current value any more
    (("model=bert-base",), ["bert-a", "bert-b"]),
    (("model!=bert-base",), ["gpt"]),  # the trainer run has no model: it meets no condition on it
    (("model=bert-base", "lr<1e-4"), ["bert-a"]),
    (("seed=42",), []),  # a number is compared with numbers; bert-b's seed is the text "42"
    (("seed='42'",), ["bert-b"]),
    (("fp16=true",), ["gpt"]),
    (("layers=[12, 12]",), ["gpt"]),
    (("tag.team=nlp",), ["bert-a", "gpt"]),
    (("tag.gpus>=2",), ["bert-a", "bert-b"]),
    (("tag.gpus>2",), ["bert-b"]),
    (("tag.spot=true",), ["bert-a"]),
    (("tag.team=nlp", "model=gpt2"), ["gpt"]),
    (("nope=1",), []),
])
def test_runs_can_be_filtered_by_params_and_tags(runs_url: str, where: tuple[str, ...], expected: list[str]) -> None:
    assert names(runs_url, *where) == expected


def test_a_condition_is_never_sql(runs_url: str) -> None:
    assert names(runs_url, "model=x' OR '1'='1") == []
    assert names(runs_url, "tag.team=nlp') OR 1=1 --") == []
    assert names(runs_url) == ["bert-a", "bert-b", "gpt", "trainer"]


# -- the CLI -----------------------------------------------------------------------------------


def _csv(output: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(output)))


def test_runs_where_and_param_columns(run: Any, runs_url: str) -> None:
    result = run("runs", "--url", runs_url, "--where", "lr<1e-4", "-w", "model=bert-base", "--param", "lr",
                 "-p", "model", "-p", "nope", "--format", "csv")

    rows = _csv(result.output)
    assert result.exit_code == 0
    assert [(r["run"], r["last_step"], r["param_lr"], r["param_model"], r["param_nope"]) for r in rows] == [
        ("bert-a", "20", "3e-05", "bert-base", "")]


def test_runs_show_last_step_only_where_runs_have_steps(run: Any, runs_url: str) -> None:
    stepped = _csv(run("runs", "--url", runs_url, "--format", "csv").output)
    plain = run("runs", "--url", runs_url, "--where", "tag.team=vision", "--format", "csv").output.splitlines()[0]
    none = _csv(run("runs", "--url", runs_url, "--format", "csv", "-w", "nope=1").output)

    assert [(r["run"], r["last_step"]) for r in stepped] == [("bert-a", "20"), ("bert-b", "5"), ("gpt", "7"), ("trainer", "")]
    assert plain.startswith("id,experiment,run,status,stages,epochs,last_step,started,")
    assert none == []


def test_runs_with_a_bad_condition_is_one_line(run: Any, runs_url: str) -> None:
    result = run("runs", "--url", runs_url, "--where", "lr ~ 3")

    assert (result.exit_code, result.output) == (1, (
        "Error: Cannot read the condition 'lr ~ 3': write KEY OP VALUE with OP one of = != < <= > >=, KEY a param "
        'key or tag.KEY, e.g. "lr<1e-4", "model=bert-base" or "tag.team=nlp".\n'))


def test_show_lists_params_and_the_last_step(run: Any, runs_url: str) -> None:
    table = run("show", "bert-a", "--url", runs_url).output
    shown = json.loads(run("show", "bert-a", "--url", runs_url, "--format", "json").output)
    plain = run("show", "trainer", "--url", runs_url).output

    assert "  last step 20\n" in table and "last step" not in plain and "Params" not in plain
    params = table[table.index("Params"):table.index("Stages")]
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in params.splitlines() if line.startswith("│")]
    assert [(key, value, earlier) for key, value, _, earlier in rows] == [
        ("lr", "3e-05", "0.001"), ("model", "bert-base", ""), ("epochs", "3", "")]
    assert (shown["run"]["last_step"], shown["params"]) == (20, {"lr": 3e-5, "model": "bert-base", "epochs": 3})
    assert [(p["key"], p["value"], p["current"]) for p in shown["param_history"]] == [
        ("lr", 0.001, False), ("lr", 3e-5, True), ("model", "bert-base", True), ("epochs", 3, True)]


def test_compare_lists_the_params_that_differ(run: Any, runs_url: str) -> None:
    result = run("compare", "bert-a", "gpt", "-m", "loss", "--url", runs_url, "--format", "csv")
    table = run("compare", "bert-a", "gpt", "-m", "loss", "--url", runs_url).output

    assert result.output.splitlines()[:6] == [
        "what,name,bert-a,gpt", "param,lr,3e-05,5e-05", "param,model,bert-base,gpt2", "param,epochs,3,",
        "param,fp16,,True", 'param,layers,,"[12, 12]"',  # csv as emit writes every bool
    ]
    assert table.startswith("Params that differ\n")


def test_history_command_shows_steps(run: Any, runs_url: str) -> None:
    stepped = run("history", "bert-a", "loss", "--url", runs_url, "--format", "csv").output.splitlines()
    plain = run("history", "trainer", "loss", "--url", runs_url, "--format", "csv").output.splitlines()

    assert [line.rsplit(",", 1)[0] for line in stepped] == ["seq,epoch,step,value", "0,1,0,1.0", "1,1,10,0.75", "2,1,20,0.5"]
    assert plain[0] == "seq,epoch,value,recorded_at"


def test_export_has_a_step_column(run: Any, runs_url: str, tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"

    run("export", "bert-a", "trainer", "-o", str(out), "--url", runs_url)

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["run_name"], r["seq"], r["value"], r["step"]) for r in rows] == [
        ("bert-a", 0, 1.0, 0), ("bert-a", 1, 0.75, 10), ("bert-a", 2, 0.5, 20), ("trainer", 0, 2.0, None)]
    assert list(rows[0])[-2:] == ["recorded_at", "step"]


def test_can_plot_against_the_step(run: Any, runs_url: str, tmp_path: Path) -> None:
    out = tmp_path / "steps.svg"

    result = run("plot", "bert-a", "gpt", "-m", "loss", "--x", "step", "-o", str(out), "--url", runs_url)
    refused = run("plot", "trainer", "-m", "loss", "--x", "step", "-o", str(out), "--url", runs_url)

    assert result.output == f"Wrote {out} (2 runs, 1 metric)\n"
    assert ">step<" in out.read_text()
    assert (refused.exit_code, refused.output) == (1, (
        "Error: Metric 'loss' of run 'trainer' has no points with a step (the Trainer's have none): draw it with "
        "--x epoch or --x seq.\n"))


def test_every_step_and_value_reads_back_exactly(url: str) -> None:
    import math

    with SQLRunHistory(url, run_name="odd") as h:
        h.log_metrics({"v": math.nan}, step=2**40)
        h.log_metrics({"v": -0.0}, step=2**40 + 1)
    with RunStore(url) as store:
        got = [(value, step) for _, _, value, _, step in store.history("odd", "v")]

    assert same(got, [(math.nan, 2**40), (-0.0, 2**40 + 1)])


def test_the_best_of_a_stepped_metric_is_told_by_its_step(run: Any, runs_url: str) -> None:
    # every point of a plain loop is in epoch 1: its step is what says where the best was
    with RunStore(runs_url) as store:
        stepped, plain = store.report("bert-a").metrics, store.report("trainer").metrics
    table = run("show", "bert-a", "--url", runs_url).output
    trainer_table = run("show", "trainer", "--url", runs_url).output
    compared = run("compare", "bert-a", "gpt", "-m", "loss", "--url", runs_url)
    flat = run("compare", "bert-a", "gpt", "-m", "loss", "--url", runs_url, "--format", "csv").output.splitlines()

    assert [(s.best, s.best_epoch, s.best_step) for s in stepped] == [(0.5, 1, 20)]
    assert [(s.best, s.best_epoch, s.best_step) for s in plain] == [(2.0, 1, None)]
    assert "best_step" in table and "best_step" not in trainer_table
    assert "0.5 (step 20)" in compared.output and "0.25 (step 7)" in compared.output
    assert flat[-4:] == ["best,loss,0.5,0.25", "best_epoch,loss,1,1", "best_step,loss,20,7", "last,loss,0.5,0.25"]


def test_a_page_of_runs_sorts_by_a_tag_numbers_then_text_runs_without_it_last(runs_url: str) -> None:
    with RunStore(runs_url) as store:
        def page(sort: str, order: str) -> list[str]:
            return [r.run_name for r in store.runs_page(sort=sort, order=order).runs]

        by_gpus, by_team = page("tag.gpus", "asc"), page("tag.team", "asc")
        gpus_desc, team_desc = page("tag.gpus", "desc"), page("tag.team", "desc")
        with pytest.raises(InvalidArgumentError, match=r"param\.KEY or tag\.KEY, not 'tags'"):
            page("tags", "asc")

    # ties (runs without the tag; gpt and bert-a, both nlp) by id in the order asked
    assert (by_gpus, gpus_desc) == (["bert-a", "bert-b", "gpt", "trainer"], ["bert-b", "bert-a", "trainer", "gpt"])
    assert (by_team, team_desc) == (["bert-a", "gpt", "bert-b", "trainer"], ["bert-b", "gpt", "bert-a", "trainer"])
