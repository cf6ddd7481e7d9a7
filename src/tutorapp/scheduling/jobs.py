"""Background functions of scheduling."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from tutorapp.core.time import utcnow
from tutorapp.jobs.engine import enqueue_after_commit, function, runtime, step
from tutorapp.scheduling import bookings, notices
from tutorapp.scheduling.models import Booking, BookingStatus


async def _release_expired_holds() -> int:
    async with runtime.database().unit_of_work() as session:
        return await bookings.release_expired_holds(session, now=utcnow())


@function("booking.release_holds", cron="* * * * *", concurrency=1)
async def release_holds(scheduled_at: datetime) -> int:
    """Every minute: held bookings whose payment did not arrive in time become
    `expired` and free their slot (safe to run twice: it only touches held rows)."""
    return await step("booking.release_expired_holds", _release_expired_holds)


async def _notify(kind: str, booking_id: str) -> int:
    async with runtime.database().unit_of_work() as session:
        sent = await notices.send_notice(session, runtime.settings, uuid.UUID(booking_id), kind)
        booking = await session.get(Booking, uuid.UUID(booking_id))
        if booking is not None and booking.status == BookingStatus.confirmed:
            for label, at in notices.reminder_times(booking, utcnow()).items():
                enqueue_after_commit(
                    session, "booking.remind", booking_id, booking.start_at.isoformat(), label,
                    key=notices.reminder_key(booking, label), at=at,
                )
    return sent


@function("booking.notify", on=["booking.confirmed", "booking.cancelled", "booking.rescheduled"],
          concurrency=5)
async def notify(event: dict[str, Any]) -> int:
    """Tell the student, the parent who booked and the tutor (with the `.ics`), and
    schedule the reminders of a confirmed lesson's current start time."""
    kind = event["name"].removeprefix("booking.")
    return await step("booking.send_notice", _notify, kind, str(event["data"]["booking_id"]))


async def _remind(booking_id: str, start: str, label: str) -> bool:
    async with runtime.database().unit_of_work() as session:
        return await notices.send_reminder(session, runtime.settings, uuid.UUID(booking_id),
                                           start, label)


@function("booking.remind", concurrency=5)
async def remind(booking_id: str, start: str, label: str) -> bool:
    """24 h and 1 h before a lesson; skipped when it was cancelled or moved since."""
    return await step("booking.send_reminder", _remind, booking_id, start, label)
