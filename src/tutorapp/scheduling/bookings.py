"""Bookings: create, approve, cancel, reschedule, complete — every transition audited
and emitted as a domain event.

No overlap: [start_at, blocked_until) of active bookings of one tutor never overlap.
PostgreSQL enforces it with an exclusion constraint; on SQLite every write
transaction is serialized (BEGIN IMMEDIATE), and the overlap check below runs inside
it. Inserts and moves run in a savepoint so a lost race becomes a clean 409.

Lock order: whoever books or moves a lesson first locks the tutor's profile row
(`lock_tutor`), then the booking. Racing bookings of one tutor therefore queue on
that row and each sees the others' commits in `check_slot`: the losers get 409 from
the check, and the exclusion constraint never has two uncommitted overlapping rows to
check against each other (that is what deadlocked: "deadlock detected ... while
checking exclusion constraint"). A deadlock or serialization failure that still
happens is retried once (`core.db.retrying`); a lock wait that runs out is a 503.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.accounts.service import register_eraser, register_exporter, row_dict
from tutorapp.auth.roles import Role
from tutorapp.config import Settings
from tutorapp.core import zones
from tutorapp.core.audit import record
from tutorapp.core.db import retrying
from tutorapp.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from tutorapp.scheduling import availability, timeslots
from tutorapp.scheduling import live as _live  # noqa: F401  (realtime topics and publishing)
from tutorapp.scheduling.events import emit
from tutorapp.scheduling.models import Booking, BookingStatus
from tutorapp.tutors.models import ProfileStatus, TutorProfile

OPEN_STATUSES = (BookingStatus.held, BookingStatus.requested, BookingStatus.confirmed)


# What any lesson costs, whatever its tutor and length: one lesson credit (billing
# spends it when the booking is paid; docs/billing.md, "The money model").
LESSON_CREDITS = 1


class SlotTaken(Conflict):
    type, title = "/problems/slot-taken", "Slot taken"


async def lock_tutor(session: AsyncSession, tutor_id: uuid.UUID) -> TutorProfile | None:
    """Lock the tutor's profile row for this transaction: bookings of one tutor are
    decided one at a time (FOR NO KEY UPDATE on PostgreSQL, so the bookings' foreign
    keys to it still insert; on SQLite this takes the write lock)."""
    return await session.scalar(
        select(TutorProfile).where(TutorProfile.id == tutor_id)
        .with_for_update(key_share=True).execution_options(populate_existing=True)
    )


async def bookable_profile(session: AsyncSession, tutor_id: uuid.UUID) -> TutorProfile:
    profile = await session.get(TutorProfile, tutor_id)
    if profile is None or profile.status != ProfileStatus.approved:
        raise NotFound("No such tutor.")
    return profile


async def resolve_student(session: AsyncSession, caller: User, student_id: uuid.UUID | None) -> User:
    """The student a lesson is for: the caller, or a parent's child."""
    if caller.role == Role.student:
        if student_id not in (None, caller.id):
            raise Forbidden("Students book for themselves.")
        return caller
    if caller.role == Role.parent:
        if student_id is None:
            raise InvalidInput("student_id", "a parent books for one of their children")
        child = await session.get(User, student_id)
        if child is None or child.parent_id != caller.id or child.deleted_at is not None:
            raise InvalidInput("student_id", "not one of your children")
        return child
    raise Forbidden("Only students and parents book lessons.")


async def check_slot(session: AsyncSession, profile: TutorProfile, start: datetime, length: int,
                     *, settings: Settings, now: datetime, exclude: uuid.UUID | None = None,
                     field: str = "start") -> None:
    """Raise unless a lesson of `length` at `start` is offered and free."""
    if length not in profile.lesson_lengths:
        raise InvalidInput("length", f"this tutor offers {sorted(profile.lesson_lengths)} minutes")
    tz = zones.zone(profile.time_zone)
    if not timeslots.on_grid(start, tz, settings.slot_step_minutes):
        raise InvalidInput(field, f"lessons start on the {settings.slot_step_minutes}-minute grid "
                                  "of the tutor's time zone")
    earliest, latest = availability.bookable_window(profile, now)
    if start < earliest:
        raise InvalidInput(field, f"this tutor needs {profile.min_notice_minutes} minutes' notice")
    if start > latest:
        raise InvalidInput(field, f"this tutor takes bookings up to {profile.horizon_days} days ahead")
    end = start + timedelta(minutes=length)
    free = await availability.free_time(session, profile, start - timedelta(days=1), end,
                                        exclude=exclude)
    if not timeslots.fits(free, start, length):
        raise SlotTaken("That time is not free: pick another slot.")


def _initial_status(profile: TutorProfile, settings: Settings) -> BookingStatus:
    if settings.bookings_need_payment:
        return BookingStatus.held
    if profile.requires_approval:
        return BookingStatus.requested
    return BookingStatus.confirmed


