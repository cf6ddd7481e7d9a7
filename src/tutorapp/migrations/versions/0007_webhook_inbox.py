"""One webhook inbox for every provider, with attempts, backoff and dead letters.

`webhook_inbox` replaces `billing_webhook_events` (its rows are copied over:
processed ones as processed, the rest pending and due now). Checkouts keep the
custom data they were sent with, for the reconciliation job.

Revision ID: 0007
Revises: 0006 (email delivery claims)
Create Date: 2026-12-02 01:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tutorapp.core.models

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('webhook_inbox',
    sa.Column('provider', sa.String(length=24), nullable=False),
    sa.Column('dedupe_key', sa.String(length=300), nullable=False),
    sa.Column('event_name', sa.String(length=64), nullable=False),
    sa.Column('resource_type', sa.String(length=40), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('payload', tutorapp.core.models.JSONDocument(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'processed', 'dead', name='inboxstatus', native_enum=False, length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=1000), nullable=True),
    sa.Column('processed_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=200), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_inbox')),
    sa.UniqueConstraint('provider', 'dedupe_key', name=op.f('uq_webhook_inbox_provider_dedupe_key'))
    )
    with op.batch_alter_table('webhook_inbox', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_inbox_due', ['status', 'next_attempt_at'], unique=False)
    op.execute(
        "INSERT INTO webhook_inbox (id, provider, dedupe_key, event_name, resource_type,"
        " resource_id, payload, status, attempts, next_attempt_at, last_error, processed_at,"
        " outcome, created_at, updated_at)"
        " SELECT id, 'lemonsqueezy', dedupe_key, event_name, resource_type, resource_id, payload,"
        " CASE WHEN processed_at IS NULL THEN 'pending' ELSE 'processed' END,"
        " 0, CASE WHEN processed_at IS NULL THEN created_at ELSE NULL END, NULL, processed_at,"
        " outcome, created_at, updated_at FROM billing_webhook_events"
    )
    with op.batch_alter_table('billing_webhook_events', schema=None) as batch_op:
        batch_op.drop_index('ix_billing_webhook_events_pending')
    op.drop_table('billing_webhook_events')
    with op.batch_alter_table('billing_checkouts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('custom', tutorapp.core.models.JSONDocument(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('billing_checkouts', schema=None) as batch_op:
        batch_op.drop_column('custom')
    op.create_table('billing_webhook_events',
    sa.Column('dedupe_key', sa.String(length=300), nullable=False),
    sa.Column('event_name', sa.String(length=64), nullable=False),
    sa.Column('resource_type', sa.String(length=40), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('payload', tutorapp.core.models.JSONDocument(), nullable=False),
    sa.Column('processed_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=200), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_webhook_events')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_billing_webhook_events_dedupe_key'))
    )
    with op.batch_alter_table('billing_webhook_events', schema=None) as batch_op:
        batch_op.create_index('ix_billing_webhook_events_pending', ['processed_at', 'created_at'], unique=False)
    op.execute(
        "INSERT INTO billing_webhook_events (id, dedupe_key, event_name, resource_type,"
        " resource_id, payload, processed_at, outcome, created_at, updated_at)"
        " SELECT id, dedupe_key, event_name, resource_type, resource_id, payload, processed_at,"
        " outcome, created_at, updated_at FROM webhook_inbox WHERE provider = 'lemonsqueezy'"
    )
    with op.batch_alter_table('webhook_inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_inbox_due')
    op.drop_table('webhook_inbox')
