"""Many writers at once: 16 real processes, 8 into one PostgreSQL database and 8 into one SQLite
file, all running at the same time.

Each process (``tests/scripts/concurrent_job.py``) writes its own run. Per backend, 2 train the
demo model with the real pytorch-accelerated Trainer (2 epochs, 2 steps each, with an eval set)
and 6 write 3 metrics x 40 points per epoch for 10 epochs with values the test knows. All 16
import torch first, say they are ready, and start together on a signal file, so they open their
history at the same moment: on the empty Postgres database and the empty SQLite file, 8 processes
race to create the schema (advisory lock / SQLite write lock), then all write concurrently.

Checked afterwards, exactly: every process exited 0 with an empty stderr; every point is in
``v_metrics`` once with its value (``points`` holds the same number of rows: nothing superseded,
nothing doubled); each run is ``finished`` at the right epoch with one stage; the trainer runs have
their ``train`` config. While they ran, the test sampled ``pg_stat_activity`` every ~50 ms: the 8
Postgres processes together never held more than 16 connections (the pool allows 2 each).

Then a least-privilege role (SELECT, INSERT, UPDATE on the tables, the sequences; no CREATE, no
DROP, no DELETE) trains, resumes from a checkpoint (a rewind is an UPDATE) and logs events, once
the superuser has created the schema; the same role cannot drop or create a table.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

from helpers import query, script_env

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "scripts" / "concurrent_job.py"
METRICS = ("a", "b", "c")

PER_BACKEND = 8
TRAINERS_PER_BACKEND = 2
WRITE_EPOCHS, WRITE_POINTS = 10, 40
TRAIN_EPOCHS = 2
TRAIN_METRICS = ("eval_loss_epoch", "train_loss_epoch")
DEADLINE_S = 180.0
#: a training process holds at most this many connections (README: "Sharing one store")
MAX_CONNECTIONS_PER_PROCESS = 2

pytestmark = pytest.mark.slow


def value(index: int, epoch: int, i: int, metric: str) -> float:
    """What job ``index`` writes for ``metric`` in round ``i`` of ``epoch`` (as the script says)."""
    return index * 1_000_000 + epoch * 1_000 + i + METRICS.index(metric) * 0.25




class Job:
    def __init__(self, backend: str, url: str, index: int, tmp: Path, ready: Path, go: Path) -> None:
        self.backend, self.index = backend, index
        self.mode = "train" if index % PER_BACKEND < TRAINERS_PER_BACKEND else "write"
        self.name = f"{backend}-{self.mode}-{index:02d}"
        self.out, self.err = tmp / f"{self.name}.out", tmp / f"{self.name}.err"
        epochs = TRAIN_EPOCHS if self.mode == "train" else WRITE_EPOCHS
        command = [sys.executable, str(SCRIPT), url, self.name, str(index), str(epochs), str(WRITE_POINTS),
                   str(ready), str(go), self.mode]
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(command, cwd=tmp, env=script_env(), stdout=out, stderr=err)

    def result(self) -> dict[str, Any]:
        (line,) = [x for x in self.out.read_text().splitlines() if x.startswith("RESULT ")]
        return json.loads(line[len("RESULT "):])

    def expected(self) -> dict[str, list[Any]]:
        """metric -> [(epoch, value)] in seq order, as the run must hold it."""
        if self.mode == "write":
            return {
                m: [(e, value(self.index, e, i, m)) for e in range(1, WRITE_EPOCHS + 1) for i in range(WRITE_POINTS)]
                for m in METRICS
            }
        mirror = self.result()["mirror"]
        assert sorted(mirror) == list(TRAIN_METRICS)
        assert all(len(mirror[m]) == TRAIN_EPOCHS for m in TRAIN_METRICS)
        return {m: [(e + 1, v) for e, v in enumerate(mirror[m])] for m in TRAIN_METRICS}


def _wait(predicate: Any, what: str, jobs: list[Job], deadline: float, on_poll: Any = None) -> None:
    while not predicate():
        if on_poll is not None:
            on_poll()
        dead = [j for j in jobs if j.proc.poll() not in (None, 0)]
        assert not dead, f"{dead[0].name} failed: {dead[0].err.read_text()[-3000:]}"
        if time.monotonic() > deadline:
            for j in jobs:
                j.proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sixteen_processes_into_one_postgres_database_and_one_sqlite_file(
    tmp_path: Path, pg_url: str, pg_server: Any
) -> None:
    import psycopg

    sqlite_url = f"sqlite:///{tmp_path / 'shared.db'}"
    urls = {"postgresql": pg_url, "sqlite": sqlite_url}
    ready, go = tmp_path / "ready", tmp_path / "go"
    ready.mkdir()
    launched = time.monotonic()
    deadline = launched + DEADLINE_S
    jobs = [Job(backend, urls[backend], b * PER_BACKEND + k, tmp_path, ready, go)
            for k in range(PER_BACKEND) for b, backend in enumerate(urls)]
    assert len(jobs) == 16
    database = pg_url.rsplit("/", 1)[1]
    peak = {"connections": 0}
    with psycopg.connect(f"host=127.0.0.1 port={pg_server.port} user=postgres dbname=postgres",
                         autocommit=True) as admin:
        def sample() -> None:
            (count,) = admin.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s",
                                     (database,)).fetchone()
            peak["connections"] = max(peak["connections"], count)

        try:
            _wait(lambda: len(list(ready.iterdir())) == len(jobs), "16 ready files", jobs, deadline)
            started = time.monotonic()
            go.touch()
            _wait(lambda: all(j.proc.poll() is not None for j in jobs), "the 16 jobs", jobs, deadline, sample)
            elapsed = time.monotonic() - started
        finally:
            for j in jobs:
                if j.proc.poll() is None:
                    j.proc.kill()
                j.proc.wait()

    for j in jobs:
        assert (j.proc.returncode, j.err.read_text()) == (0, ""), j.name
    results = {j.name: j.result() for j in jobs}
    # they really ran at the same time: every job opened its history before any of them closed it
    assert max(r["opened_at"] for r in results.values()) < min(r["closed_at"] for r in results.values())
    assert 0 < peak["connections"] <= MAX_CONNECTIONS_PER_PROCESS * PER_BACKEND

    n_writers = PER_BACKEND - TRAINERS_PER_BACKEND
    per_backend = n_writers * len(METRICS) * WRITE_EPOCHS * WRITE_POINTS + TRAINERS_PER_BACKEND * 2 * TRAIN_EPOCHS
    assert per_backend == 7208
    for backend, url in urls.items():
        mine = [j for j in jobs if j.backend == backend]
        assert query(url, "SELECT COUNT(*) FROM v_metrics") == [(per_backend,)]
        assert query(url, "SELECT COUNT(*), MIN(rev), MAX(rev) FROM points") == [(per_backend, 0, 0)]
        assert query(url, "SELECT COUNT(*) FROM (SELECT run_id, stage, metric, seq FROM v_metrics "
                          "GROUP BY run_id, stage, metric, seq HAVING COUNT(*) > 1) AS doubled") == [(0,)]
        runs = query(url, "SELECT run_name, run_id, status, current_epoch, num_stages, ended_at IS NOT NULL "
                          "FROM v_runs WHERE experiment = 'concurrency' ORDER BY run_name")
        assert runs == sorted(
            (j.name, results[j.name]["run_id"], "finished",
             (TRAIN_EPOCHS if j.mode == "train" else WRITE_EPOCHS) + 1, 1, True)
            for j in mine
        )
        assert query(url, "SELECT COUNT(*) FROM runs") == [(PER_BACKEND,)]
        for j in mine:
            stored: dict[str, list[Any]] = {}
            for metric, seq, epoch, val, stage in query(
                url, "SELECT metric, seq, epoch, value, stage FROM v_metrics WHERE run_name = :n ORDER BY metric, seq",
                {"n": j.name},
            ):
                assert (stage, seq) == (1, len(stored.get(metric, [])))
                stored.setdefault(metric, []).append((epoch, val))
            assert stored == j.expected(), j.name
            assert results[j.name]["epoch"] == (TRAIN_EPOCHS if j.mode == "train" else WRITE_EPOCHS) + 1
        configs = query(url, "SELECT r.run_name, c.kind, c.num_epochs FROM v_configs c "
                             "JOIN v_runs r ON r.run_id = c.run_id ORDER BY r.run_name")
        assert configs == sorted((j.name, "train", TRAIN_EPOCHS) for j in mine if j.mode == "train")
    print(f"\n16 jobs ready {started - launched:.1f} s after launch, done {elapsed:.1f} s after the start "
          f"signal; peak Postgres connections {peak['connections']}; {per_backend} points per backend")


# -- a least-privilege role: reads and writes the tables, cannot create or drop ------------------

ROLE, ROLE_PASSWORD = "trainer", "pw"


def role_grants(database: str) -> list[str]:
    """The statements that make ``trainer`` a least-privilege writer (as in the README)."""
    return [
        f'GRANT CONNECT ON DATABASE "{database}" TO {ROLE}',
        f"GRANT USAGE ON SCHEMA public TO {ROLE}",
        f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {ROLE}",
        f"GRANT DELETE ON point_blocks TO {ROLE}",  # derived: a rewind recomputes them
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ROLE}",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    ]


@pytest.fixture
def trainer_role(pg_url: str, pg_server: Any) -> Iterator[str]:
    """The schema created by the superuser, then the role granted on it; yields the role's URL."""
    import psycopg

    from runhistory_sql.db import migrate
    from runhistory_sql.cli import main as cli

    database = pg_url.rsplit("/", 1)[1]
    result = CliRunner().invoke(cli, ["db", "upgrade", pg_url])
    assert (result.exit_code, result.output) == (
        0, f"Upgraded {pg_url} from revision (empty) to {migrate.head_revision()}.\n")
    pg_server.admin(f"DROP ROLE IF EXISTS {ROLE}")
    pg_server.admin(f"CREATE ROLE {ROLE} WITH LOGIN PASSWORD '{ROLE_PASSWORD}'")
    dsn = f"host=127.0.0.1 port={pg_server.port} user=postgres dbname={database}"
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in role_grants(database):
                conn.execute(statement)
        yield pg_server.url(database, ROLE, ROLE_PASSWORD)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {ROLE}")  # its grants here and on the database
        pg_server.admin(f"DROP ROLE {ROLE}")


