"""The buckets TutorApp starts with (migration 0008 inserts them; admins may change
the rows). Kept as plain values: a migration must not import models."""

from __future__ import annotations

from typing import Any

MB = 1024 * 1024
IMAGES = ["image/jpeg", "image/png", "image/webp", "image/gif"]
DOCUMENTS = [
    "application/pdf",
    "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
]
AUDIO = ["audio/mpeg", "audio/ogg", "audio/wav", "audio/mp4", "audio/webm", "audio/flac"]

AVATARS, MATERIALS, ATTACHMENTS, EXPORTS = "avatars", "materials", "attachments", "exports"

DEFAULT_BUCKETS: list[dict[str, Any]] = [
    {"id": AVATARS, "public": True, "file_size_limit": 2 * MB, "allowed_mime_types": IMAGES,
     "expires_after_days": None},
    {"id": MATERIALS, "public": False, "file_size_limit": 25 * MB,
     "allowed_mime_types": [*DOCUMENTS, *IMAGES, *AUDIO], "expires_after_days": None},
    # Message attachments: messaging does not exist yet. `files.service.attach_to_message`
    # is the hook it will call (same access rule as materials, by conversation).
    {"id": ATTACHMENTS, "public": False, "file_size_limit": 10 * MB,
     "allowed_mime_types": [*DOCUMENTS, *IMAGES, *AUDIO], "expires_after_days": None},
    {"id": EXPORTS, "public": False, "file_size_limit": 512 * MB,
     "allowed_mime_types": ["application/zip", "application/json"], "expires_after_days": 7},
]
