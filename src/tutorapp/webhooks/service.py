"""The inbox's rules: store once, apply with attempts and backoff, dead-letter, retry.

`store` inserts a verified delivery under (provider, dedupe key); a redelivery
conflicts and is not stored again. `process` applies one event through the
handler its provider registered (`handler("lemonsqueezy")`). A handler returns
a short outcome; it raises `Unprocessable` for an event that can never be
applied (dead at once), `Deferred` for one that must wait (an invoice before its
subscription), and any other error is a failed attempt. A failed or deferred
attempt is retried after an exponential backoff (30 s, 1 min, 2 min ... capped at
an hour); after `TUTORAPP_WEBHOOK_MAX_ATTEMPTS` attempts the event is dead: the
back office shows it with its last error and a retry button.

Every attempt runs in the caller's transaction; the handler's writes run in a
savepoint, so a failed attempt keeps nothing but its attempt count and error.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.config import Settings
from tutorapp.core.audit import record
from tutorapp.core.db import insert_for, rows_changed
from tutorapp.core.errors import Conflict, NotFound
from tutorapp.core.fields import storable, storable_json
from tutorapp.core.time import utcnow
from tutorapp.webhooks.models import InboxEvent, InboxStatus

log = logging.getLogger("tutorapp.webhooks")
PROCESS = "webhooks.process"
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
OVERDUE = timedelta(minutes=5)

Handler = Callable[[AsyncSession, Settings, InboxEvent], Awaitable[str]]
HANDLERS: dict[str, Handler] = {}


class Unprocessable(Exception):
    """The event can never be applied as it is (a malformed payload): dead at once."""


class Deferred(Exception):
    """The event must wait for another one (counts as an attempt, without an error)."""


def handler(provider: str) -> Callable[[Handler], Handler]:
    """Register the function that applies `provider`'s events."""

    def register(function: Handler) -> Handler:
        HANDLERS[provider] = function
        return function

    return register


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt (1-based)."""
    return min(BACKOFF_BASE * 2 ** max(0, attempts - 1), BACKOFF_CAP)


def _clip(value: object, length: int) -> str:
    """Outside text for a VARCHAR column: no NUL (PostgreSQL refuses it), cut to fit."""
    return storable(str(value), length)


def run_key(event: InboxEvent) -> str:
    """The job key of the event's next attempt: one run per attempt."""
    return f"{event.id}:{event.attempts}"


async def store(session: AsyncSession, *, provider: str, dedupe_key: str, event_name: str,
                resource_type: str, resource_id: str, payload: dict[str, Any]
                ) -> tuple[uuid.UUID, bool]:
    """Insert the event unless we have it: (its id, whether it is new). A new event
    is started after commit (and by the sweep if that start is lost)."""
    event_id, now = uuid.uuid4(), utcnow()
    key = _clip(dedupe_key, 300)
    result = await session.execute(
        insert_for(session, InboxEvent).values(
            id=event_id, provider=provider, dedupe_key=key, event_name=_clip(event_name, 64),
            resource_type=_clip(resource_type, 40), resource_id=_clip(resource_id, 64),
            payload=storable_json(payload), status=InboxStatus.pending, attempts=0,
            next_attempt_at=now,
            created_at=now, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["provider", "dedupe_key"])
    )
    if rows_changed(result) == 1:
        from tutorapp.jobs.queue import enqueue_after_commit

        enqueue_after_commit(session, PROCESS, str(event_id), key=f"{event_id}:0")
        return event_id, True
    existing = (await session.scalars(select(InboxEvent.id).where(
        InboxEvent.provider == provider, InboxEvent.dedupe_key == key))).one()
    return existing, False


async def known(session: AsyncSession, provider: str, dedupe_key: str) -> bool:
    return await session.scalar(select(InboxEvent.id).where(
        InboxEvent.provider == provider, InboxEvent.dedupe_key == _clip(dedupe_key, 300))
    ) is not None


async def process(session: AsyncSession, settings: Settings, event_id: uuid.UUID, *,
                  now: datetime | None = None) -> str:
    """One attempt at one event; a processed or dead event is skipped (safe to run twice)."""
    event = await session.get(InboxEvent, event_id, with_for_update=True, populate_existing=True)
    if event is None:
        return "missing"
    if event.status != InboxStatus.pending:
        return f"skip: {event.status}"
    now = now or utcnow()
    apply = HANDLERS.get(event.provider)
    event.attempts += 1
    error: str | None = None
    try:
        if apply is None:
            raise Unprocessable(f"no handler for provider {event.provider}")
        async with session.begin_nested():
            outcome = await apply(session, settings, event)
    except Unprocessable as exc:
        return await _dead(session, event, f"unprocessable: {exc}", now)
    except Deferred as exc:
        outcome, error = "deferred", f"deferred: {exc}"
    except Exception as exc:  # any failure is one attempt, retried later
        log.exception("webhook %s (%s %s) attempt %s failed", event.id, event.provider,
                      event.event_name, event.attempts)
        outcome, error = "failed", f"{type(exc).__name__}: {exc}"
    if error is None:
        event.status, event.processed_at, event.next_attempt_at = (
            InboxStatus.processed, now, None)
        event.outcome = _clip(outcome, 200)
        await session.flush()
        return outcome
    event.last_error = _clip(error, 1000)
    if event.attempts >= settings.webhook_max_attempts:
        return await _dead(session, event, error, now)
    event.next_attempt_at = now + backoff(event.attempts)
    await session.flush()
    from tutorapp.jobs.queue import enqueue_after_commit

    enqueue_after_commit(session, PROCESS, str(event.id), key=run_key(event),
                         at=event.next_attempt_at)
    return outcome


