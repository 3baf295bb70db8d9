"""Per-series summaries (effective point count, min and max value) kept by the writer.

Best-of-run queries across thousands of runs read these instead of scanning every point; the
view ``v_summaries`` shows them (run_id, run_name, experiment, stage, metric, n_points,
min_value, max_value).
Existing series are backfilled from their effective points.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


# One row per metric of each stage of each run: the fast way to rank runs in SQL.
V_SUMMARIES = """
    SELECT r.id AS run_id, r.name AS run_name, e.name AS experiment, st.idx AS stage,
           m.name AS metric, s.n_points AS n_points, s.min_value AS min_value, s.max_value AS max_value
    FROM series s
    JOIN metrics m ON m.id = s.metric_id
    JOIN stages st ON st.id = s.stage_id
    JOIN runs r ON r.id = s.run_id
    JOIN experiments e ON e.id = r.experiment_id
    WHERE s.deleted = {false} AND s.n_points > 0"""


def upgrade() -> None:
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.add_column(sa.Column("n_points", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("min_value", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("max_value", sa.Float(), nullable=True))
    effective = "FROM points p WHERE p.series_id = series.id AND p.rev = 0"
    op.execute(
        f"UPDATE series SET n_points = (SELECT COUNT(*) {effective}), "
        f"min_value = (SELECT MIN(p.value) {effective}), max_value = (SELECT MAX(p.value) {effective})"
    )
    false = "0" if op.get_bind().dialect.name == "sqlite" else "false"
    op.execute(f"CREATE VIEW v_summaries AS {V_SUMMARIES.format(false=false)}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_summaries")
    if op.get_bind().dialect.name == "sqlite":
        # Not batch mode: SQLite would copy the table and rename the copy to "series", which
        # fails on the views that name "series" and, with data, on the points -> series foreign
        # key (the DROP of the old table). SQLite >= 3.35 drops an unreferenced column in place.
        for name in ("max_value", "min_value", "n_points"):
            op.execute(f"ALTER TABLE series DROP COLUMN {name}")
        return
    op.drop_column("series", "max_value")
    op.drop_column("series", "min_value")
    op.drop_column("series", "n_points")
