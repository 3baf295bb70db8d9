"""Schema, migrations, engine settings and packaging, against a real SQLite file and a real
PostgreSQL server.

Covers: models-vs-migrations drift, upgrading a database with data in it, the pinned columns of
the documented views, refusing databases at other revisions, eight processes creating one fresh
database at once (SQLite's write lock; on PostgreSQL the advisory lock), ``alembic upgrade head``
from the repo root — all on both backends (the ``url`` fixture) — and, on SQLite only, the
pragmas and the wheel shipping the migrations; masking passwords in URLs needs no database.
"""
from __future__ import annotations

import functools
import importlib.util
import math
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
import zipfile
from pathlib import Path

from datetime import datetime, timezone
from typing import Iterator

import pytest
from sqlalchemy import Engine, column, insert, inspect, table, text

from runhistory_sql import SchemaVersionError, SQLRunHistory
from runhistory_sql.db import migrate
from runhistory_sql.db import schema
from runhistory_sql.db.engine import make_engine, mask

from helpers import columns, dump, is_postgres, query, same, tables, views

REPO_ROOT = Path(__file__).resolve().parent.parent
HEAD = "0008"
HEAD_PREVIOUS = "0007"

#: A literal copy of the column lists promised in DESIGN.md ("SQL contract"). Deliberately not
#: derived from schema.VIEW_COLUMNS, so that changing that constant alone fails a test too.
DOCUMENTED_VIEW_COLUMNS = {
    "v_runs": (
        "run_id", "run_uuid", "experiment", "run_name", "status", "created_at", "ended_at",
        "current_epoch", "num_stages", "host", "tags",
    ),
    "v_metrics": (
        "run_id", "run_name", "experiment", "stage", "metric", "seq", "epoch", "value",
        "value_json", "recorded_at",
        # added with migration 0007, at the end as the view contract allows
        "step",
    ),
    "v_configs": (
        "run_id", "stage", "captured_at", "kind",
        # one column per TrainerRunConfig field (pytorch-accelerated 0.1.61), in field order
        "num_epochs", "train_per_device_batch_size", "train_dl_kwargs",
        "eval_per_device_batch_size", "eval_dl_kwargs", "gradient_accumulation_steps",
        "gradient_clip_value", "train_total_batch_size", "eval_total_batch_size",
        "num_update_steps_per_epoch", "num_local_update_steps_per_epoch", "max_num_train_steps",
        "is_local_process_zero", "is_world_process_zero", "is_distributed", "mixed_precision",
        "num_processes",
    ),
    "v_events": ("run_id", "stage", "epoch", "kind", "recorded_at", "payload", "event_id"),
    # not in DESIGN.md: added with migration 0003 for fast best-of-run queries in plain SQL
    "v_summaries": ("run_id", "run_name", "experiment", "stage", "metric", "n_points", "min_value", "max_value"),
    # migration 0007: the hyperparameters of runs (issue 12)
    "v_params": ("run_id", "run_name", "experiment", "key", "value", "value_text", "value_json", "recorded_at",
                 "is_current"),
}


@pytest.fixture
def any_engine(url: str) -> Iterator[Engine]:
    """An engine on the test's database: a SQLite file, then a fresh PostgreSQL database."""
    eng = make_engine(url)
    yield eng
    eng.dispose()


def _view_columns(url: str, view: str) -> tuple[str, ...]:
    return columns(url, f"SELECT * FROM {view}")


def _at_head(db_url: str) -> str | None:
    eng = make_engine(db_url)
    try:
        return migrate.current_revision(eng)
    finally:
        eng.dispose()


# -- 1. models vs migrations ----------------------------------------------------------------


def test_head_revision_is_the_last_migration() -> None:
    assert migrate.head_revision() == HEAD


def test_migrations_match_the_models(any_engine: Engine) -> None:
    migrate.ensure_schema(any_engine)
    assert migrate.current_revision(any_engine) == HEAD
    assert migrate.drift(any_engine) == []
    assert migrate.check(any_engine) == []


