"""``v_events`` gains ``event_id`` (the order events happened in, also within one millisecond);
``v_metrics`` shows -0.0 with its sign on SQLite too.

Both views keep their columns; ``event_id`` is added at the end, as the view contract allows.
SQLite still has no NaN: ``v_metrics.value`` is NULL for it there (``RunStore`` and the export
read the points and are exact).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""
from __future__ import annotations

from typing import Sequence, Union

from alembic import op

revision: str = "0005"
down_revision: Union[str, None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_TIME = {
    "sqlite": "strftime('%Y-%m-%dT%H:%M:%fZ', ({0}) / 1000.0, 'unixepoch')",
    "postgresql": "to_timestamp(({0}) / 1000.0)",
}
# 0004's values, and this revision's: a REAL -0.0 is stored as 0 by SQLite, but an expression
# keeps its sign, so the view can give it back from the `special` marker.
_VALUE = {
    "0004": {"sqlite": "p.value"},
    "0005": {"sqlite": "CASE p.special WHEN 2 THEN -0.0 ELSE p.value END"},
}
_PG_VALUE = (
    "CASE p.special WHEN 1 THEN CAST('NaN' AS DOUBLE PRECISION) "
    "WHEN 2 THEN CAST('-0' AS DOUBLE PRECISION) ELSE p.value END"
)


def _v_metrics(dialect: str, revision: str) -> str:
    value = _PG_VALUE if dialect == "postgresql" else _VALUE[revision]["sqlite"]
    false = "0" if dialect == "sqlite" else "false"
    return f"""
        SELECT r.id AS run_id, r.name AS run_name, e.name AS experiment, st.idx AS stage,
               m.name AS metric, p.seq AS seq, p.epoch AS epoch, {value} AS value,
               p.value_json AS value_json,
               {_TIME[dialect].format('r.created_at + p.recorded_at')} AS recorded_at
        FROM points p
        JOIN series s ON s.id = p.series_id
        JOIN metrics m ON m.id = s.metric_id
        JOIN stages st ON st.id = s.stage_id
        JOIN runs r ON r.id = s.run_id
        JOIN experiments e ON e.id = r.experiment_id
        WHERE p.rev = 0 AND s.deleted = {false}"""


def _v_events(dialect: str, with_id: bool) -> str:
    return f"""
        SELECT ev.run_id AS run_id, st.idx AS stage, ev.epoch AS epoch, ev.kind AS kind,
               {_TIME[dialect].format('ev.recorded_at')} AS recorded_at, ev.payload AS payload
               {', ev.id AS event_id' if with_id else ''}
        FROM events ev LEFT JOIN stages st ON st.id = ev.stage_id"""


def _replace(revision: str) -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW v_metrics")
    op.execute(f"CREATE VIEW v_metrics AS {_v_metrics(dialect, revision)}")
    op.execute("DROP VIEW v_events")
    op.execute(f"CREATE VIEW v_events AS {_v_events(dialect, with_id=revision == '0005')}")


def upgrade() -> None:
    _replace("0005")


def downgrade() -> None:
    _replace("0004")
