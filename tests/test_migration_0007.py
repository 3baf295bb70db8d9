"""Migration 0007 (points.step, params, v_metrics.step, v_params) carries a real 0006 database
forward on SQLite and PostgreSQL: every view reads the same (v_metrics with a NULL ``step`` at
the end), every row is kept, the run resumes with its exact history and takes steps and params.

The 0006 database is made by the real write path (stages, an epoch rewind, a deleted metric, NaN,
-0.0, infinities, JSON values, configs, events), then taken back to revision 0006 by the
migration's own downgrade, whose schema is checked to be exactly the one 0001-0006 create.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, inspect

from helpers import dump, is_postgres, query, same
from runhistory_sql import RunStore, SQLRunHistory
from runhistory_sql.db import migrate
from runhistory_sql.db.engine import make_engine

VIEWS = {
    "v_runs": "run_id", "v_metrics": "run_id, stage, metric, seq", "v_configs": "run_id, stage, captured_at",
    "v_events": "event_id", "v_summaries": "run_id, stage, metric",
}


def _record(url: str) -> None:
    with SQLRunHistory(url, experiment="exp", run_name="old") as h:
        h.record_config("train", {"num_epochs": 2, "train_dl_kwargs": {"batch_size": 4}})
        for value in (0.5, math.nan, -0.0):
            h.update_metric("loss", value)
        h.update_metric("acc", {"f1": 0.5})
        h.update_metric("gone", 1.0)
        h.delete_metric("gone")
        h._increment_epoch()
        h.update_metric("loss", math.inf)
        h._set_epoch(2)  # supersedes the inf
        h.update_metric("loss", -math.inf)
        h.log_event("checkpoint", path="ckpt/2")
        h.reset()
        h.update_metric("eval_loss", 0.25)


def _schema(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        found = inspect(conn)
        tables = {t: sorted(c["name"] for c in found.get_columns(t)) for t in found.get_table_names()}
        return {"tables": tables, "views": sorted(found.get_view_names())}


def _downgrade_to_0006(engine: Engine) -> None:
    with migrate.migration_lock(engine) as conn:
        command.downgrade(migrate._config(conn), "0006")


def _read_views(url: str) -> dict[str, list[tuple[Any, ...]]]:
    return {view: query(url, f"SELECT * FROM {view} ORDER BY {order}") for view, order in VIEWS.items()}


@pytest.fixture
def fresh_url(url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A second, empty database of the same backend as ``url``."""
    if not is_postgres(url):
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    server = request.getfixturevalue("pg_server")
    name = server.create_database()
    request.addfinalizer(lambda: server.drop_database(name))
    return str(server.url(name))


def test_a_0006_database_reads_the_same_after_the_upgrade(url: str, fresh_url: str) -> None:
    engine = make_engine(url)
    try:
        _record(url)
        _downgrade_to_0006(engine)
        fresh = make_engine(fresh_url)
        migrate.upgrade(fresh, "0006")
        assert (migrate.current_revision(engine), _schema(engine)) == ("0006", _schema(fresh))
        fresh.dispose()
        views, rows = _read_views(url), dump(url, ignore={"runs": ("heartbeat_at", "last_batch")})

        assert migrate.upgrade(engine, "0007") == ("0006", "0007")

        after = _read_views(url)
        assert same(after.pop("v_metrics"), [(*row, None) for row in views.pop("v_metrics")])
        assert same(after, views)
        assert query(url, "SELECT * FROM v_params") == []
        upgraded = dump(url, ignore={"runs": ("heartbeat_at", "last_batch")})
        assert (upgraded.pop("alembic_version"), rows.pop("alembic_version")) == ([("0007",)], [("0006",)])
        assert upgraded.pop("params") == []
        assert same(upgraded.pop("points"), [(*row, None) for row in rows.pop("points")])
        assert same(upgraded, rows)
        assert migrate.current_revision(engine) == "0007"
    finally:
        engine.dispose()


def test_a_run_of_a_0006_database_resumes_and_takes_steps_and_params(url: str) -> None:
    _record(url)
    engine = make_engine(url)
    try:
        _downgrade_to_0006(engine)
        migrate.upgrade(engine)
    finally:
        engine.dispose()

    with SQLRunHistory(url, experiment="exp", run_name="old", resume="must") as h:
        loaded = (h.get_metric_values("eval_loss"), h.last_step, h.params, h.current_epoch)
        h.log_metrics({"eval_loss": 0.125}, step=3)
        h.log_params({"lr": 0.1})
    with RunStore(url) as store:
        first_stage = [(seq, epoch, value) for seq, epoch, value, *_ in store.history("old", "loss", stage=1)]

    assert loaded == ([0.25], None, {}, 1)
    assert same(first_stage, [(0, 1, 0.5), (1, 1, math.nan), (2, 1, -0.0), (3, 2, -math.inf)])
    assert query(url, "SELECT stage, seq, step, value FROM v_metrics WHERE metric = 'eval_loss' ORDER BY seq") == [
        (2, 0, None, 0.25), (2, 1, 3, 0.125)]
    assert query(url, "SELECT key, value_json FROM v_params") == [("lr", "0.1")]
