"""Goal 2 on PostgreSQL: sustained ingest beside raw psycopg ``executemany`` (and COPY, for reference).

``--pg-start`` starts a throwaway server as the tests do (``tests/pg_server.py``); ``--pg-url``
uses a database you give, inside a fresh schema that is dropped at the end.
"""
from __future__ import annotations

import contextlib
import importlib.util
import secrets
import sys
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy.engine import make_url

from .common import Context, Row, log, loss_curve, point_rows, ratio_goal, reference, skipped, timed
from .batches import mixed_rates
from .ingest import ingest

ROWS = {
    "2b": "ingest on PostgreSQL: update_metric + flush",
    "2c": "  (ref) PostgreSQL raw COPY",
    "2f": "ingest of a float beside an int (PostgreSQL)",
}
DDL = """
CREATE TABLE bench_points (
    series_id INTEGER NOT NULL, rev INTEGER NOT NULL, seq INTEGER NOT NULL,
    epoch INTEGER NOT NULL, value DOUBLE PRECISION, special SMALLINT, value_json TEXT,
    recorded_at BIGINT NOT NULL, step BIGINT,
    PRIMARY KEY (series_id, rev, seq)
)"""
COLUMNS = "series_id, rev, seq, epoch, value, special, value_json, recorded_at, step"
INSERT = f"INSERT INTO bench_points ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"


def conninfo(url: str) -> str:
    """The libpq connection string of a SQLAlchemy URL (``options`` and other query keys kept)."""
    from psycopg.conninfo import make_conninfo

    u = make_url(url)
    parts = dict(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database, **u.query)
    return make_conninfo(**{k: str(v) for k, v in parts.items() if v is not None})


def _pg_server_module() -> Any:
    path = Path(__file__).resolve().parents[1] / "tests" / "pg_server.py"
    spec = importlib.util.spec_from_file_location("_bench_pg_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def database(pg_url: str | None, pg_start: bool) -> Iterator[tuple[tuple[str, str] | None, str]]:
    """Yield ((SQLAlchemy URL, conninfo) or None, why there is none) for the run's PostgreSQL."""
    if pg_start:
        pg = _pg_server_module()
        bin_dir = pg.find_binaries()
        if bin_dir is None:
            yield None, "--pg-start: PostgreSQL server binaries (initdb, pg_ctl) not found"
            return
        server = pg.PostgresServer.start(bin_dir)
        try:
            url = server.url(server.create_database())
            yield (url, conninfo(url)), ""
        finally:
            server.stop()
    elif pg_url:
        import psycopg

        schema = f"rhsql_bench_{secrets.token_hex(4)}"
        admin = conninfo(pg_url)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        url = make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
        url_text = url.render_as_string(hide_password=False)
        try:
            yield (url_text, conninfo(url_text)), ""
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
    else:
        yield None, "no PostgreSQL: pass --pg-url URL or --pg-start"


def _raw(info: str, rows: list[tuple[Any, ...]], copy: bool) -> float:
    """Seconds to load ``rows`` in one transaction with executemany, or with COPY."""
    import psycopg

    with psycopg.connect(info) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_points")
        conn.execute(DDL)
        conn.commit()

        def work() -> None:
            with conn.cursor() as cur:
                if copy:
                    with cur.copy(f"COPY bench_points ({COLUMNS}) FROM STDIN") as out:
                        for row in rows:
                            out.write_row(row)
                else:
                    cur.executemany(INSERT, rows)
            conn.commit()

        seconds, _ = timed(work)
        conn.execute("DROP TABLE bench_points")
        conn.commit()
    return seconds


def run(ctx: Context) -> list[Row]:
    if ctx.pg is None:
        return [skipped(key, label, ctx.pg_missing) for key, label in ROWS.items()]
    url, info = ctx.pg
    n = ctx.sizes.points
    values = loss_curve(n)
    rows = point_rows(values)
    ours, many, copy = [], [], []
    for rep in range(ctx.sizes.reps):
        log(f"ingest PostgreSQL {rep + 1}/{ctx.sizes.reps}: {n:,} points, executemany, COPY, update_metric")
        many.append(_raw(info, rows, copy=False))
        copy.append(_raw(info, rows, copy=True))
        ours.append(ingest(url, f"pg-ingest-{rep}-{secrets.token_hex(3)}", values))
    rate = n / min(ours)
    note = f"{n:,} points, best of {len(ours)}"
    mixed, floats, mixed_note = mixed_rates(ctx, lambda _: url, "PostgreSQL")
    return [
        ratio_goal("2b", ROWS["2b"], rate, "psycopg executemany, 1 txn", n / min(many), "pts/s", at_least=1.0,
                   note=note),
        reference("2c", ROWS["2c"], rate, "psycopg COPY, 1 txn", n / min(copy), "pts/s", note=note),
        ratio_goal("2f", ROWS["2f"], mixed, "the same with a float step", floats, "pts/s", at_least=0.67,
                   note=mixed_note),
    ]