def test_check_reports_older_and_empty_databases(any_engine: Engine, url: str) -> None:
    [problem] = migrate.check(any_engine)
    assert "no runhistory-sql schema" in problem and f"runhistory-sql db upgrade {url}" in problem
    migrate.upgrade(any_engine, "0001")
    [problem] = migrate.check(any_engine)
    assert "revision 0001" in problem and f"runhistory-sql db upgrade {url}" in problem


# -- 2. upgrading with data in the database ----------------------------------------------------

# The tables as revision 0001 created them, written out by hand (not the current models).
_experiments = table("experiments", column("id"), column("name"), column("created_at"))
_runs = table(
    "runs", column("id"), column("uuid"), column("experiment_id"), column("name"),
    column("status"), column("created_at"), column("ended_at"), column("heartbeat_at"),
    column("current_stage"), column("current_epoch"), column("rewinds"), column("host"),
    column("pid"), column("tags"),
)
_stages = table("stages", column("id"), column("run_id"), column("idx"), column("started_at"))
_metrics = table("metrics", column("id"), column("name"))
_series = table(
    "series", column("id"), column("run_id"), column("stage_id"), column("metric_id"),
    column("deleted"),
)
_points = table(
    "points", column("series_id"), column("rev"), column("seq"), column("epoch"),
    column("value"), column("special"), column("value_json"), column("recorded_at"),
)

T0 = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z