async def _insert(session: AsyncSession, booking: Booking) -> None:
    async def insert() -> None:
        async with session.begin_nested():
            session.add(booking)
            await session.flush()

    try:
        await retrying(insert)
    except IntegrityError as exc:  # the exclusion constraint decided: someone was faster
        raise SlotTaken("That time was just taken: pick another slot.") from exc


async def book(session: AsyncSession, *, caller: User, tutor_id: uuid.UUID, start: datetime,
               length: int, student_id: uuid.UUID | None, settings: Settings, now: datetime,
               series_id: uuid.UUID | None = None, series_index: int | None = None,
               profile: TutorProfile | None = None, student: User | None = None) -> Booking:
    profile = profile or await bookable_profile(session, tutor_id)
    student = student or await resolve_student(session, caller, student_id)
    if student.id == profile.user_id:
        raise Forbidden("Tutors cannot book themselves.")
    start = start.astimezone(UTC)
    # A slot already taken is refused before queueing for the lock (most racers)...
    await check_slot(session, profile, start, length, settings=settings, now=now)
    # ...then decided again with this tutor's bookings decided one at a time.
    await lock_tutor(session, profile.id)
    await check_slot(session, profile, start, length, settings=settings, now=now)
    status = _initial_status(profile, settings)
    end = start + timedelta(minutes=length)
    booking = Booking(
        tutor_id=profile.id, tutor_user_id=profile.user_id, student_id=student.id,
        booked_by_id=caller.id, start_at=start, end_at=end,
        blocked_until=end + timedelta(minutes=profile.buffer_minutes), length=length,
        status=status,
        hold_expires_at=(now + timedelta(minutes=settings.booking_hold_minutes)
                         if status == BookingStatus.held else None),
        series_id=series_id, series_index=series_index, sequence=0,
    )
    await _insert(session, booking)
    await record(session, f"booking.{status}", subject_type="booking", subject_id=booking.id,
                 actor_id=caller.id, tutor_id=str(profile.id), start=start.isoformat(),
                 length=length)
    await emit(session, f"booking.{status}", booking.id, sequence=booking.sequence)
    return booking


# --- reading ----------------------------------------------------------------------


async def may_see(session: AsyncSession, booking: Booking, user: User) -> bool:
    if user.role == Role.admin or user.id in (booking.student_id, booking.booked_by_id,
                                               booking.tutor_user_id):
        return True
    if user.role == Role.parent:
        child = await session.get(User, booking.student_id)
        return child is not None and child.parent_id == user.id
    return False


async def get_for(session: AsyncSession, booking_id: uuid.UUID, user: User, *,
                  lock: bool = False) -> Booking:
    booking = await session.get(Booking, booking_id, with_for_update=lock or None,
                                populate_existing=lock)
    if booking is None or not await may_see(session, booking, user):
        raise NotFound("No such booking.")
    return booking


async def list_for(session: AsyncSession, user: User, *, start: datetime | None = None,
                   end: datetime | None = None, limit: int = 200) -> list[Booking]:
    query = select(Booking)
    if user.role == Role.tutor:
        query = query.where(Booking.tutor_user_id == user.id)
    elif user.role == Role.parent:
        children = select(User.id).where(User.parent_id == user.id)
        query = query.where((Booking.booked_by_id == user.id) | Booking.student_id.in_(children))
    elif user.role == Role.student:
        query = query.where(Booking.student_id == user.id)
    if start is not None:
        query = query.where(Booking.end_at > start)
    if end is not None:
        query = query.where(Booking.start_at < end)
    query = query.order_by(Booking.start_at, Booking.id).limit(limit)
    return list(await session.scalars(query))


async def count_all(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(Booking)) or 0


async def latest(session: AsyncSession, *, limit: int, offset: int) -> list[Booking]:
    """Every tutor's bookings, latest start first (for the admins)."""
    return list(await session.scalars(
        select(Booking).order_by(Booking.start_at.desc(), Booking.id).limit(limit).offset(offset)))


async def of_series(session: AsyncSession, series_id: uuid.UUID) -> list[Booking]:
    return list(await session.scalars(
        select(Booking).where(Booking.series_id == series_id).order_by(Booking.start_at)))


async def held_in_series(session: AsyncSession, series_id: uuid.UUID,
                         student_id: uuid.UUID) -> int:
    """How many lessons of the series still wait for the student's payment."""
    return await session.scalar(select(func.count()).select_from(Booking).where(
        Booking.series_id == series_id, Booking.student_id == student_id,
        Booking.status == BookingStatus.held)) or 0


# --- transitions --------------------------------------------------------------------