def _mirror(history: Any) -> dict[str, list[tuple[int, float]]]:
    """metric -> [(epoch, value)]: the epochs of the trainer's once-per-epoch metrics are 1, 2, ..."""
    return {m: [(e + 1, v) for e, v in enumerate(history.get_metric_values(m))]
            for m in sorted(history.get_metric_names())}


def test_least_privilege_role_trains_resumes_and_cannot_create_or_drop(
    tmp_path: Path, pg_url: str, pg_server: Any, trainer_role: str, caplog: pytest.LogCaptureFixture,
) -> None:
    import psycopg
    from pytorch_accelerated.callbacks import SaveTrainingStateCallback

    from runhistory_sql import RunTrackingCallback, SQLRunHistory
    from runhistory_sql.trainer.demo import make_datasets, make_model, make_trainer

    train_ds, eval_ds = make_datasets(n_train=64, n_eval=32)  # 2 steps per epoch
    state = tmp_path / "state"
    # 1. train 3 epochs as the role, saving the training state after each
    history = SQLRunHistory(trainer_role, experiment="least-privilege", run_name="lp")
    assert f":{ROLE_PASSWORD}@" not in repr(history) and history.url.startswith(f"postgresql+psycopg://{ROLE}:***@")
    saver = SaveTrainingStateCallback(save_dir=str(state), save_every_n_epochs=1, save_at_end=False)
    trainer = make_trainer(make_model(seed=0), history, callbacks=[RunTrackingCallback(), saver])
    trainer.train(train_dataset=train_ds, eval_dataset=eval_ds, num_epochs=3, per_device_batch_size=32)
    history.log_event("checkpoint", dir="epoch_2")
    first = _mirror(history)
    assert [len(v) for v in first.values()] == [3, 3]
    assert history.close() is None

    # 2. resume the same run from the state of epoch 2: epochs >= 2 are superseded (UPDATE), re-run
    resumed = SQLRunHistory(trainer_role, experiment="least-privilege", run_name="lp", resume="allow")
    assert _mirror(resumed) == first
    trainer = make_trainer(make_model(seed=0), resumed, callbacks=[RunTrackingCallback()])
    trainer.train(train_dataset=train_ds, eval_dataset=eval_ds, num_epochs=2, per_device_batch_size=32,
                  resume_from=str(state / "epoch_2"))
    second = _mirror(resumed)
    assert {m: v[:1] for m, v in second.items()} == {m: v[:1] for m, v in first.items()}
    assert resumed.close() is None
    assert [r for r in caplog.records if r.name.startswith("runhistory_sql")] == []

    effective: dict[str, list[tuple[int, float]]] = {}
    for metric, stage, seq, epoch, value in query(
        trainer_role, "SELECT metric, stage, seq, epoch, value FROM v_metrics ORDER BY metric, seq"
    ):
        assert (stage, seq) == (1, len(effective.get(metric, [])))
        effective.setdefault(metric, []).append((epoch, value))
    assert effective == second
    # upstream re-runs epoch 2 and, with its step limit, a 1-step epoch 3: 3 epochs again
    assert [len(v) for v in second.values()] == [3, 3]
    assert query(pg_url, "SELECT rev, COUNT(*) FROM points GROUP BY rev ORDER BY rev") == [(0, 6), (1, 4)]
    assert query(trainer_role, "SELECT run_name, status, current_epoch, num_stages FROM v_runs") == [
        ("lp", "finished", 4, 1)]
    assert query(trainer_role, "SELECT stage, kind, num_epochs FROM v_configs ORDER BY captured_at") == [
        (1, "train", 3), (1, "train", 2)]
    events = query(trainer_role, "SELECT stage, epoch, kind, payload FROM v_events ORDER BY recorded_at")
    assert [(s, e, k) for s, e, k, _ in events] == [
        (1, 1, "training_run_start"), (1, 1, "epoch_end"), (1, 2, "epoch_end"), (1, 3, "epoch_end"),
        (1, 4, "training_run_end"), (1, 4, "checkpoint"), (1, 4, "resumed"), (1, 2, "rewind"),
        (1, 2, "training_run_start"), (1, 2, "epoch_end"), (1, 3, "epoch_end"), (1, 4, "training_run_end"),
    ]
    assert json.loads(events[5][3]) == {"dir": "epoch_2"}
    assert json.loads(events[7][3]) == {"to_epoch": 2, "superseded_points": 4, "rev": 1}

    # 3. the same role cannot change the schema, nor delete anything
    dsn = f"host=127.0.0.1 port={pg_server.port} user={ROLE} password={ROLE_PASSWORD} dbname={pg_url.rsplit('/', 1)[1]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement, message in [
            ("DROP TABLE points", "must be owner of table points"),
            ("CREATE TABLE evil (id integer)", "permission denied for schema public"),
            ("DELETE FROM points", "permission denied for table points"),
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
                conn.execute(statement)
            assert str(refused.value).splitlines()[0] == message
    assert query(pg_url, "SELECT COUNT(*) FROM points") == [(10,)]


