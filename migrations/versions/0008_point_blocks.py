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
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_CARRY_GRANTS)


# A role granted on the tables before this release (the README's least-privilege writer, a
# `db create-reader` role) holds nothing on the tables and views made since (GRANT ... ON ALL
# TABLES covers only the tables of its day): without this, after the upgrade every write of such
# a role fails on params or point_blocks. Each role gets here what it holds on `points`: on the
# new tables the same privileges, a writer (INSERT) also DELETE on the derived point_blocks (a
# rewind recomputes them) and the use of params' id sequence, and every reader SELECT on v_params.
_CARRY_GRANTS = """
DO $$
DECLARE g record;
BEGIN
  FOR g IN
    SELECT DISTINCT r.rolname AS role, a.privilege_type AS privilege
    FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee
    WHERE c.oid = 'points'::regclass AND a.grantee <> c.relowner
      AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE')
  LOOP
    EXECUTE format('GRANT %s ON params, point_blocks TO %I', g.privilege, g.role);
    IF g.privilege = 'SELECT' THEN
      EXECUTE format('GRANT SELECT ON v_params TO %I', g.role);
    ELSIF g.privilege = 'INSERT' THEN
      EXECUTE format('GRANT DELETE ON point_blocks TO %I', g.role);
      EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO %I', pg_get_serial_sequence('params', 'id'), g.role);
    END IF;
  END LOOP;
END $$"""


def downgrade() -> None:
    op.drop_table("point_blocks")