async def _transition(session: AsyncSession, booking: Booking, to: BookingStatus, *,
                      actor_id: uuid.UUID | None, **data: Any) -> Booking:
    before = booking.status
    booking.status = to
    booking.sequence += 1
    await session.flush()
    await record(session, f"booking.{to}", subject_type="booking", subject_id=booking.id,
                 actor_id=actor_id, before=str(before), **data)
    await emit(session, f"booking.{to}", booking.id, sequence=booking.sequence, before=str(before))
    return booking


def _is_tutor(booking: Booking, user: User) -> bool:
    return booking.tutor_user_id == user.id


async def approve(session: AsyncSession, booking_id: uuid.UUID, tutor: User) -> Booking:
    booking = await get_for(session, booking_id, tutor, lock=True)
    if not _is_tutor(booking, tutor):
        raise Forbidden("Only the tutor approves a booking request.")
    if booking.status != BookingStatus.requested:
        raise Conflict(f"Only a requested booking can be approved; this one is {booking.status}.")
    return await _transition(session, booking, BookingStatus.confirmed, actor_id=tutor.id)


async def decline(session: AsyncSession, booking_id: uuid.UUID, tutor: User,
                  reason: str | None = None) -> Booking:
    booking = await get_for(session, booking_id, tutor, lock=True)
    if not _is_tutor(booking, tutor):
        raise Forbidden("Only the tutor declines a booking request.")
    if booking.status != BookingStatus.requested:
        raise Conflict(f"Only a requested booking can be declined; this one is {booking.status}.")
    return await _cancel(session, booking, tutor, reason=reason, refund=True, now=None)


async def mark_paid(session: AsyncSession, booking_id: uuid.UUID, *, now: datetime) -> Booking:
    """Billing calls this when the payment of a held booking succeeded."""
    booking = await session.get(Booking, booking_id, with_for_update=True)
    if booking is None:
        raise NotFound("No such booking.")
    if booking.status != BookingStatus.held or (booking.hold_expires_at or now) < now:
        raise Conflict("The hold on this booking has ended.")
    profile = await session.get(TutorProfile, booking.tutor_id)
    to = BookingStatus.requested if profile and profile.requires_approval else BookingStatus.confirmed
    booking.hold_expires_at = None
    return await _transition(session, booking, to, actor_id=None, paid=True)


async def release_expired_holds(session: AsyncSession, *, now: datetime, limit: int = 500) -> int:
    """Free the slots of held bookings whose payment did not arrive in time (a job)."""
    expired = list(await session.scalars(
        select(Booking).where(Booking.status == BookingStatus.held, Booking.hold_expires_at <= now)
        .order_by(Booking.hold_expires_at).limit(limit).with_for_update(skip_locked=True)
    ))
    for booking in expired:
        await _transition(session, booking, BookingStatus.expired, actor_id=None)
    return len(expired)


async def _cancel(session: AsyncSession, booking: Booking, actor: User, *, reason: str | None,
                  refund: bool, now: datetime | None) -> Booking:
    from tutorapp.core.time import utcnow

    booking.cancelled_at = now or utcnow()
    booking.cancelled_by_id = actor.id
    booking.cancel_reason = reason
    booking.refund = refund
    return await _transition(session, booking, BookingStatus.cancelled, actor_id=actor.id,
                             refund=refund, reason=reason)


async def cancellation_refunds(session: AsyncSession, booking: Booking, actor: User,
                               now: datetime) -> bool:
    """The policy: a tutor's (or admin's) cancellation always refunds; a student's or
    parent's refunds until `free_cancellation_hours` before the start, then forfeits."""
    if _is_tutor(booking, actor) or actor.role == Role.admin:
        return True
    if booking.status in (BookingStatus.held, BookingStatus.requested):
        return True  # nothing was confirmed yet
    profile = await session.get(TutorProfile, booking.tutor_id)
    hours = profile.free_cancellation_hours if profile else 0
    return now <= booking.start_at - timedelta(hours=hours)


async def cancel(session: AsyncSession, booking_id: uuid.UUID, actor: User, *, now: datetime,
                 reason: str | None = None, scope: str = "this") -> list[Booking]:
    """Cancel one booking, or (scope="following") it and every later open booking of its series."""
    booking = await get_for(session, booking_id, actor, lock=True)
    if booking.status not in OPEN_STATUSES:
        raise Conflict(f"A booking that is {booking.status} cannot be cancelled.")
    targets = [booking]
    if scope == "following":
        if booking.series_id is None:
            raise InvalidInput("scope", "this booking is not part of a series")
        targets += list(await session.scalars(
            select(Booking).where(
                Booking.series_id == booking.series_id, Booking.id != booking.id,
                Booking.start_at > booking.start_at, Booking.status.in_(OPEN_STATUSES),
            ).order_by(Booking.start_at).with_for_update()
        ))
    done = []
    for target in targets:
        refund = await cancellation_refunds(session, target, actor, now)
        done.append(await _cancel(session, target, actor, reason=reason, refund=refund, now=now))
    return done


