"""Store a point's time as milliseconds since its run was created, not since 1970.

An offset fits in 3 or 4 bytes where an absolute time takes 6, which keeps SQLite at about 31
bytes per point. ``v_metrics.recorded_at`` is unchanged for users: the view adds the run's
``created_at`` back. Existing points are converted.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""
from __future__ import annotations

from typing import Sequence, Union

from alembic import op

revision: str = "0004"
down_revision: Union[str, None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_TIME = {
    "sqlite": "strftime('%Y-%m-%dT%H:%M:%fZ', ({0}) / 1000.0, 'unixepoch')",
    "postgresql": "to_timestamp(({0}) / 1000.0)",
}
_VALUE = {
    "sqlite": "p.value",
    "postgresql": (
        "CASE p.special WHEN 1 THEN CAST('NaN' AS DOUBLE PRECISION) "
        "WHEN 2 THEN CAST('-0' AS DOUBLE PRECISION) ELSE p.value END"
    ),
}
_RUN_CREATED = "(SELECT r.created_at FROM series s JOIN runs r ON r.id = s.run_id WHERE s.id = points.series_id)"


def _v_metrics(dialect: str, point_time: str) -> str:
    false = "0" if dialect == "sqlite" else "false"
    return f"""
        SELECT r.id AS run_id, r.name AS run_name, e.name AS experiment, st.idx AS stage,
               m.name AS metric, p.seq AS seq, p.epoch AS epoch, {_VALUE[dialect]} AS value,
               p.value_json AS value_json, {_TIME[dialect].format(point_time)} AS recorded_at
        FROM points p
        JOIN series s ON s.id = p.series_id
        JOIN metrics m ON m.id = s.metric_id
        JOIN stages st ON st.id = s.stage_id
        JOIN runs r ON r.id = s.run_id
        JOIN experiments e ON e.id = r.experiment_id
        WHERE p.rev = 0 AND s.deleted = {false}"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW v_metrics")
    op.execute(f"UPDATE points SET recorded_at = recorded_at - {_RUN_CREATED}")
    op.execute(f"CREATE VIEW v_metrics AS {_v_metrics(dialect, 'r.created_at + p.recorded_at')}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW v_metrics")
    op.execute(f"UPDATE points SET recorded_at = recorded_at + {_RUN_CREATED}")
    op.execute(f"CREATE VIEW v_metrics AS {_v_metrics(dialect, 'p.recorded_at')}")
