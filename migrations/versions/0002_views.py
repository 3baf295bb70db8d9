"""The documented views v_runs, v_metrics, v_configs and v_events.

Their columns are a promise to users (tests pin them). A migration that changes them must
recreate them with the same columns, plus new ones at the end at most.

Timestamps are stored as integer milliseconds (UTC) and rendered here: ISO 8601 text ending in
``Z`` on SQLite, ``timestamptz`` on PostgreSQL. A run whose status is ``running`` but whose
heartbeat is older than its ``stale_after_ms`` (60 s by default) reads as ``crashed``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""
from __future__ import annotations

from typing import Sequence, Union

from alembic import op

revision: str = "0002"
down_revision: Union[str, None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_TIME = {
    "sqlite": "strftime('%Y-%m-%dT%H:%M:%fZ', {0} / 1000.0, 'unixepoch')",
    "postgresql": "to_timestamp({0} / 1000.0)",
}
_NOW_MS = {
    "sqlite": "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    "postgresql": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
}
# SQLite has no NaN and stores a REAL -0.0 as 0; PostgreSQL has both, so it shows them.
_VALUE = {
    "sqlite": "p.value",
    "postgresql": (
        "CASE p.special WHEN 1 THEN CAST('NaN' AS DOUBLE PRECISION) "
        "WHEN 2 THEN CAST('-0' AS DOUBLE PRECISION) ELSE p.value END"
    ),
}
_CONFIG_FIELDS = (
    "num_epochs, c.train_per_device_batch_size, c.train_dl_kwargs, c.eval_per_device_batch_size, "
    "c.eval_dl_kwargs, c.gradient_accumulation_steps, c.gradient_clip_value, "
    "c.train_total_batch_size, c.eval_total_batch_size, c.num_update_steps_per_epoch, "
    "c.num_local_update_steps_per_epoch, c.max_num_train_steps, c.is_local_process_zero, "
    "c.is_world_process_zero, c.is_distributed, c.mixed_precision, c.num_processes"
)


def _views(dialect: str) -> dict[str, str]:
    def t(column: str) -> str:
        return _TIME[dialect].format(column)

    return {
        "v_runs": f"""
            SELECT r.id AS run_id, r.uuid AS run_uuid, e.name AS experiment, r.name AS run_name,
                   CASE WHEN r.status = 'running'
                         AND COALESCE(r.heartbeat_at, r.created_at) < {_NOW_MS[dialect]} - r.stale_after_ms
                        THEN 'crashed' ELSE r.status END AS status,
                   {t('r.created_at')} AS created_at, {t('r.ended_at')} AS ended_at,
                   r.current_epoch AS current_epoch,
                   (SELECT COUNT(*) FROM stages s WHERE s.run_id = r.id) AS num_stages,
                   r.host AS host, r.tags AS tags
            FROM runs r JOIN experiments e ON e.id = r.experiment_id""",
        "v_metrics": f"""
            SELECT r.id AS run_id, r.name AS run_name, e.name AS experiment, st.idx AS stage,
                   m.name AS metric, p.seq AS seq, p.epoch AS epoch, {_VALUE[dialect]} AS value,
                   p.value_json AS value_json, {t('p.recorded_at')} AS recorded_at
            FROM points p
            JOIN series s ON s.id = p.series_id
            JOIN metrics m ON m.id = s.metric_id
            JOIN stages st ON st.id = s.stage_id
            JOIN runs r ON r.id = s.run_id
            JOIN experiments e ON e.id = r.experiment_id
            WHERE p.rev = 0 AND s.deleted = {'0' if dialect == 'sqlite' else 'false'}""",
        "v_configs": f"""
            SELECT c.run_id AS run_id, st.idx AS stage, {t('c.captured_at')} AS captured_at,
                   c.kind AS kind, c.{_CONFIG_FIELDS}
            FROM configs c JOIN stages st ON st.id = c.stage_id""",
        "v_events": f"""
            SELECT ev.run_id AS run_id, st.idx AS stage, ev.epoch AS epoch, ev.kind AS kind,
                   {t('ev.recorded_at')} AS recorded_at, ev.payload AS payload
            FROM events ev LEFT JOIN stages st ON st.id = ev.stage_id""",
    }


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect not in _TIME:
        raise NotImplementedError(f"runhistory-sql supports sqlite and postgresql, not {dialect}")
    for name, select in _views(dialect).items():
        op.execute(f"CREATE VIEW {name} AS {select}")


def downgrade() -> None:
    for name in ("v_events", "v_configs", "v_metrics", "v_runs"):
        op.execute(f"DROP VIEW IF EXISTS {name}")
