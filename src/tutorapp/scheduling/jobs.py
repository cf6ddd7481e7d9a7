"""Background functions of scheduling."""

from __future__ import annotations

from datetime import datetime

from tutorapp.core.time import utcnow
from tutorapp.jobs.engine import function, runtime, step
from tutorapp.scheduling import bookings


async def _release_expired_holds() -> int:
    async with runtime.database().unit_of_work() as session:
        return await bookings.release_expired_holds(session, now=utcnow())


@function("booking.release_holds", cron="* * * * *", concurrency=1)
async def release_holds(scheduled_at: datetime) -> int:
    """Every minute: held bookings whose payment did not arrive in time become
    `expired` and free their slot (safe to run twice: it only touches held rows)."""
    return await step("booking.release_expired_holds", _release_expired_holds)
