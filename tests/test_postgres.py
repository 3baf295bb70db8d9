"""What only PostgreSQL has: native NaN and -0.0 in v_metrics, timestamptz, a bounded pool,
the bare ``postgresql://`` URL, the advisory migration lock, and passwords (masked everywhere).

Everything runs against the real server the session starts (``pg_server``); storage semantics
shared with SQLite are tested on both backends in test_history.py and test_schema.py.
"""
from __future__ import annotations

import json
import logging
import math
import secrets
import threading
import time
import traceback
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import numpy as np
import psycopg
import pytest
import torch
from click.testing import CliRunner
from sqlalchemy.pool import QueuePool

from helpers import query, same
from pg_server import PostgresServer
from runhistory_sql import SchemaVersionError, SQLRunHistory
from runhistory_sql.db import migrate
from runhistory_sql.cli import main
from runhistory_sql.db.engine import make_engine

# -- values -----------------------------------------------------------------------------------

UNICODE_NAME = "λoss/ünïcødé 🚀 'q' \"dq\" '; DROP TABLE points; --"
VALUES = [
    ("nan", math.nan),
    ("pos_inf", math.inf),
    ("neg_inf", -math.inf),
    ("neg_zero", -0.0),
    ("zero", 0.0),
    ("tenth_plus_fifth", 0.1 + 0.2),  # exact bits, not 0.3
    ("max", 1.7976931348623157e308),
    ("subnormal", 5e-324),
    ("np_float32", np.float32(0.1)),
    ("tensor_neg_zero", torch.tensor(-0.0)),
    ("tensor_nan", torch.tensor(math.nan)),
    ("json", {"f1": 0.5, "labels": ["ä", "日本"], "none": None, "nested": {"x": [1, 2.5]}}),
    ("list", [1, "two", None]),
    ("text", "it's \"quoted\" ✓"),
    ("none", None),
    ("huge_int", 10**400),
    (UNICODE_NAME, 1.25),
]


def read_back(value: Any) -> Any:
    """What the mirror rebuilt from the database holds for ``value``."""
    if isinstance(value, (np.floating, torch.Tensor)):
        return float(value)
    return value


def test_values_and_unicode_names_round_trip_through_the_mirror_rebuild(pg_url: str) -> None:
    with SQLRunHistory(pg_url, experiment="ëxp ✓", run_name="välues 🚀") as h:
        for name, value in VALUES:
            h.update_metric(name, value)

    with SQLRunHistory(pg_url, experiment="ëxp ✓", run_name="välues 🚀", resume="must") as resumed:
        got = {name: resumed.get_metric_values(name) for name in resumed.get_metric_names()}

    assert same(got, {name: [read_back(value)] for name, value in VALUES})
    assert math.copysign(1.0, got["neg_zero"][0]) == math.copysign(1.0, got["tensor_neg_zero"][0]) == -1.0


def test_values_read_from_v_metrics_with_plain_psycopg(pg_url: str) -> None:
    # what a user of psql, pandas or a BI tool sees: NaN and -0.0 natively, JSON as text
    with SQLRunHistory(pg_url, experiment="ëxp ✓", run_name="välues 🚀") as h:
        for name, value in VALUES:
            h.update_metric(name, value)

    libpq_url = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq_url) as conn:
        in_view = {
            metric: (value, value_json, experiment, run_name)
            for metric, value, value_json, experiment, run_name in conn.execute(
                "SELECT metric, value, value_json, experiment, run_name FROM v_metrics"
            )
        }
        value_type = conn.execute("SELECT pg_typeof(value)::text FROM v_metrics LIMIT 1").fetchone()

    def numeric(x: float) -> tuple[Any, ...]:
        return (x, None, "ëxp ✓", "välues 🚀")

    def as_json(text: str) -> tuple[Any, ...]:
        return (None, text, "ëxp ✓", "välues 🚀")

    assert value_type == ("double precision",)
    assert same(in_view, {
        "nan": numeric(math.nan),
        "pos_inf": numeric(math.inf),
        "neg_inf": numeric(-math.inf),
        "neg_zero": numeric(-0.0),
        "zero": numeric(0.0),
        "tenth_plus_fifth": numeric(0.30000000000000004),
        "max": numeric(1.7976931348623157e308),
        "subnormal": numeric(5e-324),
        "np_float32": numeric(float(np.float32(0.1))),
        "tensor_neg_zero": numeric(-0.0),
        "tensor_nan": numeric(math.nan),
        "json": as_json('{"f1": 0.5, "labels": ["ä", "日本"], "none": null, "nested": {"x": [1, 2.5]}}'),
        "list": as_json('[1, "two", null]'),
        "text": as_json('"it\'s \\"quoted\\" ✓"'),
        "none": as_json("null"),
        "huge_int": as_json("1" + "0" * 400),
        UNICODE_NAME: numeric(1.25),
    })
    assert json.loads(in_view["json"][1]) == dict(VALUES)["json"]
    # SQL sees the real values too: NaN sorts above every number in PostgreSQL
    assert query(pg_url, "SELECT metric FROM v_metrics WHERE value = 'NaN'::float8 ORDER BY metric") == [
        ("nan",), ("tensor_nan",),
    ]
    assert query(pg_url, "SELECT COUNT(*) FROM v_metrics WHERE value = '-Infinity'::float8") == [(1,)]


