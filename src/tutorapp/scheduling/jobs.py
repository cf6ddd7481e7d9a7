"""Background functions of scheduling."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from tutorapp.core.time import utcnow
from tutorapp.jobs.queue import enqueue
from tutorapp.jobs.registry import function, step, workflow_id
from tutorapp.jobs.runtime import runtime
from tutorapp.scheduling import bookings, notices
from tutorapp.scheduling.models import Booking, BookingStatus

log = logging.getLogger("tutorapp.scheduling.jobs")
REMIND = "booking.remind"
# The sweep re-derives the reminders of lessons starting within this window; later
# lessons' reminders are re-derived by a later sweep, long before they are due.
SWEEP_AHEAD = notices.REMINDERS["24h"] + timedelta(days=1)
# A reminder whose time passed this recently (no worker ran then) is still sent.
SWEEP_LOOKBACK = timedelta(minutes=30)
SWEEP_BATCH = 5000


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
        return await notices.send_notice(session, runtime.settings, uuid.UUID(booking_id), kind)


async def _plan_reminders(booking_id: str) -> list[dict[str, str]]:
    async with runtime.database().session() as session:
        booking = await session.get(Booking, uuid.UUID(booking_id))
        if booking is None or booking.status != BookingStatus.confirmed:
            return []
        return notices.planned_reminders(booking, utcnow())


async def _schedule(reminders: list[dict[str, str]]) -> None:
    """Enqueue each reminder from the function's body: checkpointed with the run."""
    for reminder in reminders:
        await enqueue(REMIND, reminder["booking_id"], reminder["start"], reminder["label"],
                      key=reminder["key"], at=datetime.fromisoformat(reminder["at"]))


@function("booking.notify", on=["booking.confirmed", "booking.cancelled", "booking.rescheduled"],
          concurrency=5)
async def notify(event: dict[str, Any]) -> int:
    """Tell the student, the parent who booked and the tutor (with the `.ics`), and
    schedule the reminders of a confirmed lesson's current start time."""
    kind = event["name"].removeprefix("booking.")
    booking_id = str(event["data"]["booking_id"])
    sent = await step("booking.send_notice", _notify, kind, booking_id)
    await _schedule(await step("booking.plan_reminders", _plan_reminders, booking_id))
    return sent


async def _remind(booking_id: str, start: str, label: str) -> bool:
    async with runtime.database().unit_of_work() as session:
        return await notices.send_reminder(session, runtime.settings, uuid.UUID(booking_id),
                                           start, label)


@function(REMIND, concurrency=5)
async def remind(booking_id: str, start: str, label: str) -> bool:
    """24 h and 1 h before a lesson; skipped when it was cancelled or moved since."""
    return await step("booking.send_reminder", _remind, booking_id, start, label)


async def _reminders_due() -> list[dict[str, str]]:
    now = utcnow()
    async with runtime.database().session() as session:
        upcoming = await notices.confirmed_starting_between(session, now, now + SWEEP_AHEAD,
                                                            limit=SWEEP_BATCH)
        return [reminder for booking in upcoming
                for reminder in notices.planned_reminders(booking, now, since=now - SWEEP_LOOKBACK)]


async def _missing(reminders: list[dict[str, str]]) -> list[dict[str, str]]:
    """The reminders that have no run (whatever its state: a sent one is not resent)."""
    if not reminders:
        return []
    client = runtime._client
    if client is None:
        client = await asyncio.to_thread(runtime.client)
    ids = {workflow_id(REMIND, r["key"]): r for r in reminders}
    found = await client.list_workflows_async(workflow_ids=list(ids), load_input=False,
                                              load_output=False)
    known = {status.workflow_id for status in found}
    return [reminder for wid, reminder in ids.items() if wid not in known]


@function("booking.sweep_reminders", cron="*/10 * * * *", concurrency=1)
async def sweep_reminders(scheduled_at: datetime) -> int:
    """Every 10 minutes: re-derive the reminders of upcoming confirmed lessons from the
    bookings and start those that have no run (their planning was lost, or a worker
    was down when it was due); returns how many it started."""
    reminders = await step("booking.reminders_due", _reminders_due)
    missing = await step("booking.missing_reminders", _missing, reminders)
    await _schedule(missing)
    if missing:
        log.warning("re-derived %d lost lesson reminders", len(missing))
    return len(missing)
