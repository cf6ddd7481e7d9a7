"""Emails are rendered and stored in the same transaction as the change that causes
them (a transactional outbox); delivery happens after commit, never on rollback.

`enqueue_email` stores the message and, once the caller's transaction commits,
starts the durable `email.deliver` function for it. Delivery (in `jobs.py`) claims
the message, respects the suppression list and the daily cap, hands it to the
configured provider and records the outcome.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.config import Settings
from tutorapp.core.db import insert_for, rows_changed
from tutorapp.core.templating import TEMPLATES_DIR
from tutorapp.core.time import utcnow
from tutorapp.jobs.queue import enqueue_after_commit
from tutorapp.metering import service as usage
from tutorapp.notifications.models import (
    EmailMessage,
    EmailStatus,
    EmailSuppression,
    SuppressionReason,
)

DELIVER = "email.deliver"
DEFAULT_LOCALE = "en"


@cache
def email_environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR / "emails"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def subject_template_names(template: str, locale: str | None) -> list[str]:
    """`welcome.subject.pt-BR.txt`, then `welcome.subject.pt.txt`, then the English
    `welcome.subject.txt`: a translation is one file next to the English subject."""
    names = []
    if locale:
        locale = locale.replace("_", "-")
        names.append(f"{template}.subject.{locale}.txt")
        language = locale.split("-")[0].lower()
        if language != locale:
            names.append(f"{template}.subject.{language}.txt")
    names.append(f"{template}.subject.txt")
    return names


def render_email(
    template: str, context: dict[str, Any], locale: str | None = None
) -> tuple[str, str, str]:
    """(subject, html, text) of `emails/<template>.{subject.txt,html,txt}`; the
    subject in the recipient's locale when a translation exists."""
    env = email_environment()
    subject_template = env.select_template(subject_template_names(template, locale))
    subject = subject_template.render(context).strip()
    html = env.get_template(f"{template}.html").render(context, subject=subject)
    text = env.get_template(f"{template}.txt").render(context, subject=subject)
    return subject, html, text


def delivery_key(message: EmailMessage) -> str:
    """One delivery run per message and due time: a message deferred to tomorrow
    gets a new run then, a repeated enqueue of the same due time is a no-op."""
    due = message.send_after
    return f"{message.id}:{int(due.timestamp()) if due else 0}"


async def enqueue_email(
    session: AsyncSession,
    *,
    to: str,
    template: str,
    context: dict[str, Any],
    user_id: uuid.UUID | None = None,
    attachments: list[dict[str, Any]] | None = None,
    locale: str | None = None,
    send_after: datetime | None = None,
) -> EmailMessage:
    """Store the email with the caller's transaction; it is delivered after commit.

    `locale` (the recipient's) picks the subject's language (default English).
    `send_after` holds it until then.
    """
    subject, html, text = render_email(template, context, locale or DEFAULT_LOCALE)
    message = EmailMessage(
        to_address=to.lower(), subject=subject, html=html, text=text, template=template,
        user_id=user_id, attachments=attachments or [], send_after=send_after,
    )
    session.add(message)
    await session.flush()
    enqueue_after_commit(
        session, DELIVER, str(message.id), key=delivery_key(message), at=send_after
    )
    return message


# --- suppression list ---------------------------------------------------------------


async def is_suppressed(session: AsyncSession, address: str) -> bool:
    found = await session.scalar(
        select(EmailSuppression.id).where(EmailSuppression.address == address.lower())
    )
    return found is not None


async def suppress(
    session: AsyncSession, address: str, reason: SuppressionReason, *,
    source_event_id: str | None = None,
) -> bool:
    """Add the address to the suppression list; False if it was there already."""
    result = await session.execute(
        insert_for(session, EmailSuppression)
        .values(id=uuid.uuid4(), address=address.lower(), reason=reason,
                source_event_id=source_event_id)
        .on_conflict_do_nothing(index_elements=["address"])
    )
    return rows_changed(result) == 1


# --- delivery (called by the email.deliver function, one step each) --------------------


def next_utc_midnight(now: datetime) -> datetime:
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


