"""Background functions of the accounts domain."""

from __future__ import annotations

from datetime import datetime

from tutorapp.accounts import sessions
from tutorapp.jobs.registry import function, step
from tutorapp.jobs.runtime import runtime


async def _purge() -> dict[str, int]:
    async with runtime.database().unit_of_work() as session:
        return await sessions.purge_expired(session)


@function("accounts.purge_expired", cron="17 3 * * *", concurrency=1)
async def purge_expired_credentials(scheduled_at: datetime) -> dict[str, int]:
    """Daily: delete expired one-time tokens and sessions past their lifetime."""
    return await step("accounts.delete_expired", _purge)
