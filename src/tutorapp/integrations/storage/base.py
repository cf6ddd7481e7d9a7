"""What a file storage backend does: store, stream out, copy, delete and list bytes
under keys the files domain generates. Bodies move as async iterators of chunks,
so no backend ever holds a whole file in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

CHUNK_BYTES = 256 * 1024


class StorageUnavailable(Exception):
    """The backend cannot be reached or refused the operation for a transient reason."""


class ObjectMissing(Exception):
    """No bytes under this key (deleted behind our back, or never written)."""


@dataclass(frozen=True)
class Stored:
    size: int
    etag: str  # a strong validator of the bytes (sha256 hex)


class StorageBackend(Protocol):
    name: str

    async def put(self, key: str, chunks: AsyncIterator[bytes], *, content_type: str,
                  content_disposition: str | None = None) -> Stored:
        """Store the chunks under `key`, atomically: a failure leaves no partial object."""
        ...

    def get(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes `[start, end)` (to the end when `end` is None)."""
        ...

    async def copy(self, source: str, destination: str) -> None: ...

    async def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""
        ...

    def keys(self, prefix: str) -> AsyncIterator[str]:
        """Every key under `prefix` (for the orphan sweep)."""
        ...

    async def presign_get(self, key: str, expires_in: timedelta) -> str | None:
        """A URL that serves `key` directly until it expires, or None when this backend
        has none (local disk: the app serves the bytes behind its own HMAC token)."""
        ...
