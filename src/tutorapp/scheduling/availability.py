"""Availability: weekly rules and date overrides in the tutor's zone, and free slots."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.config import Settings
from tutorapp.core import zones
from tutorapp.core.audit import record
from tutorapp.core.errors import InvalidInput
from tutorapp.core.fields import DATE_RANGE, DAY_MAX, DAY_MIN, check_moment
from tutorapp.scheduling import schemas, timeslots
from tutorapp.scheduling.models import (
    ACTIVE_STATUSES,
    AvailabilityOverride,
    AvailabilityRule,
    Booking,
)
from tutorapp.scheduling.timeslots import DateOverride, Interval, WeeklyRule
from tutorapp.tutors.models import TutorProfile


async def set_availability(session: AsyncSession, profile: TutorProfile,
                           data: schemas.AvailabilityIn, *, actor_id: uuid.UUID) -> None:
    """Replace the tutor's weekly rules and overrides."""
    await session.execute(delete(AvailabilityRule).where(AvailabilityRule.tutor_id == profile.id))
    await session.execute(
        delete(AvailabilityOverride).where(AvailabilityOverride.tutor_id == profile.id)
    )
    for rule in data.rules:
        session.add(AvailabilityRule(
            tutor_id=profile.id, weekday=rule.weekday, start_minute=schemas.minutes(rule.start),
            end_minute=schemas.minutes(rule.end),
        ))
    for o in data.overrides:
        session.add(AvailabilityOverride(
            tutor_id=profile.id, day=o.day, kind=o.kind,
            start_minute=None if o.start is None else schemas.minutes(o.start),
            end_minute=None if o.end is None else schemas.minutes(o.end),
        ))
    await session.flush()
    await record(session, "availability.updated", subject_type="tutor_profile",
                 subject_id=profile.id, actor_id=actor_id, rules=len(data.rules),
                 overrides=len(data.overrides))


async def rules_of(session: AsyncSession, tutor_id: uuid.UUID) -> tuple[list[WeeklyRule], list[DateOverride]]:
    rules = [
        WeeklyRule(r.weekday, r.start_minute, r.end_minute)
        for r in await session.scalars(
            select(AvailabilityRule).where(AvailabilityRule.tutor_id == tutor_id)
            .order_by(AvailabilityRule.weekday, AvailabilityRule.start_minute)
        )
    ]
    overrides = [
        DateOverride(o.day, o.kind, o.start_minute, o.end_minute)
        for o in await session.scalars(
            select(AvailabilityOverride).where(AvailabilityOverride.tutor_id == tutor_id)
            .order_by(AvailabilityOverride.day, AvailabilityOverride.start_minute)
        )
    ]
    return rules, overrides


async def get_availability(session: AsyncSession, profile: TutorProfile) -> schemas.AvailabilityOut:
    rules, overrides = await rules_of(session, profile.id)
    return schemas.AvailabilityOut(
        time_zone=profile.time_zone,
        rules=[schemas.RuleIn(weekday=r.weekday, start=schemas.hhmm(r.start_minute),
                              end=schemas.hhmm(r.end_minute)) for r in rules],
        overrides=[schemas.OverrideIn(
            day=o.day, kind=o.kind,
            start=None if o.start_minute is None else schemas.hhmm(o.start_minute),
            end=None if o.end_minute is None else schemas.hhmm(o.end_minute),
        ) for o in overrides],
    )


async def busy(session: AsyncSession, profile: TutorProfile, start: datetime, end: datetime, *,
               exclude: uuid.UUID | None = None) -> list[Interval]:
    """Taken time around [start, end): each active booking plus the tutor's buffer before it
    (its stored `blocked_until` already carries the buffer after it)."""
    buffer = timedelta(minutes=profile.buffer_minutes)
    query = select(Booking.id, Booking.start_at, Booking.blocked_until).where(
        Booking.tutor_id == profile.id, Booking.status.in_(ACTIVE_STATUSES),
        Booking.start_at < end + buffer, Booking.blocked_until > start - buffer,
    )
    rows = (await session.execute(query)).all()
    return [(s - buffer, b) for i, s, b in rows if i != exclude]


async def free_time(session: AsyncSession, profile: TutorProfile, start: datetime, end: datetime,
                    *, exclude: uuid.UUID | None = None,
                    rules: tuple[list[WeeklyRule], list[DateOverride]] | None = None) -> list[Interval]:
    weekly, overrides = rules if rules is not None else await rules_of(session, profile.id)
    tz = zones.zone(profile.time_zone)
    # widen by a day so lessons that start inside [start, end) may end after it
    available = timeslots.availability(weekly, overrides, tz, start, end + timedelta(days=1))
    return timeslots.subtract(available, await busy(session, profile, start, end + timedelta(days=1),
                                                    exclude=exclude))


