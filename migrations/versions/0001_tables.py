"""Tables: experiments, runs, stages, metrics, series, points, configs, events.

Revision ID: 0001
Revises: 
Create Date: 2026-11-30
"""
from __future__ import annotations

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0001'
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('experiments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_experiments')),
    sa.UniqueConstraint('name', name=op.f('uq_experiments_name'))
    )
    op.create_table('metrics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metrics')),
    sa.UniqueConstraint('name', name=op.f('uq_metrics_name'))
    )
    op.create_table('runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('ended_at', sa.BigInteger(), nullable=True),
    sa.Column('heartbeat_at', sa.BigInteger(), nullable=True),
    sa.Column('stale_after_ms', sa.Integer(), server_default='60000', nullable=False),
    sa.Column('last_batch', sa.BigInteger(), nullable=True),
    sa.Column('current_stage', sa.Integer(), nullable=False),
    sa.Column('current_epoch', sa.Integer(), nullable=False),
    sa.Column('rewinds', sa.Integer(), server_default='0', nullable=False),
    sa.Column('host', sa.Text(), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('tags', sa.Text(), server_default='{}', nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_runs_experiment_id_experiments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs')),
    sa.UniqueConstraint('experiment_id', 'name', name=op.f('uq_runs_experiment_id_name')),
    sa.UniqueConstraint('uuid', name=op.f('uq_runs_uuid'))
    )
    op.create_table('stages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_stages_run_id_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stages')),
    sa.UniqueConstraint('run_id', 'idx', name=op.f('uq_stages_run_id_idx'))
    )
    op.create_table('configs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('captured_at', sa.BigInteger(), nullable=False),
    sa.Column('num_epochs', sa.Integer(), nullable=True),
    sa.Column('train_per_device_batch_size', sa.Integer(), nullable=True),
    sa.Column('train_dl_kwargs', sa.Text(), nullable=True),
    sa.Column('eval_per_device_batch_size', sa.Integer(), nullable=True),
    sa.Column('eval_dl_kwargs', sa.Text(), nullable=True),
    sa.Column('gradient_accumulation_steps', sa.Integer(), nullable=True),
    sa.Column('gradient_clip_value', sa.Float(), nullable=True),
    sa.Column('train_total_batch_size', sa.Integer(), nullable=True),
    sa.Column('eval_total_batch_size', sa.Integer(), nullable=True),
    sa.Column('num_update_steps_per_epoch', sa.Integer(), nullable=True),
    sa.Column('num_local_update_steps_per_epoch', sa.Integer(), nullable=True),
    sa.Column('max_num_train_steps', sa.Integer(), nullable=True),
    sa.Column('is_local_process_zero', sa.Boolean(), nullable=True),
    sa.Column('is_world_process_zero', sa.Boolean(), nullable=True),
    sa.Column('is_distributed', sa.Boolean(), nullable=True),
    sa.Column('mixed_precision', sa.Text(), nullable=True),
    sa.Column('num_processes', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_configs_run_id_runs')),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], name=op.f('fk_configs_stage_id_stages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_configs'))
    )
    with op.batch_alter_table('configs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_configs_run_id'), ['run_id'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=True),
    sa.Column('epoch', sa.Integer(), nullable=True),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('recorded_at', sa.BigInteger(), nullable=False),
    sa.Column('payload', sa.Text(), server_default='{}', nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_events_run_id_runs')),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], name=op.f('fk_events_stage_id_stages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_run_id_kind'), ['run_id', 'kind'], unique=False)

    op.create_table('series',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('metric_id', sa.Integer(), nullable=False),
    sa.Column('deleted', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.ForeignKeyConstraint(['metric_id'], ['metrics.id'], name=op.f('fk_series_metric_id_metrics')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_series_run_id_runs')),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], name=op.f('fk_series_stage_id_stages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_series'))
    )
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_series_metric_id_run_id'), ['metric_id', 'run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_series_run_id_metric_id'), ['run_id', 'metric_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_series_stage_id'), ['stage_id'], unique=False)

    op.create_table('points',
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('rev', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('special', sa.SmallInteger(), nullable=True),
    sa.Column('value_json', sa.Text(), nullable=True),
    sa.Column('recorded_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['series_id'], ['series.id'], name=op.f('fk_points_series_id_series')),
    sa.PrimaryKeyConstraint('series_id', 'rev', 'seq', name=op.f('pk_points')),
    sqlite_with_rowid=False
    )


def downgrade() -> None:
    op.drop_table('points')
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_series_stage_id'))
        batch_op.drop_index(batch_op.f('ix_series_run_id_metric_id'))
        batch_op.drop_index(batch_op.f('ix_series_metric_id_run_id'))

    op.drop_table('series')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_run_id_kind'))

    op.drop_table('events')
    with op.batch_alter_table('configs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_configs_run_id'))

    op.drop_table('configs')
    op.drop_table('stages')
    op.drop_table('runs')
    op.drop_table('metrics')
    op.drop_table('experiments')
