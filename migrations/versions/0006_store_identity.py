"""``store_info``: one row naming the database by a uuid, made when the schema is created.

A spill file records it (and its run's ``runs.uuid``), so that ``import-spill`` refuses a file
written for another database instead of applying it to whichever run has the same integer id.
A database upgraded from 0005 gets its uuid here.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from __future__ import annotations

import time
import uuid
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    store_info = op.create_table(
        "store_info",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_info")),
        sa.UniqueConstraint("uuid", name=op.f("uq_store_info_uuid")),
    )
    op.bulk_insert(store_info, [{"id": 1, "uuid": str(uuid.uuid4()), "created_at": int(time.time() * 1000)}])


def downgrade() -> None:
    op.drop_table("store_info")