async def wake(session: AsyncSession, *, provider: str, resource_type: str) -> int:
    """What deferred events of this kind waited for has arrived: their next attempt
    is due now instead of after their backoff (events being applied are skipped)."""
    now = utcnow()
    waiting = list(await session.scalars(
        select(InboxEvent).where(InboxEvent.provider == provider,
                                 InboxEvent.resource_type == resource_type,
                                 InboxEvent.status == InboxStatus.pending,
                                 InboxEvent.last_error.like("deferred:%"),
                                 InboxEvent.next_attempt_at > now)
        .with_for_update(skip_locked=True)))
    from tutorapp.jobs.queue import enqueue_after_commit

    for event in waiting:
        event.next_attempt_at = now
        enqueue_after_commit(session, PROCESS, str(event.id), key=f"{run_key(event)}:wake")
    await session.flush()
    return len(waiting)


async def _dead(session: AsyncSession, event: InboxEvent, error: str, now: datetime) -> str:
    event.status, event.next_attempt_at = InboxStatus.dead, None
    event.last_error = _clip(error, 1000)
    event.outcome = _clip(f"dead after {event.attempts} attempts", 200)
    await session.flush()
    await record(session, "webhook.dead_lettered", subject_type="webhook_event",
                 subject_id=event.id, provider=event.provider, event_name=event.event_name,
                 attempts=event.attempts, error=event.last_error)
    log.error("webhook %s (%s %s) dead-lettered: %s", event.id, event.provider,
              event.event_name, error)
    return "dead"


async def due(session: AsyncSession, *, now: datetime | None = None, limit: int = 500
              ) -> list[tuple[uuid.UUID, str]]:
    """Pending events whose attempt is due, oldest first: (id, job key) for the sweep.

    The key is the attempt's own, so a run already started is not started twice;
    an attempt overdue by `OVERDUE` had its run die without recording anything (a
    database outage rolled it back), so it gets a key of this minute."""
    now = now or utcnow()
    rows = await session.execute(
        select(InboxEvent.id, InboxEvent.attempts, InboxEvent.next_attempt_at)
        .where(InboxEvent.status == InboxStatus.pending, InboxEvent.next_attempt_at <= now)
        .order_by(InboxEvent.created_at, InboxEvent.id).limit(limit)
    )
    minute = int(now.timestamp()) // 60
    return [(event_id, f"{event_id}:{attempts}" if at is not None and at > now - OVERDUE
             else f"{event_id}:{attempts}:overdue:{minute}")
            for event_id, attempts, at in rows.all()]


async def retry(session: AsyncSession, event_id: uuid.UUID, *, actor_id: uuid.UUID) -> InboxEvent:
    """An admin sends a dead (or waiting) event round again: a fresh set of attempts."""
    event = await session.get(InboxEvent, event_id, with_for_update=True, populate_existing=True)
    if event is None:
        raise NotFound("No such webhook event.")
    if event.status == InboxStatus.processed:
        raise Conflict("This webhook event was applied already.")
    before = str(event.status)
    event.status, event.attempts, event.next_attempt_at = InboxStatus.pending, 0, utcnow()
    await session.flush()
    await record(session, "webhook.retried", subject_type="webhook_event", subject_id=event.id,
                 actor_id=actor_id, before=before, last_error=event.last_error)
    from tutorapp.jobs.queue import enqueue_after_commit

    # a key of its own: the earlier runs of attempt 0 are done
    enqueue_after_commit(session, PROCESS, str(event.id), key=f"{event.id}:retry:{uuid.uuid4()}")
    return event


async def listing(session: AsyncSession, *, status: InboxStatus | None = None,
                  failing: bool = False, limit: int = 100) -> list[InboxEvent]:
    """Events for the back office, newest first; `failing`: dead or with an error."""
    query = select(InboxEvent).order_by(InboxEvent.created_at.desc(), InboxEvent.id).limit(limit)
    if status is not None:
        query = query.where(InboxEvent.status == status)
    if failing:
        query = query.where(InboxEvent.status != InboxStatus.processed,
                            InboxEvent.last_error.is_not(None))
    return list(await session.scalars(query))
