"""Every SQL query of the README runs, on the example database of its CLI session, on SQLite and
on PostgreSQL (a block whose first line is ``-- SQLite`` or ``-- PostgreSQL`` on that one only)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import is_postgres
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```sql\n(.*?)```", README.read_text(), re.DOTALL)
#: the query that finds nothing on the example database: no run of it is running
RUNNING = "status = 'running'"
#: the queries of params, which the example database has none of: they run on :func:`params_url`
PARAMS = "v_params"


def run_sql(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:  # driver SQL: `::jsonb` and `%` are not bind parameters
            return [tuple(row) for row in conn.exec_driver_sql(sql.strip().rstrip(";"))]
    finally:
        engine.dispose()


def is_query(block: str) -> bool:
    """Queries, not the administration statements (``CREATE ROLE``, ``GRANT``) of the README."""
    code = [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("--")]
    return code[0].lstrip().upper().startswith(("SELECT", "WITH"))


QUERIES = [b for b in BLOCKS if is_query(b)]


def backend_of(block: str) -> str | None:
    first = block.splitlines()[0].strip()
    return {"-- SQLite": "sqlite", "-- PostgreSQL": "postgresql"}.get(first)


def test_the_readme_has_the_recipes_issue_6_asks_for():
    assert len(QUERIES) >= 9
    assert any("unfreeze" in b for b in BLOCKS) and any("IS DISTINCT FROM" in b for b in BLOCKS)


def test_the_readme_has_the_params_recipes_issue_12_asks_for():
    assert [("'lr'" in b, "'bert-base'" in b) for b in QUERIES if PARAMS in b] == [(True, False), (False, True)]


# the params recipes run on runs of their own (test_the_params_recipes_...)
CASES = [(i, backend) for i, b in enumerate(QUERIES) for backend in ("sqlite", "postgresql")
         if backend_of(b) in (None, backend) and PARAMS not in b]


@pytest.fixture
def params_url(url):
    """Runs with params and an ``eval_loss`` (as SQLTracker records them): two learning rates, two
    models; one run's lr was changed, so only its current value counts."""
    from runhistory_sql import SQLRunHistory

    for name, params, losses in [
        ("bert-lr3e-5", {"lr": 3e-5, "model": "bert-base"}, [0.5, 0.4]),
        ("bert-lr1e-4", {"lr": 1e-4, "model": "bert-base"}, [0.6, 0.45]),
        ("gpt-lr3e-5", {"lr": 3e-5, "model": "gpt2"}, [0.3, 0.35]),
        ("bert-retuned", {"lr": 1e-3, "model": "bert-base"}, [0.2]),
    ]:
        with SQLRunHistory(url, experiment="glue", run_name=name) as history:
            history.log_params(params)
            for step, loss in enumerate(losses):
                history.log_metrics({"eval_loss": loss}, step=step)
            if name == "bert-retuned":
                history.log_params({"lr": 1e-4})  # its best loss now counts for 1e-4
    return url


def test_the_params_recipes_find_the_best_run_per_lr_and_the_bert_runs(params_url):
    best, bert = (b for b in QUERIES if PARAMS in b)

    assert run_sql(params_url, best) == [(3e-5, "gpt-lr3e-5", 0.3), (1e-4, "bert-retuned", 0.2)]
    assert [row[:2] for row in run_sql(params_url, bert)] == [
        ("bert-lr3e-5", "finished"), ("bert-lr1e-4", "finished"), ("bert-retuned", "finished")]


@pytest.mark.parametrize(("index", "backend"), CASES, ids=[f"query{i}-{backend}" for i, backend in CASES])
def test_every_sql_query_runs_on_the_example_database(index, backend, request):
    url = request.getfixturevalue("trained_url" if backend == "sqlite" else "trained_pg_database")

    result = run_sql(url, QUERIES[index])

    if RUNNING in QUERIES[index]:
        assert result == []
    else:
        assert result


