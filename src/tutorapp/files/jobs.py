"""The files domain's background function: the orphan sweep (the one module of this
domain that imports the jobs API)."""

from __future__ import annotations

from datetime import datetime

from tutorapp.files import service
from tutorapp.integrations.storage import backend_for
from tutorapp.jobs.registry import function, step
from tutorapp.jobs.runtime import runtime


async def _sweep() -> int:
    async with runtime.database().unit_of_work() as session:
        return await service.orphans(session, backend_for(runtime.settings))


@function("files.sweep", cron="17 * * * *", concurrency=1)
async def sweep(scheduled_at: datetime) -> int:
    """Hourly: delete expired objects (GDPR exports after 7 days), deleted users'
    objects, stale resumable uploads, and bytes no row names (safe to run twice)."""
    return await step("files.sweep_orphans", _sweep)
