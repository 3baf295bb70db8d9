"""Block summaries for charts: table ``point_blocks``.

One row per aligned block of 1,024 seqs of each (series, rev): the number of points, the lowest
and the highest numeric value with the smallest seq that has it, and the first seq whose value is
not a number. The dashboard downsamples a long history from these rows instead of scanning its
points. The writer keeps them in the points' transaction; this revision fills them for the
existing points. No view changes: a database made before it reads exactly the same.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: Union[str, None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_BLOCK = 1024


def _seq_of(value: str) -> str:
    return (f"(SELECT MIN(q.seq) FROM points q WHERE q.series_id = g.series_id AND q.rev = g.rev "
            f"AND q.seq >= g.block * {_BLOCK} AND q.seq < (g.block + 1) * {_BLOCK} AND q.value = g.{value})")


_FILL = f"""
    INSERT INTO point_blocks (series_id, rev, block, n, min_value, min_seq, max_value, max_seq, gap_seq)
    SELECT g.series_id, g.rev, g.block, g.n, g.min_value, {_seq_of('min_value')}, g.max_value,
           {_seq_of('max_value')}, g.gap_seq
    FROM (SELECT p.series_id AS series_id, p.rev AS rev, p.seq / {_BLOCK} AS block, COUNT(*) AS n,
                 MIN(p.value) AS min_value, MAX(p.value) AS max_value,
                 MIN(CASE WHEN p.value IS NULL THEN p.seq END) AS gap_seq
          FROM points p GROUP BY p.series_id, p.rev, p.seq / {_BLOCK}) g"""


def upgrade() -> None:
    op.create_table(
        "point_blocks",
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("rev", sa.Integer(), nullable=False),
        sa.Column("block", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("min_value", sa.Float(), nullable=True),
        sa.Column("min_seq", sa.Integer(), nullable=True),
        sa.Column("max_value", sa.Float(), nullable=True),
        sa.Column("max_seq", sa.Integer(), nullable=True),
        sa.Column("gap_seq", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"], name=op.f("fk_point_blocks_series_id_series")),
        sa.PrimaryKeyConstraint("series_id", "rev", "block", name=op.f("pk_point_blocks")),
        sqlite_with_rowid=False,
    )
    op.execute(_FILL)


def downgrade() -> None:
    op.drop_table("point_blocks")