def timestamp(url: str, iso: str) -> str | datetime:
    """How the views show the instant ``iso`` (``...Z``): ISO text on SQLite, a UTC
    ``datetime`` (``timestamptz``) on PostgreSQL."""
    if not is_postgres(url):
        return iso
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def test_upgrade_from_0001_to_head_keeps_the_data(any_engine: Engine, url: str) -> None:
    engine = any_engine
    assert migrate.upgrade(engine, "0001") == (None, "0001")
    with engine.begin() as conn:
        conn.execute(insert(_experiments).values(id=1, name="exp", created_at=T0))
        conn.execute(insert(_runs).values(
            id=7, uuid="00000000-0000-0000-0000-000000000007", experiment_id=1, name="r1",
            status="finished", created_at=T0, ended_at=T0 + 5000, heartbeat_at=T0 + 5000,
            current_stage=2, current_epoch=3, rewinds=1, host="h", pid=1, tags='{"lr": 0.1}',
        ))
        conn.execute(insert(_stages), [
            {"id": 1, "run_id": 7, "idx": 1, "started_at": T0},
            {"id": 2, "run_id": 7, "idx": 2, "started_at": T0 + 3000},
        ])
        conn.execute(insert(_metrics), [{"id": 1, "name": "loss"}, {"id": 2, "name": "acc"}])
        conn.execute(insert(_series), [
            {"id": 1, "run_id": 7, "stage_id": 1, "metric_id": 1, "deleted": False},
            {"id": 2, "run_id": 7, "stage_id": 1, "metric_id": 2, "deleted": True},
            {"id": 3, "run_id": 7, "stage_id": 2, "metric_id": 2, "deleted": False},
        ])
        conn.execute(insert(_points), [
            # loss, stage 1: seq 0..2 effective; seq 1 and 2 were first written, then rewound (rev 1)
            {"series_id": 1, "rev": 0, "seq": 0, "epoch": 1, "value": 0.5, "special": None,
             "value_json": None, "recorded_at": T0 + 1000},
            {"series_id": 1, "rev": 1, "seq": 1, "epoch": 2, "value": 99.0, "special": None,
             "value_json": None, "recorded_at": T0 + 1500},
            {"series_id": 1, "rev": 1, "seq": 2, "epoch": 3, "value": 98.0, "special": None,
             "value_json": None, "recorded_at": T0 + 1600},
            {"series_id": 1, "rev": 0, "seq": 1, "epoch": 2, "value": 0.25, "special": None,
             "value_json": None, "recorded_at": T0 + 2000},
            {"series_id": 1, "rev": 0, "seq": 2, "epoch": 2, "value": None, "special": 1,
             "value_json": None, "recorded_at": T0 + 2001},
            # acc, stage 1: deleted series, none of it is effective
            {"series_id": 2, "rev": 0, "seq": 0, "epoch": 1, "value": 0.9, "special": None,
             "value_json": None, "recorded_at": T0 + 1001},
            # acc, stage 2: a JSON value
            {"series_id": 3, "rev": 0, "seq": 0, "epoch": 1, "value": None, "special": None,
             "value_json": '{"f1": 0.5}', "recorded_at": T0 + 3500},
        ])
    before = dump(url, ignore={"points": {"recorded_at"}})
    with engine.connect() as conn:
        at_0001 = {name: {c["name"] for c in inspect(conn).get_columns(name)} for name in before}

    assert migrate.upgrade(engine) == ("0001", HEAD)

    # every row of every table is kept (columns that later migrations add are left out here, and
    # points.recorded_at, which 0004 turns into an offset from the run's start: the v_metrics
    # check below shows the times are unchanged)
    ignore = {name: set(table.c.keys()) - at_0001[name] for name, table in schema.metadata.tables.items()
              if name in at_0001}
    ignore["points"] = ignore["points"] | {"recorded_at"}
    after = dump(url, ignore=ignore)
    assert after.pop("alembic_version") == [(HEAD,)]
    # 0006 gives the database its identity: one row, a fresh uuid
    [(one, identity, _)] = after.pop("store_info")
    assert one == 1 and str(uuid.UUID(identity)) == identity
    assert after.pop("params") == []  # 0007: no run had params before
    # 0008 summarises the existing points per block: count, lowest and highest with their seqs,
    # the first NULL value's seq (the NaN of loss, the JSON value of acc)
    assert after.pop("point_blocks") == [
        (1, 0, 0, 3, 0.25, 1, 0.5, 0, 2), (1, 1, 0, 2, 98.0, 2, 99.0, 1, None),
        (2, 0, 0, 1, 0.9, 0, 0.9, 0, None), (3, 0, 0, 1, None, None, None, None, 0),
    ]
    assert before.pop("alembic_version") == [("0001",)]
    assert after == before
    # SQLite has no NaN: the NaN point (special = 1) reads as NULL there, as NaN on PostgreSQL
    nan = math.nan if is_postgres(url) else None
    t = functools.partial(timestamp, url)
    assert same(query(url, "SELECT * FROM v_metrics ORDER BY stage, metric, seq"), [
        (7, "r1", "exp", 1, "loss", 0, 1, 0.5, None, t("2023-11-14T22:13:21.123Z"), None),
        (7, "r1", "exp", 1, "loss", 1, 2, 0.25, None, t("2023-11-14T22:13:22.123Z"), None),
        (7, "r1", "exp", 1, "loss", 2, 2, nan, None, t("2023-11-14T22:13:22.124Z"), None),
        (7, "r1", "exp", 2, "acc", 0, 1, None, '{"f1": 0.5}', t("2023-11-14T22:13:23.623Z"), None),
    ])
    assert same(query(url, "SELECT * FROM v_runs"), [(
        7, "00000000-0000-0000-0000-000000000007", "exp", "r1", "finished",
        t("2023-11-14T22:13:20.123Z"), t("2023-11-14T22:13:25.123Z"), 3, 2, "h", '{"lr": 0.1}',
    )])
    assert migrate.drift(engine) == []


def test_running_run_with_a_stale_heartbeat_reads_as_crashed(any_engine: Engine, url: str) -> None:
    migrate.ensure_schema(any_engine)
    now = int(time.time() * 1000)
    with any_engine.begin() as conn:
        conn.execute(insert(_experiments).values(id=1, name="exp", created_at=T0))
        common = {"experiment_id": 1, "status": "running", "created_at": T0, "current_stage": 1,
                  "current_epoch": 1, "tags": "{}"}
        conn.execute(insert(_runs), [
            {"id": 1, "uuid": "a", "name": "stale", "heartbeat_at": now - 120_000, **common},
            {"id": 2, "uuid": "b", "name": "alive", "heartbeat_at": now, **common},
        ])
    assert query(url, "SELECT run_name, status, ended_at, num_stages FROM v_runs ORDER BY run_id") == [
        ("stale", "crashed", None, 0),
        ("alive", "running", None, 0),
    ]