def test_roles_granted_before_an_upgrade_keep_writing_and_reading_after_it(
    pg_url: str, pg_server: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    # The README's writer role and a `db create-reader` role, both granted at revision 0006; the
    # upgrade adds params, v_params and point_blocks, which ON ALL TABLES of that day did not cover.
    import psycopg

    from runhistory_sql import RunStore, SQLRunHistory
    from runhistory_sql.cli import main as cli
    from runhistory_sql.db import migrate
    from runhistory_sql.db.engine import make_engine

    database = pg_url.rsplit("/", 1)[1]
    engine = make_engine(pg_url)
    migrate.upgrade(engine, "0006")
    pg_server.admin(f"DROP ROLE IF EXISTS {ROLE}")
    pg_server.admin(f"CREATE ROLE {ROLE} WITH LOGIN PASSWORD '{ROLE_PASSWORD}'")
    dsn = f"host=127.0.0.1 port={pg_server.port} user=postgres dbname={database}"
    reader = "old_reader"
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in role_grants(database):
                if "point_blocks" not in statement:  # no such table at 0006
                    conn.execute(statement)
        made = CliRunner().invoke(cli, ["db", "create-reader", reader, "--password", "--url", pg_url], input="rpw\nrpw\n")
        assert made.exit_code == 0, made.output
        assert migrate.upgrade(engine, "head") == ("0006", migrate.head_revision())

        with SQLRunHistory(pg_server.url(database, ROLE, ROLE_PASSWORD), experiment="old", run_name="r") as h:
            h.log_params({"lr": 0.1})
            for step in range(5):
                h.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
            h.rewind_to_step(3)  # recomputes point_blocks: DELETE on them
            h.log_metrics({"loss": 9.0}, step=3)
        with RunStore(pg_server.url(database, reader, "rpw")) as store:
            found = store.query("SELECT key, value, is_current FROM v_params").rows
            steps = store.query("SELECT step, value FROM v_metrics ORDER BY seq").rows
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {ROLE}")
            conn.execute(f"DROP OWNED BY {reader}")
        engine.dispose()
        pg_server.admin(f"DROP ROLE {ROLE}")
        pg_server.admin(f"DROP ROLE {reader}")

    assert [r for r in caplog.records if r.name.startswith("runhistory_sql")] == []  # nothing set aside
    assert [tuple(r) for r in found] == [("lr", 0.1, True)]
    assert [tuple(r) for r in steps] == [(0, 1.0), (1, 0.5), (2, 1.0 / 3), (3, 9.0)]