def test_the_config_recipes_find_the_fields_that_differ(trained_any):
    backend = "postgresql" if is_postgres(trained_any) else "sqlite"
    (recipe,) = [b for b in QUERIES if "'fast'" in b and "field" in b and backend_of(b) == backend]

    fields = sorted(row[0] for row in run_sql(trained_any, recipe))

    expected = ["max_num_train_steps", "train_dl_kwargs", "train_per_device_batch_size"]
    if backend == "postgresql":  # every field: the evaluation batch size and step counts differ too
        expected = [
            "eval_dl_kwargs", "eval_per_device_batch_size", "eval_total_batch_size", "max_num_train_steps",
            "num_local_update_steps_per_epoch", "num_update_steps_per_epoch", "train_dl_kwargs",
            "train_per_device_batch_size", "train_total_batch_size",
        ]
    assert fields == expected


def test_the_unfreeze_recipes_find_the_finetune_run(trained_any):
    backend = "postgresql" if is_postgres(trained_any) else "sqlite"
    (recipe,) = [b for b in QUERIES if "'unfreeze'" in b and "e.epoch < 5" in b and backend_of(b) == backend]

    found = [row[:3] for row in run_sql(trained_any, recipe)]

    assert found == [("cli", "finetune", 3)]


def test_the_runstore_example_runs_on_the_example_database(trained_url, tmp_path, monkeypatch):
    (example,) = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL) if "store.frame(" in b]
    code = example.replace('"sqlite:///runs.db"', repr(trained_url))
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path / "out")  # it writes points.csv and curves.png
    found: dict = {}

    exec(compile(code, "README.md", "exec"), found)

    assert (found["fast"].run_name, found["fast"].metrics["eval_loss_epoch"].best) == ("fast", 0.10933156311511993)
    assert (found["report"].run.run_id, len(found["report"].events)) == (3, 11)
    assert [(c.kind, c.fields["num_epochs"]) for c in found["configs"]] == [("train", 3), ("evaluate", 1)]
    assert [(e.epoch, e.payload["groups_unfrozen"]) for e in found["unfreezes"]] == [(3, [0])]
    assert [s.best_epoch for s in found["comparison"].metrics["eval_loss_epoch"]] == [3, 3]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["curves.png", "points.csv"]
    assert sorted(found["df"]["run_name"].unique()) == ["baseline", "fast"]
    assert len(found["df"]) == 6


def test_the_pictures_of_the_readme_are_there():
    from PIL import Image

    paths = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", README.read_text())
    found = []
    for path in paths:
        with Image.open(README.parent / path) as picture:
            found.append((path, picture.format, picture.size[0]))

    assert found == [  # the plot, then the dashboard's pages (tests/readme/screenshots.py)
        ("tests/readme/plot.png", "PNG", 1000), ("tests/readme/ui-runs.png", "PNG", 1280),
        ("tests/readme/ui-run.png", "PNG", 1280), ("tests/readme/ui-compare.png", "PNG", 1280)]


# -- the "Plain accelerate" section: its script runs, and `show` prints what the README shows --

PLAIN_SHOW = re.compile(r"```text\n\$ python train\.py\n\$ (runhistory-sql show .*?)\n(.*?)```", re.DOTALL)
#: what differs from one run of the script to the next: times, the uuid, the host, the duration
VARYING = [
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"), "YYYY-MM-DD HH:MM:SS"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "UUID"),
    (re.compile(r"^(  host +).*$", re.MULTILINE), r"\1HOST"),
    (re.compile(r"^(  duration +).*$", re.MULTILINE), r"\1DURATION"),
]


def _masked(text: str) -> str:
    for pattern, replacement in VARYING:
        text = pattern.sub(replacement, text)
    return text


@pytest.mark.slow
def test_the_plain_accelerate_script_runs_and_show_prints_what_the_readme_shows(tmp_path):
    import shlex
    import subprocess
    import sys

    from helpers import script_env

    (script,) = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL) if "SQLTracker(" in b and "load_state" in b]
    ((command, shown),) = PLAIN_SHOW.findall(README.read_text())
    (tmp_path / "train.py").write_text(script)

    trained = subprocess.run([sys.executable, "train.py"], cwd=tmp_path, env=script_env(), capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr[-4000:]
    cli = Path(sys.executable).parent / "runhistory-sql"
    done = subprocess.run([str(cli), *shlex.split(command)[1:]], cwd=tmp_path, env=script_env(), capture_output=True, text=True)

    assert done.returncode == 0, done.stderr
    assert _masked(done.stdout) == _masked(shown)
    assert sorted(p.name for p in (tmp_path / "states").iterdir()) == ["step_19", "step_39", "step_59"]
