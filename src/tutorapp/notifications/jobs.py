"""Background functions of notifications: deliver emails, release deferred ones;
and the webhook inbox's handler for Resend (bounces and complaints)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from dbos import DBOS
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.config import Settings
from tutorapp.integrations.email import get_provider
from tutorapp.integrations.email.base import OutgoingEmail
from tutorapp.jobs.queue import enqueue
from tutorapp.jobs.registry import RateLimit, describe_error, function, step
from tutorapp.jobs.runtime import runtime
from tutorapp.notifications import service
from tutorapp.notifications.models import SuppressionReason
from tutorapp.webhooks import service as inbox
from tutorapp.webhooks.models import InboxEvent

# A message younger than this is still being started by the request that stored it.
SWEEP_GRACE = timedelta(seconds=30)
SWEEP_BATCH = 1000


def vendor_rate_limit(settings: Settings) -> RateLimit | None:
    """The outbox needs no rate limit; a vendor gets `TUTORAPP_EMAIL_RATE_LIMIT_PER_SECOND`."""
    if settings.email_provider == "outbox":
        return None
    rate = settings.email_rate_limit_per_second
    return RateLimit(limit=max(1, round(rate)), period=max(1.0, round(rate)) / rate)


async def _claim(message_id: str, run_id: str) -> dict[str, Any]:
    async with runtime.database().unit_of_work() as session:
        return await service.claim_for_delivery(session, runtime.settings, uuid.UUID(message_id),
                                                run_id=run_id)


async def _send(email: dict[str, Any]) -> dict[str, str]:
    provider = get_provider(runtime.settings)
    provider_id = await provider.send(OutgoingEmail(**email))
    return {"provider": provider.name, "id": provider_id}


async def _mark_sent(message_id: str, provider: str, provider_message_id: str) -> None:
    async with runtime.database().unit_of_work() as session:
        await service.mark_sent(session, uuid.UUID(message_id), provider=provider,
                                provider_message_id=provider_message_id)


async def _mark_failed(message_id: str, error: str, counted_on: str | None) -> None:
    async with runtime.database().unit_of_work() as session:
        await service.mark_failed(session, uuid.UUID(message_id), error=error,
                                  counted_on=counted_on)


def delivery_concurrency(settings: Settings) -> int:
    """SQLite takes one writer at a time: more concurrent deliveries only queue on it."""
    return 4 if settings.is_sqlite else 20


@function("email.deliver", concurrency=delivery_concurrency, rate_limit=vendor_rate_limit)
async def deliver(message_id: str) -> str:
    """Deliver one queued EmailMessage through the configured provider. Safe to run
    twice: the message is claimed by this run before the send, so another run skips
    it, and the provider step is checkpointed. A send in flight when the worker died
    is repeated on recovery: Resend dedupes it by the message id, SMTP receivers by
    the Message-ID derived from it."""
    # Database steps retry too: a busy SQLite writer lock or a dropped connection
    # passes; each of them is idempotent.
    claim = await step("email.claim", _claim, message_id, DBOS.workflow_id, retry=True)
    if claim["outcome"] != "send":
        return claim["outcome"]
    try:
        sent = await step("email.send", _send, claim["email"], retry=True)
    except Exception as exc:
        await step("email.record_failure", _mark_failed, message_id, describe_error(exc),
                   claim["day"], retry=True)
        raise
    await step("email.record_sent", _mark_sent, message_id, sent["provider"], sent["id"],
               retry=True)
    return "sent"


async def _start_due() -> int:
    async with runtime.database().session() as session:
        messages = await service.due_messages(session, older_than=SWEEP_GRACE, limit=SWEEP_BATCH)
        keys = [(str(m.id), service.delivery_key(m)) for m in messages]
    for message_id, key in keys:
        await enqueue(service.DELIVER, message_id, key=key)
    return len(keys)


@function("email.sweep", cron="* * * * *", concurrency=1)
async def sweep(scheduled_at: datetime) -> int:
    """Every minute: start delivery of queued messages that are due and not yet
    started: mail deferred past the daily cap (due at midnight), and mail whose
    after-commit start was lost. Enqueueing is keyed, so a running delivery is
    never started twice."""
    return await step("email.start_due", _start_due)


FEEDBACK_EVENTS = {
    "email.bounced": SuppressionReason.bounced,
    "email.complained": SuppressionReason.complained,
}


RESEND = "resend"


@inbox.handler(RESEND)
async def record_feedback(session: AsyncSession, settings: Settings, event: InboxEvent) -> str:
    """A Resend bounce or complaint from the webhook inbox: never mail that address
    again (the inbox counts attempts and dead-letters)."""
    reason = FEEDBACK_EVENTS.get(event.event_name)
    if reason is None:
        return "ignored: not a bounce or complaint"
    data = event.payload.get("data")
    if not isinstance(data, dict):
        raise inbox.Unprocessable("data is not an object")
    recipients = data.get("to") or []
    if isinstance(recipients, str):
        recipients = [recipients]
    added = 0
    for address in recipients:
        added += await service.suppress(session, str(address), reason,
                                        source_event_id=event.dedupe_key)
    return f"suppressed {added}"
