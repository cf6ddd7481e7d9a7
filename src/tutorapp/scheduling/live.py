"""Scheduling on the realtime channels: who may read booking and availability topics,
and each booking event published after commit.

- `booking:<id>`: its student, whoever booked it, its tutor, the student's parent, admins.
- `tutor:<tutor profile id>:availability`: anyone; carries only taken/freed intervals.
- `user:<id>` (rule in realtime): each participant gets their bookings' events too.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.auth.roles import Role
from tutorapp.realtime import hub, topics
from tutorapp.scheduling.events import on_event
from tutorapp.scheduling.models import ACTIVE_STATUSES, Booking

log = logging.getLogger(__name__)


async def may_read_booking(session: AsyncSession, user_id: uuid.UUID | None,
                           parts: list[str]) -> bool:
    booking_id = topics.parse_uuid(parts[1]) if len(parts) == 2 else None
    if user_id is None or booking_id is None:
        return False
    booking = await session.get(Booking, booking_id)
    user = await session.get(User, user_id)
    if booking is None or user is None:
        return False
    if user.role == Role.admin or user_id in (booking.student_id, booking.booked_by_id,
                                              booking.tutor_user_id):
        return True
    student = await session.get(User, booking.student_id)
    return student is not None and student.parent_id == user_id


async def may_read_availability(session: AsyncSession, user_id: uuid.UUID | None,
                                parts: list[str]) -> bool:
    return len(parts) == 3 and parts[2] == "availability" and \
        topics.parse_uuid(parts[1]) is not None


topics.register("booking", may_read_booking)
topics.register("tutor", may_read_availability, client_broadcast=False)


def booking_record(booking: Booking) -> dict[str, Any]:
    return {
        "id": str(booking.id), "tutor_id": str(booking.tutor_id),
        "tutor_user_id": str(booking.tutor_user_id), "student_id": str(booking.student_id),
        "booked_by_id": str(booking.booked_by_id), "start_at": booking.start_at.isoformat(),
        "end_at": booking.end_at.isoformat(), "length": booking.length,
        "status": str(booking.status), "sequence": booking.sequence,
    }


@on_event
async def publish_booking_event(name: str, booking_id: uuid.UUID, data: dict[str, Any]) -> None:
    """After commit: a realtime outage must not fail the request that already committed.

    The hub's database and broker belong to the app's event loop; a job (DBOS runs
    them on its own loop) hands the publication over to that loop."""
    running = hub.current()
    if running is None or not name.startswith("booking."):
        return
    publication = _publish(running, name, booking_id, data)
    try:
        if asyncio.get_running_loop() is running.loop:
            await publication
        else:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(publication, running.loop))
    except (OSError, ConnectionError, SQLAlchemyError, RedisError) as exc:
        log.warning("realtime: %s of booking %s not published: %s", name, booking_id, exc)


async def _publish(running: hub.Hub, name: str, booking_id: uuid.UUID,
                   data: dict[str, Any]) -> None:
    async with running.database.session() as session:  # fresh: the event's commit is done
        booking = await session.get(Booking, booking_id)
        if booking is None:
            return
        student = await session.get(User, booking.student_id)
        record = booking_record(booking)
        kind = "UPDATE" if "before" in data else "INSERT"
        old = {"id": record["id"]} | ({"status": data["before"]} if kind == "UPDATE" and
                                      name != "booking.rescheduled" else {})
        readers = {booking.student_id, booking.booked_by_id, booking.tutor_user_id}
        if student is not None and student.parent_id is not None:
            readers.add(student.parent_id)
        await running.publish_change(
            [f"booking:{booking.id}", *(f"user:{r}" for r in sorted(readers, key=str))],
            hub.change(table="bookings", type=kind, record=record | {"event": name},
                       old_record=old))
        await running.publish_change(
            [f"tutor:{booking.tutor_id}:availability"],
            hub.change(table="availability", type="UPDATE", record={
                "tutor_id": str(booking.tutor_id), "start_at": booking.start_at.isoformat(),
                "end_at": booking.blocked_until.isoformat(),
                "taken": booking.status in ACTIVE_STATUSES}))
