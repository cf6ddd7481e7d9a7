"""ICS calendars: a per-user secret feed URL and the `.ics` attached to booking emails.

Each booking is one VEVENT whose UID never changes (`booking-<id>@tutorapp`);
SEQUENCE is the booking's `sequence`, raised on every change (move, status), so
calendar clients replace their copy. Cancelled lessons stay in the feed with
STATUS:CANCELLED, so a client that saw them removes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import urlparse

from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.config import Settings
from tutorapp.core.audit import record
from tutorapp.core.errors import NotFound
from tutorapp.core.security import new_token, token_hash
from tutorapp.scheduling import bookings
from tutorapp.scheduling.models import Booking, BookingStatus, CalendarFeed
from tutorapp.tutors.models import TutorProfile

FEED_PAST_DAYS = 90
ICS_STATUS = {
    BookingStatus.held: "TENTATIVE",
    BookingStatus.requested: "TENTATIVE",
    BookingStatus.confirmed: "CONFIRMED",
    BookingStatus.completed: "CONFIRMED",
    BookingStatus.no_show: "CONFIRMED",
    BookingStatus.cancelled: "CANCELLED",
    BookingStatus.expired: "CANCELLED",
}


def uid(booking_id: uuid.UUID, settings: Settings) -> str:
    host = urlparse(settings.public_url).hostname or "tutorapp"
    return f"booking-{booking_id}@{host}"


def _calendar(name: str) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", "-//TutorApp//Marketplace//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", name)
    return calendar


def _event(booking: Booking, *, summary: str, settings: Settings, meeting_link: str | None) -> Event:
    event = Event()
    event.add("uid", uid(booking.id, settings))
    event.add("dtstamp", booking.updated_at)
    event.add("dtstart", booking.start_at)
    event.add("dtend", booking.end_at)
    event.add("sequence", booking.sequence)
    event.add("status", ICS_STATUS[booking.status])
    event.add("summary", summary)
    if meeting_link and booking.status not in (BookingStatus.cancelled, BookingStatus.expired):
        event.add("location", meeting_link)
        event.add("url", meeting_link)
    if booking.tutor_notes:
        event.add("description", booking.tutor_notes)
    return event


async def _summaries(session: AsyncSession, rows: Sequence[Booking]) -> dict[uuid.UUID, tuple[str, str | None]]:
    tutor_ids = {b.tutor_id for b in rows}
    student_ids = {b.student_id for b in rows}
    profiles = {p.id: p for p in await session.scalars(
        select(TutorProfile).where(TutorProfile.id.in_(tutor_ids)))} if tutor_ids else {}
    students = dict((await session.execute(
        select(User.id, User.display_name).where(User.id.in_(student_ids)))).all()) if student_ids else {}
    out = {}
    for b in rows:
        profile = profiles.get(b.tutor_id)
        tutor_name = profile.display_name if profile else "tutor"
        out[b.id] = (f"Lesson: {students.get(b.student_id, 'student')} with {tutor_name}",
                     profile.meeting_link if profile else None)
    return out


async def booking_ics(session: AsyncSession, booking: Booking, *, settings: Settings) -> bytes:
    """The `.ics` for one booking, for the email code to attach (method PUBLISH)."""
    summary, link = (await _summaries(session, [booking]))[booking.id]
    calendar = _calendar("TutorApp lesson")
    calendar.add("method", "CANCEL" if booking.status == BookingStatus.cancelled else "PUBLISH")
    calendar.add_component(_event(booking, summary=summary, settings=settings, meeting_link=link))
    return calendar.to_ical()


async def regenerate_feed(session: AsyncSession, user: User, *, settings: Settings) -> str:
    """A new secret feed URL for the user; the previous URL stops working."""
    token = new_token()
    feed = await session.scalar(select(CalendarFeed).where(CalendarFeed.user_id == user.id))
    if feed is None:
        session.add(CalendarFeed(user_id=user.id, token_hash=token_hash(token)))
    else:
        feed.token_hash = token_hash(token)
    await session.flush()
    await record(session, "calendar_feed.regenerated", subject_type="user", subject_id=user.id,
                 actor_id=user.id)
    return f"{settings.public_url.rstrip('/')}/api/v1/calendar/feeds/{token}.ics"


async def feed_ics(session: AsyncSession, token: str, *, settings: Settings, now: datetime) -> bytes:
    feed = await session.scalar(select(CalendarFeed).where(CalendarFeed.token_hash == token_hash(token)))
    user = await session.get(User, feed.user_id) if feed else None
    if feed is None or user is None or user.deleted_at is not None:
        raise NotFound("No such calendar.")
    rows = await bookings.list_for(session, user, start=now - timedelta(days=FEED_PAST_DAYS),
                                   limit=2000)
    summaries = await _summaries(session, rows)
    calendar = _calendar(f"TutorApp — {user.display_name}")
    for booking in rows:
        summary, link = summaries[booking.id]
        calendar.add_component(_event(booking, summary=summary, settings=settings, meeting_link=link))
    return calendar.to_ical()
