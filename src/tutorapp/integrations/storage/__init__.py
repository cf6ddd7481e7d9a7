"""File storage backends: local disk (default) or S3, chosen by `TUTORAPP_STORAGE_URL`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from tutorapp.config import Settings
from tutorapp.integrations.storage.base import (
    ObjectMissing,
    StorageBackend,
    StorageUnavailable,
    Stored,
)

__all__ = ["ObjectMissing", "StorageBackend", "StorageUnavailable", "Stored", "backend_for"]


def backend_for(settings: Settings) -> StorageBackend:
    location = settings.storage_location
    if location.startswith("s3://"):
        from tutorapp.integrations.storage.s3 import S3Storage

        return S3Storage(settings)
    from tutorapp.integrations.storage.local import LocalStorage

    return LocalStorage(Path(unquote(urlsplit(location).path)))