def bookable_window(profile: TutorProfile, now: datetime) -> tuple[datetime, datetime]:
    """(earliest, latest) start allowed by minimum notice and the booking horizon."""
    return (now + timedelta(minutes=profile.min_notice_minutes),
            now + timedelta(days=profile.horizon_days))


async def slots(session: AsyncSession, profile: TutorProfile, start: datetime, end: datetime, *,
                length: int, settings: Settings, now: datetime,
                rules: tuple[list[WeeklyRule], list[DateOverride]] | None = None) -> list[datetime]:
    """Free start instants (UTC) in [start, end) for a lesson of `length` minutes."""
    earliest, latest = bookable_window(profile, now)
    lo, hi = max(start, earliest), min(end, latest + timedelta(microseconds=1))
    if lo >= hi:
        return []
    free = await free_time(session, profile, lo, hi, rules=rules)
    starts = timeslots.slot_starts(free, zones.zone(profile.time_zone), length=length,
                                   step=settings.slot_step_minutes, earliest=lo)
    return [s for s in starts if s < hi]


def parse_bound(value: str, tz: ZoneInfo, field: str, *, end: bool) -> datetime:
    """A query bound: a date (the start of that day in `tz`; an end date is inclusive) or
    an ISO 8601 date-time with an offset."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if not DAY_MIN <= day <= DAY_MAX:
                raise InvalidInput(field, f"must be {DATE_RANGE}", location="query")
            day += timedelta(days=1 if end else 0)
            # Midnight inside a DST gap: the day starts when the gap ends (gaps last < 1 h).
            instant = (timeslots.resolve_wall_time(day, time(), tz)
                       or timeslots.resolve_wall_time(day, time(1), tz))
            if instant is None:
                raise InvalidInput(field, f"has no midnight in {tz.key}", location="query")
            return instant
        parsed = datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        raise InvalidInput(field, "a date (YYYY-MM-DD) or an ISO 8601 date-time",
                           location="query") from None
    if parsed.tzinfo is None:
        raise InvalidInput(field, "a date-time needs an offset, e.g. +02:00 or Z", location="query")
    try:
        return check_moment(parsed).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(field, str(exc), location="query") from None


async def first_slots(session: AsyncSession, profiles: Sequence[TutorProfile], start: datetime,
                      end: datetime, *, settings: Settings, now: datetime,
                      length: int | None = None) -> dict[uuid.UUID, datetime | None]:
    """The first free start in [start, end) of each tutor (of `length`, default each
    tutor's shortest lesson), with three queries for the whole batch."""
    ids = [p.id for p in profiles]
    if not ids:
        return {}
    rules: dict[uuid.UUID, list[WeeklyRule]] = defaultdict(list)
    overrides: dict[uuid.UUID, list[DateOverride]] = defaultdict(list)
    for r in await session.scalars(select(AvailabilityRule).where(AvailabilityRule.tutor_id.in_(ids))):
        rules[r.tutor_id].append(WeeklyRule(r.weekday, r.start_minute, r.end_minute))
    for o in await session.scalars(
        select(AvailabilityOverride).where(AvailabilityOverride.tutor_id.in_(ids),
                                           AvailabilityOverride.day >= (start - timedelta(days=2)).date(),
                                           AvailabilityOverride.day <= (end + timedelta(days=2)).date())
    ):
        overrides[o.tutor_id].append(DateOverride(o.day, o.kind, o.start_minute, o.end_minute))
    horizon = end + timedelta(days=1, hours=4)
    taken: dict[uuid.UUID, list[tuple[datetime, datetime]]] = defaultdict(list)
    rows = await session.execute(
        select(Booking.tutor_id, Booking.start_at, Booking.blocked_until).where(
            Booking.tutor_id.in_(ids), Booking.status.in_(ACTIVE_STATUSES),
            Booking.start_at < horizon, Booking.blocked_until > start - timedelta(hours=4),
        )
    )
    for tutor_id, s, b in rows:
        taken[tutor_id].append((s, b))
    out: dict[uuid.UUID, datetime | None] = {}
    for profile in profiles:
        out[profile.id] = None
        if not rules[profile.id] and not overrides[profile.id]:
            continue
        wanted = length or min(profile.lesson_lengths)
        if wanted not in profile.lesson_lengths:
            continue
        earliest, latest = bookable_window(profile, now)
        lo, hi = max(start, earliest), min(end, latest + timedelta(microseconds=1))
        if lo >= hi:
            continue
        tz = zones.zone(profile.time_zone)
        buffer = timedelta(minutes=profile.buffer_minutes)
        free = timeslots.availability(rules[profile.id], overrides[profile.id], tz, lo,
                                      hi + timedelta(days=1))
        free = timeslots.subtract(free, [(s - buffer, b) for s, b in taken[profile.id]])
        starts = timeslots.slot_starts(free, tz, length=wanted, step=settings.slot_step_minutes,
                                       earliest=lo)
        if starts and starts[0] < hi:
            out[profile.id] = starts[0]
    return out
