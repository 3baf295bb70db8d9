"""Per-point steps and per-run hyperparameters: ``points.step``, table ``params``, views
``v_metrics.step`` (appended) and ``v_params``.

``points.step`` is NULL for every existing point and for the Trainer's points
(``update_metric``: the Trainer has no per-point step, its x axis is the epoch); points logged
with ``SQLRunHistory.log_metrics(values, step)`` (and so ``SQLTracker``) carry their step.
``params`` holds one row per logged change of a run's hyperparameter, never overwritten;
``v_params.is_current`` marks the latest row of each (run, key). A database made before this
revision reads exactly as before: ``v_metrics`` keeps its columns in their order (``step`` is
added at the end) and ``v_params`` is empty.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: Union[str, None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_TIME = {
    "sqlite": "strftime('%Y-%m-%dT%H:%M:%fZ', ({0}) / 1000.0, 'unixepoch')",
    "postgresql": "to_timestamp(({0}) / 1000.0)",
}
# 0005's value expressions: SQLite gives -0.0 back from the `special` marker, PostgreSQL NaN too
_VALUE = {
    "sqlite": "CASE p.special WHEN 2 THEN -0.0 ELSE p.value END",
    "postgresql": (
        "CASE p.special WHEN 1 THEN CAST('NaN' AS DOUBLE PRECISION) "
        "WHEN 2 THEN CAST('-0' AS DOUBLE PRECISION) ELSE p.value END"
    ),
}


def _v_metrics(dialect: str, with_step: bool) -> str:
    false = "0" if dialect == "sqlite" else "false"
    return f"""
        SELECT r.id AS run_id, r.name AS run_name, e.name AS experiment, st.idx AS stage,
               m.name AS metric, p.seq AS seq, p.epoch AS epoch, {_VALUE[dialect]} AS value,
               p.value_json AS value_json,
               {_TIME[dialect].format('r.created_at + p.recorded_at')} AS recorded_at
               {', p.step AS step' if with_step else ''}
        FROM points p
        JOIN series s ON s.id = p.series_id
        JOIN metrics m ON m.id = s.metric_id
        JOIN stages st ON st.id = s.stage_id
        JOIN runs r ON r.id = s.run_id
        JOIN experiments e ON e.id = r.experiment_id
        WHERE p.rev = 0 AND s.deleted = {false}"""


def _v_params(dialect: str) -> str:
    # the latest row of a (run, key) is the current value: ids grow in the order rows were written
    return f"""
        SELECT p.run_id AS run_id, r.name AS run_name, e.name AS experiment, p.key AS key,
               p.value AS value, p.value_text AS value_text, p.value_json AS value_json,
               {_TIME[dialect].format('p.recorded_at')} AS recorded_at,
               (p.id = (SELECT MAX(q.id) FROM params q WHERE q.run_id = p.run_id AND q.key = p.key))
                   AS is_current
        FROM params p
        JOIN runs r ON r.id = p.run_id
        JOIN experiments e ON e.id = r.experiment_id"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW v_metrics")
    op.add_column("points", sa.Column("step", sa.BigInteger(), nullable=True))
    op.execute(f"CREATE VIEW v_metrics AS {_v_metrics(dialect, with_step=True)}")
    op.create_table(
        "params",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("value_text", sa.Text(), nullable=True),
        sa.Column("value_json", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_params_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_params")),
    )
    op.create_index(op.f("ix_params_run_id_key"), "params", ["run_id", "key"], unique=False)
    op.create_index(op.f("ix_params_key_value"), "params", ["key", "value"], unique=False)
    op.execute(f"CREATE VIEW v_params AS {_v_params(dialect)}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW v_params")
    op.drop_index(op.f("ix_params_key_value"), table_name="params")
    op.drop_index(op.f("ix_params_run_id_key"), table_name="params")
    op.drop_table("params")
    op.execute("DROP VIEW v_metrics")
    # Not batch mode on SQLite (it would copy "points"): SQLite >= 3.35 drops the column in place
    op.execute("ALTER TABLE points DROP COLUMN step")
    op.execute(f"CREATE VIEW v_metrics AS {_v_metrics(dialect, with_step=False)}")