# -- 3. the documented views ------------------------------------------------------------------


def test_view_columns_are_the_documented_ones() -> None:
    assert schema.VIEW_COLUMNS == DOCUMENTED_VIEW_COLUMNS


@pytest.mark.parametrize("view", sorted(DOCUMENTED_VIEW_COLUMNS))
def test_view_columns_are_pinned(any_engine: Engine, url: str, view: str) -> None:
    migrate.ensure_schema(any_engine)
    assert _view_columns(url, view) == schema.VIEW_COLUMNS[view]
    assert _view_columns(url, view) == DOCUMENTED_VIEW_COLUMNS[view]


def test_the_views_are_exactly_the_documented_ones(any_engine: Engine, url: str) -> None:
    migrate.ensure_schema(any_engine)
    assert views(url) == set(DOCUMENTED_VIEW_COLUMNS)


def test_config_columns_follow_trainer_run_config() -> None:
    import dataclasses

    from pytorch_accelerated.trainer import TrainerRunConfig

    fields = tuple(f.name for f in dataclasses.fields(TrainerRunConfig))
    assert DOCUMENTED_VIEW_COLUMNS["v_configs"][4:] == fields


# -- 4. databases at other revisions -----------------------------------------------------------


def test_older_database_is_refused_with_the_upgrade_command(any_engine: Engine, url: str) -> None:
    migrate.upgrade(any_engine, "0001")
    before = dump(url)
    with pytest.raises(SchemaVersionError) as info:
        SQLRunHistory(url)
    message = str(info.value)
    assert f"runhistory-sql db upgrade {url}" in message
    assert "0001" in message and HEAD in message
    assert dump(url) == before
    assert migrate.current_revision(any_engine) == "0001"


def test_older_database_is_upgraded_with_auto_upgrade(any_engine: Engine, url: str) -> None:
    migrate.upgrade(any_engine, "0001")
    history = SQLRunHistory(url, experiment="e", run_name="r", auto_upgrade=True)
    try:
        history.update_metric("loss", 1.5)
    finally:
        history.close()
    assert migrate.current_revision(any_engine) == HEAD
    assert migrate.drift(any_engine) == []
    assert query(url, "SELECT run_name, metric, seq, value FROM v_metrics") == [("r", "loss", 0, 1.5)]


def test_newer_database_is_refused(any_engine: Engine, url: str) -> None:
    migrate.ensure_schema(any_engine)
    with any_engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    before = dump(url)
    for auto_upgrade in (False, True):
        with pytest.raises(SchemaVersionError) as info:
            SQLRunHistory(url, auto_upgrade=auto_upgrade)
        message = str(info.value)
        assert "9999" in message and "newer" in message and url in message
        assert "pip install -U runhistory-sql" in message
    with pytest.raises(SchemaVersionError, match="newer"):
        migrate.upgrade(any_engine)
    [problem] = migrate.check(any_engine)
    assert "newer" in problem
    assert dump(url) == before


def test_tables_like_ours_without_a_stamp_are_refused(any_engine: Engine, url: str) -> None:
    with any_engine.begin() as conn:
        conn.execute(text("CREATE TABLE runs (id INTEGER PRIMARY KEY, what TEXT)"))
        conn.execute(text("INSERT INTO runs VALUES (1, 'not ours')"))
    before = dump(url)
    with pytest.raises(SchemaVersionError, match="not made by runhistory-sql"):
        migrate.ensure_schema(any_engine, auto_upgrade=True)
    with pytest.raises(SchemaVersionError, match="not made by runhistory-sql"):
        migrate.upgrade(any_engine)
    assert dump(url) == before