def test_view_timestamps_are_utc_timestamptz(pg_url: str) -> None:
    before = datetime.now(timezone.utc)
    with SQLRunHistory(pg_url, run_name="clock") as h:
        h.update_metric("loss", 1.0)
        h.log_event("checkpoint", path="/tmp/x")
    after = datetime.now(timezone.utc)

    [(created, ended)] = query(pg_url, "SELECT created_at, ended_at FROM v_runs")
    [(recorded,)] = query(pg_url, "SELECT recorded_at FROM v_metrics")
    stamps = [created, ended, recorded] + [r for (r,) in query(pg_url, "SELECT recorded_at FROM v_events")]
    types = query(pg_url, "SELECT pg_typeof(created_at)::text, pg_typeof(ended_at)::text FROM v_runs")

    assert types == [("timestamp with time zone", "timestamp with time zone")]
    slack = timedelta(seconds=1)  # the server's and this process's clocks are the same machine's
    for stamp in stamps:
        assert isinstance(stamp, datetime) and stamp.utcoffset() is not None, stamp
        assert before - slack <= stamp <= after + slack, (stamp, before, after)
    assert created <= recorded <= ended


# -- the pool ---------------------------------------------------------------------------------


def _count_connections(admin_dsn: str, database: str) -> int:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s", (database,)).fetchone()
        assert row is not None
        return int(row[0])


class ConnectionSampler:
    """Counts, from its own admin connection (to another database), how many connections the
    server has open to ``database``, as often as it can, in a background thread."""

    def __init__(self, server: PostgresServer, database: str) -> None:
        self.dsn = f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres"
        self.database = database
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                # the statistics snapshot is per transaction; autocommit makes each one fresh
                row = conn.execute(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s", (self.database,)
                ).fetchone()
                assert row is not None
                self.samples.append(int(row[0]))
                time.sleep(0.002)

    def __enter__(self) -> "ConnectionSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_the_engine_pool_is_one_connection_plus_one_overflow(pg_url: str) -> None:
    with SQLRunHistory(pg_url, run_name="pool") as h:
        pool = h._engine.pool

        assert isinstance(pool, QueuePool)
        # QueuePool has no public accessor for max_overflow; size() is public
        assert (pool.size(), pool._max_overflow) == (1, 1)
        assert (pool._pre_ping, pool._recycle) == (True, 1800)


