"""Buckets, stored objects and resumable (TUS) uploads.

A stored object has two names: `name`, the path its owner chose (Supabase Storage's
object name, e.g. `<user id>/avatar.png`), which is only ever data; and `key`, the
backend location the server generates (`<bucket>/<uuid>`), so no user input becomes
a path on disk or in S3."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tutorapp.core.models import Base, Entity, JSONDocument
from tutorapp.core.time import utcnow


class StorageBucket(Base):
    """A bucket's rules, as data: who may read it, how big and of which types its
    objects may be, and when they expire."""

    __tablename__ = "storage_buckets"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    file_size_limit: Mapped[int | None] = mapped_column(BigInteger)
    allowed_mime_types: Mapped[list[str] | None] = mapped_column(JSONDocument())
    expires_after_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StoredObject(Entity):
    __tablename__ = "storage_objects"
    __table_args__ = (
        UniqueConstraint("bucket_id", "name"),
        Index("ix_storage_objects_owner_id", "owner_id"),
        Index("ix_storage_objects_booking_id", "booking_id"),
    )

    bucket_id: Mapped[str] = mapped_column(ForeignKey("storage_buckets.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(1024))
    # SET NULL, not CASCADE: a deleted user's rows must outlive them until their bytes
    # are gone (files.service deletes both; the orphan sweep catches the rest).
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    booking_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("bookings.id", ondelete="SET NULL"))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mime_type: Mapped[str] = mapped_column(String(127))
    etag: Mapped[str] = mapped_column(String(64))
    cache_control: Mapped[str] = mapped_column(String(100), default="max-age=3600")
    variants: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())
    user_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())
    expires_at: Mapped[datetime | None]


class ResumableUpload(Entity):
    """A TUS upload in progress: its bytes so far live in backend objects (`part_keys`,
    in order, under `uploads/<id>/`), joined into the object when the last byte arrives."""

    __tablename__ = "storage_uploads"

    bucket_id: Mapped[str] = mapped_column(ForeignKey("storage_buckets.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(1024))
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                                index=True)
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    part_keys: Mapped[list[str]] = mapped_column(JSONDocument(), default=list)
    upsert: Mapped[bool] = mapped_column(Boolean, default=False)
    cache_control: Mapped[str] = mapped_column(String(100), default="max-age=3600")
    expires_at: Mapped[datetime]