def test_another_applications_alembic_database_is_refused(any_engine: Engine, url: str) -> None:
    with any_engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('ae1027a6acf')"))
        conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY)"))
    before = dump(url)
    with pytest.raises(SchemaVersionError, match="another application"):
        migrate.ensure_schema(any_engine, auto_upgrade=True)
    with pytest.raises(SchemaVersionError, match="another application"):
        migrate.upgrade(any_engine)
    assert dump(url) == before


def test_unrelated_tables_are_kept_and_the_schema_created_beside_them(any_engine: Engine, url: str) -> None:
    with any_engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
        conn.execute(text("INSERT INTO notes VALUES (1, 'keep me')"))
    migrate.ensure_schema(any_engine)
    assert migrate.current_revision(any_engine) == HEAD
    assert query(url, "SELECT * FROM notes") == [(1, "keep me")]
    assert tables(url) == set(schema.metadata.tables) | {"alembic_version", "notes"}


def test_ensure_schema_on_a_database_at_head_changes_nothing(any_engine: Engine, url: str) -> None:
    migrate.ensure_schema(any_engine)
    before = dump(url)
    migrate.ensure_schema(any_engine)
    migrate.ensure_schema(any_engine, auto_upgrade=True)
    assert dump(url) == before


# -- 5. eight processes create one fresh database at once -----------------------------------

_RACER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from runhistory_sql import SQLRunHistory

    url, index, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    (folder / f"ready-{index}").touch()
    deadline = time.monotonic() + 60
    while not (folder / "go").exists():
        if time.monotonic() > deadline:
            sys.exit("never got the go")
        time.sleep(0.005)
    history = SQLRunHistory(url, experiment="race", run_name=f"p{index}")
    for k in range(3):
        history.update_metric("loss", index * 10.0 + k)
    history._increment_epoch()
    history.update_metric("acc", index / 10)
    history.close()