def test_a_third_connection_waits_for_one_of_the_two(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        first, second = engine.connect(), engine.connect()
        third: list[Any] = []
        waiter = threading.Thread(target=lambda: third.append(engine.connect()), daemon=True)
        waiter.start()
        waiter.join(0.5)
        waited = waiter.is_alive()

        first.close()
        waiter.join(10)

        assert waited, "a third connection was opened beyond pool_size + max_overflow"
        assert len(third) == 1 and engine.pool.checkedout() == 2
        third[0].close()
        second.close()
    finally:
        engine.dispose()


def test_a_training_loop_holds_at_most_two_connections(pg_url: str, pg_server: PostgresServer) -> None:
    database = pg_url.rsplit("/", 1)[1]

    with ConnectionSampler(pg_server, database) as sampler:
        h = SQLRunHistory(pg_url, run_name="train", flush_interval=0.05, heartbeat_interval=0.1)
        try:
            for epoch in range(15):
                for step in range(40):
                    h.update_metric("train_loss", 1.0 / (epoch * 40 + step + 1))
                h.set_metric_name_prefix("eval_")
                h.update_metric("loss", 0.5)
                h.set_metric_name_prefix("")
                h.log_event("checkpoint", epoch=epoch)
                h._increment_epoch()  # waits for the commit: the writer's connection is busy
                time.sleep(0.03)  # an idle moment: flushes on the interval, and heartbeats
                if epoch == 7:
                    h._set_epoch(6)  # a resume-like rewind
                    h.reset()
        finally:
            h.close()
        during = list(sampler.samples)

    assert len(during) > 10, "the sampler did not run during the loop"
    assert 1 <= max(during) <= 2, sorted(set(during))
    deadline = time.monotonic() + 10
    while _count_connections(sampler.dsn, database) and time.monotonic() < deadline:
        time.sleep(0.05)  # a backend ends just after its client disconnects
    assert _count_connections(sampler.dsn, database) == 0, "close() left connections open"


# -- URLs ---------------------------------------------------------------------------------------


def test_postgresql_url_without_a_driver_uses_psycopg(pg_url: str) -> None:
    bare = pg_url.replace("postgresql+psycopg://", "postgresql://")
    assert bare.startswith("postgresql://")

    engine = make_engine(bare)
    try:
        driver = (engine.dialect.name, engine.dialect.driver)
    finally:
        engine.dispose()
    with SQLRunHistory(bare, run_name="bare") as h:
        h.update_metric("loss", -0.0)
        shown = h.url

    assert driver == ("postgresql", "psycopg")
    assert shown == pg_url
    assert same(query(pg_url, "SELECT run_name, value FROM v_metrics"), [("bare", -0.0)])


def test_a_postgres_url_is_postgresql_as_most_tools_take_it(pg_url: str) -> None:
    alias = pg_url.replace("postgresql+psycopg://", "postgres://")

    with SQLRunHistory(alias, run_name="alias") as h:
        h.update_metric("loss", 0.5)
        shown = h.url
    listed = CliRunner().invoke(main, ["runs", "--url", alias, "--format", "csv"])

    assert shown == pg_url
    assert same(query(pg_url, "SELECT run_name, value FROM v_metrics"), [("alias", 0.5)])
    assert (listed.exit_code, listed.output.splitlines()[1].split(",")[:4]) == (0, ["1", "default", "alias", "finished"])


# -- the migration lock ---------------------------------------------------------------------------


def test_ensure_schema_waits_for_the_advisory_migration_lock(pg_url: str) -> None:
    # the 8-process race in test_schema.py shows the outcome; this shows the mechanism
    holder, waiter = make_engine(pg_url), make_engine(pg_url)
    done = threading.Event()
    errors: list[BaseException] = []

    def create() -> None:
        try:
            migrate.ensure_schema(waiter)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)
        finally:
            done.set()

    here = "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    try:
        with migrate.migration_lock(holder) as conn:
            locks = conn.exec_driver_sql(
                f"SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND {here}"
            ).scalar()
            thread = threading.Thread(target=create, daemon=True)
            thread.start()
            waiting, deadline = 0, time.monotonic() + 30
            while not waiting and not done.is_set() and time.monotonic() < deadline:
                time.sleep(0.02)
                waiting = conn.exec_driver_sql(
                    f"SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND {here}"
                ).scalar()
            time.sleep(0.2)
            blocked = not done.is_set()
        thread.join(30)

        assert locks == 1
        assert waiting == 1 and blocked, "ensure_schema did not wait for the migration lock"
        assert done.is_set() and errors == []
        assert migrate.current_revision(holder) == migrate.head_revision()
    finally:
        holder.dispose()
        waiter.dispose()


