"""Functions of the jobs engine itself."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from tutorapp.core.time import utcnow
from tutorapp.jobs.models import JobEvent
from tutorapp.jobs.queue import dispatch_event
from tutorapp.jobs.registry import function, step
from tutorapp.jobs.runtime import runtime

# An event younger than this is still being dispatched by the request that emitted it.
DISPATCH_GRACE = timedelta(seconds=30)
DISPATCH_BATCH = 500


async def _dispatch_pending() -> int:
    now = utcnow()
    async with runtime.database().session() as session:
        events = (await session.execute(
            select(JobEvent.name, JobEvent.key, JobEvent.payload)
            .where(JobEvent.dispatched_at.is_(None), JobEvent.created_at < now - DISPATCH_GRACE)
            .order_by(JobEvent.created_at).limit(DISPATCH_BATCH)
        )).all()
    for name, key, payload in events:
        await dispatch_event(name, key, payload)
        async with runtime.database().unit_of_work() as session:
            await session.execute(
                update(JobEvent).where(JobEvent.name == name, JobEvent.key == key)
                .values(dispatched_at=utcnow())
            )
    return len(events)


@function("jobs.dispatch", cron="* * * * *", concurrency=1)
async def dispatch_pending_events(scheduled_at: datetime) -> int:
    """Start the functions of events whose after-commit dispatch never happened
    (the process died between commit and enqueue)."""
    return await step("jobs.dispatch_pending", _dispatch_pending)
