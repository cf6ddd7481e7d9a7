"""The realtime event log (PostgreSQL broker: LISTEN/NOTIFY fan-out and replay).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 12:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tutorapp.core.models

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('realtime_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
              nullable=False),
    sa.Column('topic', sa.String(length=255), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_realtime_events'))
    )
    op.create_index('ix_realtime_events_topic_seq', 'realtime_events', ['topic', 'seq'],
                    unique=True)


def downgrade() -> None:
    op.drop_index('ix_realtime_events_topic_seq', table_name='realtime_events')
    op.drop_table('realtime_events')
