"""Files: buckets, stored objects, signed links, resumable uploads, avatars and lesson
materials, over a storage backend (`integrations.storage`). See docs/storage.md."""

from __future__ import annotations

from fastapi import FastAPI

from tutorapp.config import Settings

# Paths whose uploads are bounded by their bucket's limit, not `max_body_bytes`.
LARGE_BODY_PREFIXES = ("/storage/v1/", "/api/v1/files/", "/app/files/")


def install(app: FastAPI, settings: Settings) -> None:
    """Mount /storage/v1 (Supabase Storage's API, its error shape) and keep the backend
    on `app.state.storage`."""
    from tutorapp.files import storage_api, storage_errors, tus
    from tutorapp.integrations.storage import backend_for

    app.state.storage = backend_for(settings)
    app.include_router(tus.router)
    app.include_router(storage_api.router)
    storage_errors.install(app)