async def reschedule(session: AsyncSession, booking_id: uuid.UUID, actor: User, *,
                     start: datetime, settings: Settings, now: datetime) -> Booking:
    """Move a booking in place, atomically: one UPDATE takes the new interval and frees
    the old, so the lesson is never without a time nor holding two."""
    booking = await get_for(session, booking_id, actor)
    profile = await session.get_one(TutorProfile, booking.tutor_id)
    start = start.astimezone(UTC)
    # As in `book`: refuse a taken slot before queueing for the lock, then decide under it.
    await check_slot(session, profile, start, booking.length, settings=settings, now=now,
                     exclude=booking.id)
    await lock_tutor(session, booking.tutor_id)  # lock order: tutor, then booking
    booking = await get_for(session, booking_id, actor, lock=True)
    if booking.status not in OPEN_STATUSES:
        raise Conflict(f"A booking that is {booking.status} cannot be moved.")
    if (not _is_tutor(booking, actor) and actor.role != Role.admin
            and booking.status == BookingStatus.confirmed
            and not await cancellation_refunds(session, booking, actor, now)):
            raise Conflict("Too late to move this lesson: the free cancellation period is over.")
    await check_slot(session, profile, start, booking.length, settings=settings, now=now,
                     exclude=booking.id)
    before = booking.start_at
    end = start + timedelta(minutes=booking.length)

    async def move() -> None:
        async with session.begin_nested():
            booking.start_at = start
            booking.end_at = end
            booking.blocked_until = end + timedelta(minutes=profile.buffer_minutes)
            booking.sequence = sequence + 1
            await session.flush()

    sequence = booking.sequence
    try:
        await retrying(move)
    except IntegrityError as exc:
        await session.refresh(booking)
        raise SlotTaken("That time was just taken: pick another slot.") from exc
    await record(session, "booking.rescheduled", subject_type="booking", subject_id=booking.id,
                 actor_id=actor.id, before=before.isoformat(), after=start.isoformat())
    await emit(session, "booking.rescheduled", booking.id, sequence=booking.sequence,
               before=before.isoformat())
    return booking


async def _finish(session: AsyncSession, booking_id: uuid.UUID, tutor: User, to: BookingStatus,
                  now: datetime) -> Booking:
    booking = await get_for(session, booking_id, tutor, lock=True)
    if not _is_tutor(booking, tutor):
        raise Forbidden("Only the tutor marks how a lesson went.")
    if booking.status != BookingStatus.confirmed:
        raise Conflict(f"Only a confirmed lesson can be marked {to}; this one is {booking.status}.")
    if now < booking.start_at:
        raise Conflict("The lesson has not started yet.")
    return await _transition(session, booking, to, actor_id=tutor.id)


async def complete(session: AsyncSession, booking_id: uuid.UUID, tutor: User, *, now: datetime) -> Booking:
    return await _finish(session, booking_id, tutor, BookingStatus.completed, now)


async def no_show(session: AsyncSession, booking_id: uuid.UUID, tutor: User, *, now: datetime) -> Booking:
    return await _finish(session, booking_id, tutor, BookingStatus.no_show, now)


async def set_notes(session: AsyncSession, booking_id: uuid.UUID, tutor: User, notes: str) -> Booking:
    booking = await get_for(session, booking_id, tutor, lock=True)
    if not _is_tutor(booking, tutor):
        raise Forbidden("Only the tutor writes lesson notes.")
    booking.tutor_notes = notes
    await session.flush()
    await record(session, "booking.notes_updated", subject_type="booking", subject_id=booking.id,
                 actor_id=tutor.id)
    return booking


@register_exporter("bookings")
async def export_bookings(db: AsyncSession, user: User) -> list[dict]:
    """Lessons the user took, booked (for a child) or taught, for the privacy export."""
    rows = await db.scalars(
        select(Booking).where(
            (Booking.student_id == user.id) | (Booking.booked_by_id == user.id)
            | (Booking.tutor_user_id == user.id)
        ).order_by(Booking.start_at)
    )
    return [row_dict(b) for b in rows]


@register_eraser("bookings")
async def cancel_future_lessons(db: AsyncSession, user: User) -> None:
    """A deleted account leaves no future lesson behind: each is cancelled, refunded."""
    from tutorapp.core.time import utcnow

    now = utcnow()
    upcoming = await db.scalars(
        select(Booking).where(
            (Booking.student_id == user.id) | (Booking.booked_by_id == user.id)
            | (Booking.tutor_user_id == user.id),
            Booking.start_at > now, Booking.status.in_(OPEN_STATUSES),
        ).order_by(Booking.start_at).with_for_update()
    )
    for booking in upcoming:
        await _cancel(db, booking, user, reason="account deleted", refund=True, now=now)
