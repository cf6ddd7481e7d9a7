"""JSON shapes of /api/v1's file routes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class FileOut(BaseModel):
    id: uuid.UUID
    bucket: str
    name: str
    filename: str
    size: int
    mime_type: str
    booking_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime | None
    download_url: str


class BucketUsage(BaseModel):
    bucket: str
    public: bool
    file_size_limit: int | None
    objects: int
    bytes: int
    metered_bytes: int


class StorageUsage(BaseModel):
    buckets: list[BucketUsage]
    total_bytes: int
    total_quota_bytes: int
    user_quota_bytes: int