# -- passwords ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def password_role(pg_server: PostgresServer) -> Iterator[tuple[str, str]]:
    """A login role that must give its password (scram-sha-256): the session's server trusts
    everyone else, so the role gets its own first line in pg_hba.conf for this module."""
    role, password = f"rh_pw_{secrets.token_hex(4)}", f"Pa55-{secrets.token_hex(8)}"
    pg_server.admin(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    hba = pg_server.root / "data" / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{original}")  # keeps the owner
    try:
        pg_server.admin("SELECT pg_reload_conf()")
        dsn = f"host=127.0.0.1 port={pg_server.port} dbname=postgres user={role} password=wrong"
        deadline = time.monotonic() + 10
        while True:  # the reload is asynchronous: wait until the server asks for the password
            try:
                psycopg.connect(dsn).close()
            except psycopg.OperationalError:
                break
            assert time.monotonic() < deadline, "pg_hba.conf was not reloaded"
            time.sleep(0.05)
        yield role, password
    finally:
        hba.write_text(original)
        pg_server.admin("SELECT pg_reload_conf()")
        pg_server.admin(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def role_database(pg_server: PostgresServer, password_role: tuple[str, str]) -> Iterator[str]:
    """A fresh database owned by the password role; yields its name."""
    name = pg_server.create_database()
    pg_server.admin(f'ALTER DATABASE "{name}" OWNER TO {password_role[0]}')
    yield name
    pg_server.drop_database(name)


def _everything_said(error: BaseException) -> str:
    """The error, its chain and the formatted traceback: all a user or a log could see."""
    return "\n".join([str(error), repr(error), "".join(traceback.format_exception(error))])


def test_a_password_never_shows_in_repr_or_url(
    pg_server: PostgresServer, password_role: tuple[str, str], role_database: str,
) -> None:
    role, password = password_role
    url = pg_server.url(role_database, user=role, password=password)

    with SQLRunHistory(url, run_name="secret") as h:
        h.update_metric("loss", 1.0)
        shown = (repr(h), h.url, str(h))

    assert query(url, "SELECT run_name, value FROM v_metrics") == [("secret", 1.0)]
    for text in shown:
        assert password not in text
        assert f"{role}:***@" in text, text


def test_a_password_given_as_a_query_parameter_is_masked_too(
    pg_server: PostgresServer, password_role: tuple[str, str], role_database: str,
) -> None:
    role, password = password_role
    url = f"{pg_server.url(role_database, user=role)}?password={password}"

    with SQLRunHistory(url, run_name="secret") as h:
        shown = (repr(h), h.url)

    for text in shown:
        assert password not in text and "password=***" in text, text


@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_a_wrong_password_fails_without_showing_it(
    pg_server: PostgresServer, password_role: tuple[str, str], role_database: str, form: str,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    role, password = password_role
    wrong = f"Wr0ng-{secrets.token_hex(8)}"
    caplog.set_level(logging.DEBUG)
    if form == "userinfo":
        url = pg_server.url(role_database, user=role, password=wrong)
    else:
        url = f"{pg_server.url(role_database, user=role)}?password={wrong}"

    with pytest.raises(Exception) as raised:
        SQLRunHistory(url, run_name="r")

    said = _everything_said(raised.value) + caplog.text + "".join(capsys.readouterr())
    assert "password authentication failed" in said
    assert wrong not in said and password not in said


def test_schema_errors_show_the_url_masked(
    pg_server: PostgresServer, password_role: tuple[str, str], role_database: str,
) -> None:
    role, password = password_role
    url = pg_server.url(role_database, user=role, password=password)
    engine = make_engine(url)
    try:
        migrate.upgrade(engine, "0001")
        [problem] = migrate.check(engine)
    finally:
        engine.dispose()

    with pytest.raises(SchemaVersionError) as raised:
        SQLRunHistory(url)

    for text in (_everything_said(raised.value), problem):
        assert password not in text
        assert f"runhistory-sql db upgrade postgresql+psycopg://{role}:***@" in text, text


@pytest.mark.parametrize("command", [["db", "upgrade"], ["db", "current"], ["db", "check"]])
def test_cli_output_masks_the_password(
    pg_server: PostgresServer, password_role: tuple[str, str], role_database: str,
    command: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    role, password = password_role
    url = pg_server.url(role_database, user=role, password=password)
    if command != ["db", "upgrade"]:
        assert CliRunner().invoke(main, ["db", "upgrade", url]).exit_code == 0

    as_argument = CliRunner().invoke(main, [*command, url])
    monkeypatch.setenv("RUNHISTORY_SQL_URL", url)
    from_environment = CliRunner().invoke(main, command)

    for result in (as_argument, from_environment):
        assert result.exit_code == 0, result.output
        assert password not in result.output
        assert f"postgresql+psycopg://{role}:***@127.0.0.1:{pg_server.port}/{role_database}" in result.output


@pytest.mark.parametrize("command", [["db", "upgrade"], ["db", "current"], ["db", "check"]])
def test_cli_error_for_a_wrong_password_does_not_show_it(
    pg_server: PostgresServer, password_role: tuple[str, str], role_database: str, command: list[str],
) -> None:
    role, password = password_role
    wrong = f"Wr0ng-{secrets.token_hex(8)}"

    result = CliRunner().invoke(main, [*command, pg_server.url(role_database, user=role, password=wrong)])

    assert result.exit_code == 1
    assert "password authentication failed" in result.output
    assert wrong not in result.output and password not in result.output
    assert "Traceback" not in result.output