async def claim_for_delivery(
    session: AsyncSession, settings: Settings, message_id: uuid.UUID, *, run_id: str
) -> dict[str, Any]:
    """Decide what the delivery run `run_id` does with a message, and claim it first.

    `send`: the message is now `sending`, claimed by this run (its content is returned
    and the send is counted against today's cap); `suppressed`; `deferred` (past the
    daily cap: due at the next UTC midnight); `later` (not due); `skip` (sent, failed,
    or claimed by another run). The same run asking again (its claim step ran but its
    checkpoint was lost in a crash) gets the same answer without a second count.
    """
    query = select(EmailMessage).where(EmailMessage.id == message_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    message = await session.scalar(query)
    if message is None:
        return {"outcome": "skip"}
    if message.status == EmailStatus.sending and message.claimed_by == run_id:
        return _send_claimed(settings, message)
    if message.status != EmailStatus.queued:
        return {"outcome": "skip"}
    now = utcnow()
    if message.send_after is not None and message.send_after > now:
        return {"outcome": "later"}
    if await is_suppressed(session, message.to_address):
        message.status = EmailStatus.suppressed
        return {"outcome": "suppressed"}
    if settings.email_daily_cap is not None:
        if not await usage.try_increment(
            session, usage.EMAILS_SENT, usage.day(now), settings.email_daily_cap
        ):
            message.send_after = next_utc_midnight(now)
            return {"outcome": "deferred", "send_after": message.send_after.isoformat()}
    else:
        await usage.increment(session, usage.EMAILS_SENT, usage.day(now))
    await usage.increment(session, usage.EMAILS_SENT, usage.month(now))
    message.attempts += 1
    message.status = EmailStatus.sending
    message.claimed_by = run_id
    message.claimed_at = now
    return _send_claimed(settings, message)


def _send_claimed(settings: Settings, message: EmailMessage) -> dict[str, Any]:
    if message.claimed_at is None:
        raise ValueError(f"email {message.id} is sent only once claimed")
    return {
        "outcome": "send",
        "day": usage.day(message.claimed_at),
        "email": {
            "id": str(message.id), "sender": settings.email_from, "to": message.to_address,
            "subject": message.subject, "html": message.html, "text": message.text,
            "attachments": message.attachments,
        },
    }


async def mark_sent(
    session: AsyncSession, message_id: uuid.UUID, *, provider: str, provider_message_id: str
) -> None:
    message = await session.get(EmailMessage, message_id)
    # `failed` too: an operator retried a run whose earlier attempt gave up.
    if message is None or message.status not in (EmailStatus.sending, EmailStatus.failed):
        return
    message.status = EmailStatus.sent
    message.sent_at = utcnow()
    message.provider = provider
    message.provider_message_id = provider_message_id
    message.last_error = None


async def mark_failed(
    session: AsyncSession, message_id: uuid.UUID, *, error: str, counted_on: str | None
) -> None:
    """The provider refused the message or retries ran out: it was not sent, so it
    gives back the quota it took."""
    message = await session.get(EmailMessage, message_id)
    if message is None or message.status != EmailStatus.sending:
        return
    message.status = EmailStatus.failed
    message.last_error = error[:2000]
    if counted_on is not None:
        await usage.increment(session, usage.EMAILS_SENT, counted_on, -1)
        await usage.increment(session, usage.EMAILS_SENT, counted_on[:7], -1)


async def due_messages(session: AsyncSession, *, older_than: timedelta, limit: int
                       ) -> list[EmailMessage]:
    """Queued messages that are due and should have been started by now."""
    now = utcnow()
    return list((await session.scalars(
        select(EmailMessage)
        .where(EmailMessage.status == EmailStatus.queued,
               (EmailMessage.send_after.is_(None)) | (EmailMessage.send_after <= now),
               EmailMessage.created_at < now - older_than)
        .order_by(EmailMessage.created_at).limit(limit)
    )).all())


async def recent_messages(session: AsyncSession, *, limit: int = 100) -> list[EmailMessage]:
    return list((await session.scalars(
        select(EmailMessage).order_by(EmailMessage.created_at.desc()).limit(limit)
    )).all())


# --- privacy (called by accounts) ----------------------------------------------------


async def messages_of(session: AsyncSession, user_id: uuid.UUID) -> list[EmailMessage]:
    """The user's emails, for their privacy export."""
    return list(await session.scalars(select(EmailMessage).where(EmailMessage.user_id == user_id)))


async def forget_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    """A deleted account's emails: those not sent yet never go out, and none keeps
    the address or the body."""
    await session.execute(
        update(EmailMessage)
        .where(EmailMessage.user_id == user_id, EmailMessage.status == EmailStatus.queued)
        .values(status=EmailStatus.suppressed)
    )
    await session.execute(
        update(EmailMessage).where(EmailMessage.user_id == user_id)
        .values(to_address="deleted@invalid", html="", text="")
    )
