"""Booking emails: notices with the lesson's .ics, and reminders that never fire for a
cancelled lesson and follow a moved one to its new time."""

import uuid
from datetime import timedelta

from sqlalchemy import select

from tests.scheduling.conftest import Market, sign_in
from tests.scheduling.test_bookings import NOW, book, tutor
from tutorapp.accounts.models import User
from tutorapp.auth.roles import Role
from tutorapp.jobs.registry import load_functions
from tutorapp.notifications.models import EmailMessage
from tutorapp.scheduling import notices
from tutorapp.scheduling.models import Booking


async def emails(db, template: str) -> list[EmailMessage]:
    async with db.session() as session:
        return list(await session.scalars(
            select(EmailMessage).where(EmailMessage.template == template)
            .order_by(EmailMessage.to_address)))


async def address_of(db, user_id: uuid.UUID) -> str:
    async with db.session() as session:
        return (await session.get(User, user_id)).email


async def test_confirmation_goes_to_parent_and_tutor_with_the_ics(app, client, db,
                                                                  market: Market) -> None:
    tutor_caller, tutor_id = await tutor(app, client, market)
    parent = await sign_in(app, role=Role.parent, time_zone="Asia/Kolkata")
    child = await sign_in(app, role=Role.student, parent_id=parent.id)  # no email
    booked = await book(client, parent, tutor_id, "2026-06-02T10:00:00+01:00", 30,
                        student_id=str(child.id))
    booking_id = uuid.UUID(booked.json()["id"])
    async with db.unit_of_work() as session:
        assert await notices.send_notice(session, app.state.settings, booking_id, "confirmed") == 2
    sent = await emails(db, "booking/confirmed")
    assert sorted(m.to_address for m in sent) == sorted(
        [await address_of(db, parent.id), await address_of(db, tutor_caller.id)])
    to_parent = next(m for m in sent if m.user_id == parent.id)
    assert to_parent.subject == "Lesson confirmed: Tuesday 02 June 2026, 14:30 (Asia/Kolkata)"
    [attachment] = to_parent.attachments
    assert attachment["filename"] == "lesson.ics"
    assert attachment["content_type"] == "text/calendar"
    assert "BEGIN:VEVENT" in attachment["content"] and "DTSTART:20260602T090000Z" in attachment["content"]


async def test_reminders_follow_a_moved_lesson_and_skip_a_cancelled_one(
    app, client, db, market: Market
) -> None:
    _, tutor_id = await tutor(app, client, market)
    student = await sign_in(app, role=Role.student)
    booked = await book(client, student, tutor_id, "2026-06-04T10:00:00+01:00", 60)
    booking_id = uuid.UUID(booked.json()["id"])
    async with db.session() as session:
        booking = await session.get(Booking, booking_id)
        due = notices.reminder_times(booking, NOW)
        first_start = booking.start_at.isoformat()
    assert due == {"24h": booking.start_at - timedelta(hours=24),
                   "1h": booking.start_at - timedelta(hours=1)}

    moved = await client.post(f"/api/v1/bookings/{booking_id}/reschedule",
                              json={"start": "2026-06-05T11:00:00+01:00"}, headers=student.headers)
    assert moved.status_code == 200, moved.text
    async with db.unit_of_work() as session:
        assert await notices.send_reminder(session, app.state.settings, booking_id,
                                           first_start, "24h") is False
        new_start = (await session.get(Booking, booking_id)).start_at.isoformat()
        assert await notices.send_reminder(session, app.state.settings, booking_id,
                                           new_start, "24h") is True
    reminders = await emails(db, "booking/reminder")
    assert len(reminders) == 2  # the student and the tutor
    to_student = next(m for m in reminders if m.user_id == student.id)
    assert to_student.subject == "Reminder: lesson tomorrow, Friday 05 June 2026, 10:00 (UTC)"

    cancelled = await client.post(f"/api/v1/bookings/{booking_id}/cancel", json={},
                                  headers=student.headers)
    assert cancelled.status_code == 200, cancelled.text
    async with db.unit_of_work() as session:
        assert await notices.send_reminder(session, app.state.settings, booking_id,
                                           new_start, "1h") is False
    assert len(await emails(db, "booking/reminder")) == 2


def test_booking_functions_listen_to_the_booking_events() -> None:
    functions = load_functions()
    assert set(functions["booking.notify"].events) == {
        "booking.confirmed", "booking.cancelled", "booking.rescheduled"}
    assert "booking.remind" in functions
