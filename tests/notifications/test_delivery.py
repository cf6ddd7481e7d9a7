"""Email delivery: after commit, through a durable run, respecting the suppression
list and the daily cap; metered; localised subjects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import respx
from sqlalchemy import func, select, update

from tests.integrations.resend_fake import RESEND_SETTINGS, FakeResend
from tests.jobs.conftest import Worker
from tutorapp.accounts.models import User
from tutorapp.auth.roles import Role
from tutorapp.core.db import Database
from tutorapp.core.time import utcnow
from tutorapp.jobs.queue import enqueue
from tutorapp.metering import service as usage
from tutorapp.notifications import service
from tutorapp.notifications.models import (
    EmailMessage,
    EmailStatus,
    EmailSuppression,
    SuppressionReason,
)

NOTICE = {"title": "Lesson moved", "body": "Your lesson moved to Tuesday.", "link": None}


async def queue_email(db: Database, to: str = "Ada@Example.org", **kwargs: object) -> EmailMessage:
    async with db.unit_of_work() as session:
        return await service.enqueue_email(
            session, to=to, template="notice", context=NOTICE, **kwargs  # type: ignore[arg-type]
        )


def run_id(message: EmailMessage) -> str:
    return f"email.deliver:{service.delivery_key(message)}"


async def reload(db: Database, message_id: uuid.UUID) -> EmailMessage:
    async with db.session() as session:
        message = await session.get(EmailMessage, message_id)
        assert message is not None
        return message


async def sent_today(db: Database) -> tuple[int, int]:
    now = utcnow()
    async with db.session() as session:
        return (await usage.get(session, usage.EMAILS_SENT, usage.day(now)),
                await usage.get(session, usage.EMAILS_SENT, usage.month(now)))


async def test_a_queued_email_is_delivered_to_the_outbox_after_commit(
    running: Worker, db: Database
) -> None:
    message = await queue_email(db)
    assert await running.result(run_id(message)) == "sent"
    delivered = await reload(db, message.id)
    assert delivered.status is EmailStatus.sent
    assert delivered.to_address == "ada@example.org"
    assert delivered.provider == "outbox"
    assert delivered.provider_message_id == f"outbox-{message.id}"
    assert delivered.sent_at is not None and delivered.attempts == 1
    assert delivered.subject == "TutorApp notice: Lesson moved"
    assert "Your lesson moved to Tuesday." in delivered.html
    assert "Your lesson moved to Tuesday." in delivered.text
    assert await sent_today(db) == (1, 1)


async def test_an_email_of_a_rolled_back_transaction_is_neither_stored_nor_sent(
    running: Worker, db: Database
) -> None:
    with pytest.raises(RuntimeError):  # noqa: PT012 - the failure must come from inside the unit of work
        async with db.unit_of_work() as session:
            await service.enqueue_email(session, to="x@example.org", template="notice",
                                        context=NOTICE)
            raise RuntimeError("rolled back")
    from dbos import DBOS

    assert await DBOS.list_workflows_async(name="email.deliver") == []
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(EmailMessage)) == 0


async def test_delivering_twice_sends_once(running: Worker, db: Database) -> None:
    message = await queue_email(db)
    assert await running.result(run_id(message)) == "sent"
    # A second run for the same message (another key) finds it sent and skips it.
    again = await enqueue("email.deliver", str(message.id), key=f"{message.id}:again")
    assert await running.result(again) == "skip"
    assert (await reload(db, message.id)).attempts == 1
    assert await sent_today(db) == (1, 1)


async def test_a_suppressed_address_is_never_sent(running: Worker, db: Database) -> None:
    async with db.unit_of_work() as session:
        assert await service.suppress(session, "Bounced@Example.org", SuppressionReason.bounced)
        assert not await service.suppress(session, "bounced@example.org",
                                          SuppressionReason.complained)
    message = await queue_email(db, to="bounced@example.org")
    assert await running.result(run_id(message)) == "suppressed"
    assert (await reload(db, message.id)).status is EmailStatus.suppressed
    assert await sent_today(db) == (0, 0)


async def test_mail_past_the_daily_cap_waits_for_the_next_day(
    worker: Worker, db: Database
) -> None:
    await worker.start(email_daily_cap=2)
    messages = [await queue_email(db, to=f"s{i}@example.org") for i in range(3)]
    outcomes = sorted([await worker.result(run_id(m)) for m in messages])
    assert outcomes == ["deferred", "sent", "sent"]
    assert await sent_today(db) == (2, 2)
    states = [await reload(db, m.id) for m in messages]
    deferred = next(m for m in states if m.status is EmailStatus.queued)
    now = utcnow()
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    assert deferred.send_after == midnight

    # Midnight passed (moved into the past here): the sweep sends it, under a new run.
    async with db.unit_of_work() as session:
        await session.execute(update(EmailMessage).where(EmailMessage.id == deferred.id).values(
            send_after=now - timedelta(minutes=1), created_at=now - timedelta(days=1)))
    await worker.stop()
    await worker.start(email_daily_cap=3)
    sweep = await enqueue("email.sweep", now, key="test-sweep")
    assert await worker.result(sweep) == 1
    released = await reload(db, deferred.id)
    assert await worker.result(run_id(released)) == "sent"
    assert (await reload(db, deferred.id)).status is EmailStatus.sent
    assert await sent_today(db) == (3, 3)


async def test_a_lost_start_is_picked_up_by_the_sweep(running: Worker, db: Database) -> None:
    # Stored without its after-commit start (the process died right after commit).
    async with db.unit_of_work() as session:
        subject, html, text = service.render_email("notice", NOTICE)
        message = EmailMessage(to_address="late@example.org", subject=subject, html=html,
                               text=text, template="notice",
                               created_at=utcnow() - timedelta(minutes=2))
        session.add(message)
    sweep = await enqueue("email.sweep", utcnow(), key="lost-start")
    assert await running.result(sweep) == 1
    assert await running.result(run_id(message)) == "sent"


async def test_subjects_follow_the_users_locale(db: Database) -> None:
    async with db.unit_of_work() as session:
        user = User(email="fr@example.org", display_name="Zoé", role=Role.student,
                    time_zone="Europe/Paris", locale="fr-CA")
        session.add(user)
        await session.flush()
        french = await service.enqueue_email(session, to="fr@example.org", template="notice",
                                             context=NOTICE, user_id=user.id,
                                             locale=user.locale)
        english = await service.enqueue_email(session, to="en@example.org", template="notice",
                                              context=NOTICE)
        german = await service.enqueue_email(session, to="de@example.org", template="notice",
                                             context=NOTICE, locale="de")
    assert french.subject == "Avis de TutorApp : Lesson moved"
    assert english.subject == "TutorApp notice: Lesson moved"
    assert german.subject == "TutorApp notice: Lesson moved"  # no German yet: English


async def test_a_temporary_vendor_failure_is_retried_and_sends_once(
    worker: Worker, db: Database
) -> None:
    fake = FakeResend()
    with respx.mock(assert_all_called=False) as router:
        fake.install(router)
        await worker.start(**RESEND_SETTINGS)
        fake.fail_next(429, "rate_limit_exceeded", "Too many requests",
                       headers={"retry-after": "0", "ratelimit-reset": "0"})
        fake.fail_next(500, "internal_server_error", "Unexpected error")
        message = await queue_email(db)
        assert await worker.result(run_id(message)) == "sent"
    assert len(fake.requests) == 3
    keys = {r.headers["idempotency-key"] for r in fake.requests}
    assert keys == {f"email/{message.id}"}
    assert len(fake.sent) == 1
    delivered = await reload(db, message.id)
    assert delivered.status is EmailStatus.sent
    assert delivered.provider == "resend"
    assert delivered.provider_message_id == fake.sent[0]["id"]
    assert fake.sent[0]["to"] == ["ada@example.org"]
    assert fake.sent[0]["from"] == "TutorApp <hello@tutorapp.test>"


async def test_a_refused_email_fails_without_retry_and_gives_back_its_quota(
    worker: Worker, db: Database
) -> None:
    fake = FakeResend()
    with respx.mock(assert_all_called=False) as router:
        fake.install(router)
        await worker.start(**RESEND_SETTINGS)
        fake.fail_next(422, "validation_error", "Invalid `to` field.")
        message = await queue_email(db)
        with pytest.raises(Exception, match="validation_error"):
            await worker.result(run_id(message))
        assert await worker.status(run_id(message)) == "ERROR"
    assert len(fake.requests) == 1
    failed = await reload(db, message.id)
    assert failed.status is EmailStatus.failed
    assert failed.last_error is not None and "validation_error" in failed.last_error
    assert await sent_today(db) == (0, 0)


async def test_suppressions_are_unique_per_address(db: Database) -> None:
    async with db.unit_of_work() as session:
        await service.suppress(session, "a@example.org", SuppressionReason.manual)
    async with db.session() as session:
        rows = (await session.scalars(select(EmailSuppression))).all()
    assert [(r.address, r.reason) for r in rows] == [("a@example.org", SuppressionReason.manual)]


async def test_a_message_is_claimed_by_one_run_before_it_is_sent(
    db: Database, settings
) -> None:
    """The claim marks the message `sending` for one run: another run is refused, and the
    claiming run asking again (its claim step re-ran after a crash) neither counts the
    send twice nor loses the claim."""
    message = await queue_email(db)
    async with db.unit_of_work() as session:
        first = await service.claim_for_delivery(session, settings, message.id, run_id="run-a")
    assert first["outcome"] == "send"
    claimed = await reload(db, message.id)
    assert (claimed.status, claimed.claimed_by, claimed.attempts) == (
        EmailStatus.sending, "run-a", 1)
    assert claimed.claimed_at is not None
    async with db.unit_of_work() as session:
        other = await service.claim_for_delivery(session, settings, message.id, run_id="run-b")
    assert other == {"outcome": "skip"}
    async with db.unit_of_work() as session:
        again = await service.claim_for_delivery(session, settings, message.id, run_id="run-a")
    assert again == first
    assert (await reload(db, message.id)).attempts == 1
    assert await sent_today(db) == (1, 1)
    async with db.unit_of_work() as session:
        await service.mark_sent(session, message.id, provider="smtp", provider_message_id="<x>")
    sent = await reload(db, message.id)
    assert (sent.status, sent.provider_message_id) == (EmailStatus.sent, "<x>")
