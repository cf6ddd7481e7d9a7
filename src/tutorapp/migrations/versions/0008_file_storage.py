"""File storage: buckets as data, stored objects, resumable (TUS) uploads.

The four buckets of issue 11 are rows (docs/storage.md): their limits and allowed
types can be changed by an admin without a deploy.

Revision ID: 0008
Revises: 0007 (webhook inbox)
Create Date: 2026-12-03 11:01:25
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import tutorapp.core.models
from tutorapp.files.buckets import DEFAULT_BUCKETS

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('storage_buckets',
    sa.Column('id', sa.String(length=63), nullable=False),
    sa.Column('public', sa.Boolean(), nullable=False),
    sa.Column('file_size_limit', sa.BigInteger(), nullable=True),
    sa.Column('allowed_mime_types', tutorapp.core.models.JSONDocument(), nullable=True),
    sa.Column('expires_after_days', sa.Integer(), nullable=True),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_storage_buckets'))
    )
    op.create_table('storage_uploads',
    sa.Column('bucket_id', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=1024), nullable=False),
    sa.Column('owner_id', sa.Uuid(), nullable=False),
    sa.Column('length', sa.BigInteger(), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('part_keys', tutorapp.core.models.JSONDocument(), nullable=False),
    sa.Column('upsert', sa.Boolean(), nullable=False),
    sa.Column('cache_control', sa.String(length=100), nullable=False),
    sa.Column('expires_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['bucket_id'], ['storage_buckets.id'], name=op.f('fk_storage_uploads_bucket_id_storage_buckets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_storage_uploads_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_storage_uploads'))
    )
    with op.batch_alter_table('storage_uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_storage_uploads_owner_id'), ['owner_id'], unique=False)

    op.create_table('storage_objects',
    sa.Column('bucket_id', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=1024), nullable=False),
    sa.Column('owner_id', sa.Uuid(), nullable=True),
    sa.Column('booking_id', sa.Uuid(), nullable=True),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('mime_type', sa.String(length=127), nullable=False),
    sa.Column('etag', sa.String(length=64), nullable=False),
    sa.Column('cache_control', sa.String(length=100), nullable=False),
    sa.Column('variants', tutorapp.core.models.JSONDocument(), nullable=True),
    sa.Column('user_metadata', tutorapp.core.models.JSONDocument(), nullable=True),
    sa.Column('expires_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_storage_objects_booking_id_bookings'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['bucket_id'], ['storage_buckets.id'], name=op.f('fk_storage_objects_bucket_id_storage_buckets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_storage_objects_owner_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_storage_objects')),
    sa.UniqueConstraint('bucket_id', 'name', name=op.f('uq_storage_objects_bucket_id_name')),
    sa.UniqueConstraint('key', name=op.f('uq_storage_objects_key'))
    )
    with op.batch_alter_table('storage_objects', schema=None) as batch_op:
        batch_op.create_index('ix_storage_objects_booking_id', ['booking_id'], unique=False)
        batch_op.create_index('ix_storage_objects_owner_id', ['owner_id'], unique=False)

    now = datetime.now(UTC)
    op.bulk_insert(sa.table(
        'storage_buckets', sa.column('id', sa.String()), sa.column('public', sa.Boolean()),
        sa.column('file_size_limit', sa.BigInteger()),
        sa.column('allowed_mime_types', tutorapp.core.models.JSONDocument()),
        sa.column('expires_after_days', sa.Integer()),
        sa.column('created_at', tutorapp.core.models.UTCDateTime(timezone=True)),
        sa.column('updated_at', tutorapp.core.models.UTCDateTime(timezone=True)),
    ), [{**bucket, 'created_at': now, 'updated_at': now} for bucket in DEFAULT_BUCKETS])


def downgrade() -> None:
    with op.batch_alter_table('storage_objects', schema=None) as batch_op:
        batch_op.drop_index('ix_storage_objects_owner_id')
        batch_op.drop_index('ix_storage_objects_booking_id')

    op.drop_table('storage_objects')
    with op.batch_alter_table('storage_uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_storage_uploads_owner_id'))

    op.drop_table('storage_uploads')
    op.drop_table('storage_buckets')
