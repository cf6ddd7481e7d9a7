"""Booking emails: notices of each change (with the lesson's `.ics`) and reminders.

Reminders are scheduled for a booking's start time at the moment it is confirmed or
moved (by the `booking.notify` run, whose enqueue is checkpointed), keyed by that
start, and re-derived from the bookings by the `booking.sweep_reminders` sweep should
one be missing. When one fires it reloads the booking and sends only if the lesson
is still confirmed at that same start: a cancelled lesson gets none, a moved one gets
the reminders scheduled for its new time.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.config import Settings
from tutorapp.notifications.service import enqueue_email
from tutorapp.scheduling.calendar import booking_ics
from tutorapp.scheduling.models import Booking, BookingStatus
from tutorapp.tutors.models import TutorProfile

REMINDERS = {"24h": timedelta(hours=24), "1h": timedelta(hours=1)}
NOTICES = ("confirmed", "cancelled", "rescheduled")


async def _recipients(session: AsyncSession, booking: Booking) -> list[User]:
    """Student, the parent who booked for them, and the tutor: each once, with an email."""
    people: dict[uuid.UUID, User] = {}
    for user_id in (booking.student_id, booking.booked_by_id, booking.tutor_user_id):
        user = await session.get(User, user_id)
        if user is not None and user.email and user.deleted_at is None:
            people[user.id] = user
    return list(people.values())


def _local(when: datetime, zone: str) -> str:
    return when.astimezone(ZoneInfo(zone)).strftime("%A %d %B %Y, %H:%M") + f" ({zone})"


async def _send(session: AsyncSession, settings: Settings, booking: Booking, template: str,
                **extra: object) -> int:
    profile = await session.get(TutorProfile, booking.tutor_id)
    student = await session.get(User, booking.student_id)
    ics = (await booking_ics(session, booking, settings=settings)).decode()
    recipients = await _recipients(session, booking)
    for person in recipients:
        await enqueue_email(
            session, to=person.email or "", template=template, user_id=person.id,
            locale=person.locale,
            context={
                "name": person.display_name,
                "tutor_name": profile.display_name if profile else "your tutor",
                "student_name": student.display_name if student else "the student",
                "when": _local(booking.start_at, person.time_zone),
                "length": booking.length,
                "meeting_link": profile.meeting_link if profile else None,
                "link": f"{settings.public_url.rstrip('/')}/app/bookings/{booking.id}",
                **extra,
            },
            attachments=[{"filename": "lesson.ics", "content_type": "text/calendar",
                          "content": ics}],
        )
    return len(recipients)


async def send_notice(session: AsyncSession, settings: Settings, booking_id: uuid.UUID,
                      kind: str) -> int:
    """Email everyone concerned that the booking was confirmed, cancelled or moved."""
    booking = await session.get(Booking, booking_id)
    if booking is None or kind not in NOTICES:
        return 0
    return await _send(session, settings, booking, f"booking/{kind}",
                       reason=booking.cancel_reason)


def reminder_times(booking: Booking, now: datetime, *,
                   since: datetime | None = None) -> dict[str, datetime]:
    """When each reminder of this booking's current start is due: the future ones and,
    with `since`, the latest one that fell due between `since` and `now` (missed while
    no worker ran; due now) if the lesson has not begun and it fell due after the
    booking last changed (a lesson booked 30 minutes ahead gets no "1 hour" reminder)."""
    due = {label: booking.start_at - before for label, before in REMINDERS.items()}
    times = {label: at for label, at in due.items() if at > now}
    if since is not None and booking.start_at > now:
        changed = booking.updated_at
        missed = [(at, label) for label, at in due.items()
                  if max(since, changed) <= at <= now]
        if missed:
            times[max(missed)[1]] = now
    return times


def reminder_key(booking: Booking, label: str) -> str:
    return f"{booking.id}:{booking.start_at.isoformat()}:{label}"


def planned_reminders(booking: Booking, now: datetime, *,
                      since: datetime | None = None) -> list[dict[str, str]]:
    """The reminder runs this booking should have (JSON-like, for a job step)."""
    return [
        {"booking_id": str(booking.id), "start": booking.start_at.isoformat(), "label": label,
         "at": at.isoformat(), "key": reminder_key(booking, label)}
        for label, at in reminder_times(booking, now, since=since).items()
    ]


async def confirmed_starting_between(session: AsyncSession, start: datetime, end: datetime, *,
                                     limit: int) -> list[Booking]:
    return list(await session.scalars(
        select(Booking).where(Booking.status == BookingStatus.confirmed,
                              Booking.start_at > start, Booking.start_at <= end)
        .order_by(Booking.start_at).limit(limit)
    ))


async def send_reminder(session: AsyncSession, settings: Settings, booking_id: uuid.UUID,
                        start: str, label: str) -> bool:
    """Send a reminder only if the lesson is still confirmed at the start it was for."""
    booking = await session.get(Booking, booking_id)
    if (booking is None or booking.status != BookingStatus.confirmed
            or booking.start_at.isoformat() != start):
        return False
    await _send(session, settings, booking, "booking/reminder", label=label)
    return True
