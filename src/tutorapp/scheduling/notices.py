"""Booking emails: notices of each change (with the lesson's `.ics`) and reminders.

Reminders are scheduled for a booking's start time at the moment it is confirmed or
moved, keyed by that start. When one fires it reloads the booking and sends only if
the lesson is still confirmed at that same start: a cancelled lesson gets none, a
moved one gets the reminders scheduled for its new time.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

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


def reminder_times(booking: Booking, now: datetime) -> dict[str, datetime]:
    """When each reminder of this booking's current start is due (only future ones)."""
    return {label: booking.start_at - before for label, before in REMINDERS.items()
            if booking.start_at - before > now}


def reminder_key(booking: Booking, label: str) -> str:
    return f"{booking.id}:{booking.start_at.isoformat()}:{label}"


async def send_reminder(session: AsyncSession, settings: Settings, booking_id: uuid.UUID,
                        start: str, label: str) -> bool:
    """Send a reminder only if the lesson is still confirmed at the start it was for."""
    booking = await session.get(Booking, booking_id)
    if (booking is None or booking.status != BookingStatus.confirmed
            or booking.start_at.isoformat() != start):
        return False
    await _send(session, settings, booking, "booking/reminder", label=label)
    return True
