"""Functions of the jobs engine itself, and maintenance of other domains' tables
that have no `jobs` module of their own yet."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from tutorapp.core.time import utcnow
from tutorapp.jobs.engine import dispatch_event, function, runtime, step
from tutorapp.jobs.models import JobEvent

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


async def _purge_expired_credentials() -> dict[str, int]:
    from tutorapp.accounts.models import AuthSession, OneTimeToken

    now = utcnow()
    async with runtime.database().unit_of_work() as session:
        tokens = await session.execute(delete(OneTimeToken).where(OneTimeToken.expires_at < now))
        sessions = await session.execute(delete(AuthSession).where(AuthSession.expires_at < now))
    return {"one_time_tokens": tokens.rowcount, "auth_sessions": sessions.rowcount}


@function("accounts.purge_expired", cron="17 3 * * *", concurrency=1)
async def purge_expired_credentials(scheduled_at: datetime) -> dict[str, int]:
    """Daily: delete expired one-time tokens and auth sessions past their lifetime
    (their refresh tokens go with them: ON DELETE CASCADE)."""
    return await step("accounts.delete_expired", _purge_expired_credentials)