""")


@pytest.mark.slow
def test_eight_processes_create_one_fresh_database_at_once(tmp_path: Path, url: str, db_path: Path) -> None:
    # On SQLite, creation is serialised by the write lock (BEGIN IMMEDIATE); on PostgreSQL by
    # migrate.py's advisory lock, without which the racers' CREATE TABLEs collide.
    folder = tmp_path / "barrier"
    folder.mkdir()
    script = tmp_path / "racer.py"
    script.write_text(_RACER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, str(i), str(folder)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(8)
    ]
    try:
        deadline = time.monotonic() + 90
        while len(list(folder.glob("ready-*"))) < 8:
            failed = [p for p in procs if p.poll() is not None]
            assert not failed, failed[0].communicate()
            assert time.monotonic() < deadline, "the racers did not start"
            time.sleep(0.02)
        # nobody has touched the database before the go
        if is_postgres(url):
            assert tables(url) == set()
        else:
            assert not db_path.exists()
        (folder / "go").touch()
        results = [p.communicate(timeout=90) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err

    assert query(url, "SELECT version_num FROM alembic_version") == [(HEAD,)]
    assert query(url, "SELECT run_name, status FROM v_runs ORDER BY run_name") == [
        (f"p{i}", "finished") for i in range(8)
    ]
    assert query(url, "SELECT name FROM experiments") == [("race",)]
    got = query(url, "SELECT run_name, metric, seq, epoch, value FROM v_metrics ORDER BY run_name, metric, seq")
    expected = []
    for i in range(8):
        expected.append((f"p{i}", "acc", 0, 2, i / 10))
        expected.extend((f"p{i}", "loss", k, 1, i * 10.0 + k) for k in range(3))
    assert got == expected


# -- 6. SQLite settings ------------------------------------------------------------------------


def test_sqlite_pragmas(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert (conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) > 0
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_foreign_keys_are_enforced(any_engine: Engine, url: str) -> None:
    # SQLite enforces them only with PRAGMA foreign_keys = ON, which make_engine sets
    migrate.ensure_schema(any_engine)
    message = "violates foreign key constraint" if is_postgres(url) else "FOREIGN KEY constraint failed"
    with pytest.raises(Exception, match=message):
        with any_engine.begin() as conn:
            conn.execute(insert(_stages).values(id=1, run_id=12345, idx=1, started_at=T0))


# -- 7. alembic from the repository root --------------------------------------------------------


def _alembic(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *args], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.slow
def test_alembic_upgrade_head_with_x_url(url: str) -> None:
    upgraded = _alembic("-x", f"url={url}", "upgrade", "head")
    assert "Running upgrade 0001 -> 0002" in upgraded.stderr  # alembic.ini's logging applies
    assert _at_head(url) == HEAD
    assert f"{HEAD} (head)" in _alembic("-x", f"url={url}", "current").stdout


@pytest.mark.slow
def test_alembic_downgrade_to_base_and_back_to_head(url: str) -> None:
    _alembic("-x", f"url={url}", "upgrade", "head")
    _alembic("-x", f"url={url}", "downgrade", "base")
    assert tables(url) == {"alembic_version"} and views(url) == set()
    _alembic("-x", f"url={url}", "upgrade", "head")
    eng = make_engine(url)
    try:
        assert migrate.current_revision(eng) == HEAD
        assert migrate.check(eng) == []
    finally:
        eng.dispose()


@pytest.mark.slow
def test_alembic_downgrade_one_step_with_data_and_back_keeps_it(url: str) -> None:
    # with rows in points, a downgrade that rebuilds series trips the points -> series key
    with SQLRunHistory(url, run_name="kept") as h:
        for i in range(3):
            h.update_metric("loss", float(i))
        h._increment_epoch()
        h.update_metric("acc", {"f1": 0.5})
    before = query(url, "SELECT * FROM v_metrics ORDER BY metric, seq")

    _alembic("-x", f"url={url}", "downgrade", "-1")
    downgraded = (_at_head(url), query(url, "SELECT * FROM v_metrics ORDER BY metric, seq"))
    _alembic("-x", f"url={url}", "upgrade", "head")

    # 0008 changes no view: 0007's v_metrics reads the same
    assert downgraded == (HEAD_PREVIOUS, before)
    assert query(url, "SELECT * FROM v_metrics ORDER BY metric, seq") == before
    eng = make_engine(url)
    try:
        assert (migrate.current_revision(eng), migrate.check(eng)) == (HEAD, [])
    finally:
        eng.dispose()


@pytest.mark.slow
def test_alembic_upgrade_head_with_the_environment_variable(url: str) -> None:
    _alembic("upgrade", "head", env={**os.environ, "RUNHISTORY_SQL_URL": url})
    assert _at_head(url) == HEAD


@pytest.mark.slow
def test_alembic_x_url_beats_the_environment_variable(tmp_path: Path) -> None:
    x_url, env_url = f"sqlite:///{tmp_path / 'x.db'}", f"sqlite:///{tmp_path / 'env.db'}"
    _alembic("-x", f"url={x_url}", "upgrade", "head", env={**os.environ, "RUNHISTORY_SQL_URL": env_url})
    assert _at_head(x_url) == HEAD
    assert not (tmp_path / "env.db").exists()


# -- 8. the wheel ships the migrations ----------------------------------------------------------


def _build_backend_missing() -> bool:
    # setuptools >= 70.1 (what pyproject.toml asks for) builds wheels without the wheel package
    return importlib.util.find_spec("setuptools") is None or (
        importlib.util.find_spec("setuptools.command.bdist_wheel") is None
    )


@pytest.mark.slow
@pytest.mark.skipif(_build_backend_missing(), reason="the build backend (setuptools>=70.1) is missing")
def test_wheel_ships_the_migrations(tmp_path: Path) -> None:
    # Build from a copy, so that no build/ folder is left in (or reused from) the source tree.
    source = tmp_path / "src"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", "*.db", "*.db-*", ".*_cache",
        ".hypothesis", "tests",
    ))
    out = tmp_path / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    [wheel] = out.glob("runhistory_sql-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert {
        "runhistory_sql/py.typed",
        "runhistory_sql/tracker/sqltracker.py",
        "runhistory_sql/migrations/env.py",
        "runhistory_sql/migrations/script.py.mako",
        "runhistory_sql/migrations/versions/0001_tables.py",
        "runhistory_sql/migrations/versions/0002_views.py",
    } <= names
    assert not [n for n in names if n.startswith(("migrations/", "tests/")) or "__pycache__" in n]
    # the dashboard with its templates and static files (package-data: templates/*.html, static/**)
    ui = REPO_ROOT / "runhistory_sql" / "ui"
    pages = [*ui.glob("templates/*.html"), *(p for p in ui.glob("static/**/*") if p.is_file())]
    assert {"runhistory_sql/ui/app.py", *(p.relative_to(REPO_ROOT).as_posix() for p in pages)} <= names

    # The unpacked wheel alone (no source tree) creates a database at head.
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    url = f"sqlite:///{tmp_path / 'from-wheel.db'}"
    probe = (
        "import sys, runhistory_sql\n"
        "from runhistory_sql.db import migrate\n"
        "from runhistory_sql.db.engine import make_engine\n"
        f"assert runhistory_sql.__file__.startswith({str(site)!r}), runhistory_sql.__file__\n"
        "e = make_engine(sys.argv[1]); migrate.ensure_schema(e)\n"
        "print(migrate.current_revision(e), migrate.drift(e)); e.dispose()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, url], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{HEAD} []"


# -- 9. passwords never reach messages ----------------------------------------------------------


def test_mask_hides_passwords() -> None:
    masked = mask("postgresql+psycopg://u:secret@h/db")
    assert "secret" not in masked
    assert masked == "postgresql+psycopg://u:***@h/db"


def test_mask_hides_a_password_given_as_a_query_parameter() -> None:
    masked = mask("postgresql+psycopg://u@h/db?password=secret&sslmode=require")
    assert "secret" not in masked
    assert masked == "postgresql+psycopg://u@h/db?password=***&sslmode=require"


def test_mask_leaves_urls_without_a_password_alone() -> None:
    assert mask("sqlite:////tmp/runs.db") == "sqlite:////tmp/runs.db"
    assert mask("not a url") == "<unparseable URL>"


def test_mask_hides_all_of_a_password_with_an_unencoded_at_sign() -> None:
    assert mask("postgresql+psycopg://u:pa@ss@w@h:5432/db") == "postgresql+psycopg://u:***@h:5432/db"


def test_a_password_with_an_unencoded_at_sign_is_refused_saying_to_encode_it() -> None:
    from runhistory_sql.errors import DatabaseURLError

    with pytest.raises(DatabaseURLError) as raised:
        make_engine("postgresql://u:pa@ss@h/db")

    assert str(raised.value) == (
        "The user name or password in database URL postgresql://u:***@h/db has an '@' that is not "
        "percent-encoded, so its tail reads as the host. Write each '@' in it as %40 "
        "(e.g. postgresql://user:s3cr%40t@host/dbname)."
    )


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://u:s3cret-pw@h:notaport/db",  # a port that is not a number
    "postgres ql://u:s3cret-pw@h/db",
    "postgres ql://u:s3cret@pw/x@h/db",  # an unencoded "/" and "@" in the password
    "postgres ql://u@h/db?sslmode=require&Password=s3cret-pw",
])
def test_an_unparseable_url_is_refused_without_showing_its_password(url: str) -> None:
    import traceback

    from click.testing import CliRunner

    from runhistory_sql.cli import main
    from runhistory_sql.errors import DatabaseURLError

    with pytest.raises(DatabaseURLError, match="Could not parse database URL") as raised:
        make_engine(url)
    cli = CliRunner().invoke(main, ["db", "current", url])

    said = "".join(traceback.format_exception(raised.value))
    assert "s3cret" not in said and "***" in str(raised.value)
    assert cli.exit_code == 1 and "Could not parse database URL" in cli.output
    assert "s3cret" not in cli.output
    assert mask(url) == "<unparseable URL>"
