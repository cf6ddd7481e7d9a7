"""Lesson reminders: planned by the booking.notify run with a checkpointed enqueue (a
failure fails the run instead of being swallowed), and re-derived from the bookings by
a sweep when one is missing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dbos import DBOS
from sqlalchemy import func, select

from tests.jobs.conftest import Worker
from tests.scheduling.conftest import approved_tutor, make_market, sign_in
from tests.scheduling.test_bookings import EVERY_DAY, book, pin
from tutorapp.auth.roles import Role
from tutorapp.core.db import Database
from tutorapp.core.time import utcnow
from tutorapp.jobs import queue, service
from tutorapp.notifications.models import EmailMessage
from tutorapp.scheduling import jobs as scheduling_jobs
from tutorapp.scheduling import notices
from tutorapp.scheduling.models import Booking, BookingStatus


def lesson_start(now: datetime) -> datetime:
    """A whole hour 26-47 h ahead inside the tutor's 09:00-17:00 (London = UTC in winter,
    so take 10:00-15:00 UTC to stay inside in summer too)."""
    for hours in range(26, 48):
        start = (now + timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
        if 10 <= start.hour <= 15:
            return start
    raise AssertionError("no hour found")


@pytest.fixture
async def lesson(worker: Worker, app, client) -> dict[str, Any]:
    """A confirmed lesson (the reminder runs are planned once the worker starts)."""
    now = utcnow()
    pin(app, now)
    market = await make_market(app, client)
    _, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    student = await sign_in(app, role=Role.student)
    start = lesson_start(now)
    response = await book(client, student, tutor_id, start.isoformat(), 60)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "confirmed"
    booking_id = response.json()["id"]
    keys = {f"booking.remind:{booking_id}:{start.isoformat()}:{label}": start - before
            for label, before in notices.REMINDERS.items()}
    return {"id": booking_id, "start": start, "runs": keys}


async def notify_run() -> str:
    [run] = await DBOS.list_workflows_async(name="booking.notify", load_input=False)
    return run.workflow_id


async def reminder_runs() -> list[Any]:
    return await DBOS.list_workflows_async(name="booking.remind", load_input=False)


async def test_a_confirmed_lesson_plans_its_reminders_inside_the_notify_run(
    worker: Worker, lesson: dict[str, Any]
) -> None:
    await worker.start()
    notify = await notify_run()
    assert await worker.result(notify) == 2  # the student and the tutor were told
    runs = await reminder_runs()
    assert {r.workflow_id for r in runs} == set(lesson["runs"])
    assert {r.status for r in runs} == {"DELAYED"}
    # Recorded in the notify run's history: a re-run replays the enqueue.
    assert {r.parent_workflow_id for r in runs} == {notify}
    for run in runs:
        due = lesson["runs"][run.workflow_id]
        assert abs(run.delay_until_epoch_ms / 1000 - due.timestamp()) < 1


async def test_a_failed_reminder_enqueue_fails_the_run_and_a_retry_plans_them_once(
    worker: Worker, lesson: dict[str, Any], db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = queue.enqueue

    async def refuse_reminders(function_name: str, *args: Any, **kwargs: Any) -> str:
        if function_name == "booking.remind":
            raise ConnectionError("system database unreachable")
        return await original(function_name, *args, **kwargs)

    monkeypatch.setattr(queue, "enqueue", refuse_reminders)
    monkeypatch.setattr(scheduling_jobs, "enqueue", refuse_reminders, raising=False)
    await worker.start()
    notify = await notify_run()
    with pytest.raises(ConnectionError):
        await worker.result(notify)
    assert await worker.status(notify) == "ERROR"  # visible and retryable, not lost
    assert await reminder_runs() == []

    monkeypatch.undo()
    await service.retry_run(notify)
    assert await worker.result(notify) == 2
    assert {r.workflow_id for r in await reminder_runs()} == set(lesson["runs"])
    async with db.session() as session:  # the notice step was replayed, not re-run
        assert await session.scalar(select(func.count()).select_from(EmailMessage).where(
            EmailMessage.template == "booking/confirmed")) == 2


async def test_the_sweep_re_derives_missing_reminders_once(
    worker: Worker, lesson: dict[str, Any]
) -> None:
    await worker.start()
    assert await worker.result(await notify_run()) == 2
    lost = [r.workflow_id for r in await reminder_runs()]
    assert len(lost) == 2
    await DBOS.delete_workflows_async(lost)  # as if their planning never happened

    sweep = await queue.enqueue("booking.sweep_reminders", utcnow(), key="manual-1")
    assert await worker.result(sweep) == 2
    runs = await reminder_runs()
    assert {r.workflow_id for r in runs} == set(lesson["runs"])
    assert {r.status for r in runs} == {"DELAYED"}
    again = await queue.enqueue("booking.sweep_reminders", utcnow(), key="manual-2")
    assert await worker.result(again) == 0
    assert len(await reminder_runs()) == 2


def booking_at(start: datetime, changed: datetime) -> Booking:
    return Booking(id=uuid.uuid4(), start_at=start, status=BookingStatus.confirmed,
                   created_at=changed, updated_at=changed)


def test_a_missed_reminder_is_due_now_only_while_it_still_makes_sense() -> None:
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    since = now - timedelta(minutes=30)
    week_ago = now - timedelta(days=7)
    # The 1 h reminder fell due 10 minutes ago while no worker ran: due now.
    soon = booking_at(now + timedelta(minutes=50), week_ago)
    assert notices.reminder_times(soon, now, since=since) == {"1h": now}
    assert notices.reminder_times(soon, now) == {}
    # Booked 30 minutes before the lesson: its 1 h reminder never applied.
    late = booking_at(now + timedelta(minutes=50), now - timedelta(minutes=5))
    assert notices.reminder_times(late, now, since=since) == {}
    # Already begun: nothing.
    begun = booking_at(now - timedelta(minutes=1), week_ago)
    assert notices.reminder_times(begun, now, since=since) == {}
    # Both ahead: both at their times.
    later = booking_at(now + timedelta(hours=30), week_ago)
    assert notices.reminder_times(later, now, since=since) == {
        "24h": now + timedelta(hours=6), "1h": now + timedelta(hours=29)}
