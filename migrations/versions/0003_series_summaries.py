"""Per-series summaries (effective point count, min and max value) kept by the writer.

Best-of-run queries across thousands of runs read these instead of scanning every point.
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


def downgrade() -> None:
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_column("max_value")
        batch_op.drop_column("min_value")
        batch_op.drop_column("n_points")
