"""Recurring lessons: N weekly lessons at the same wall-clock time, booked in one request.

Occurrence k is the first lesson's wall-clock time in the series' zone, k weeks
later (`timeslots.weekly_occurrences`): across a DST change the lesson keeps its
local time and moves in UTC. A wall-clock time that does not exist that day (spring
gap) is a conflict `nonexistent_local_time`; one that happens twice (autumn) is the
first occurrence. `all_or_nothing` books every lesson or none (409 with the
per-date report); `available` books the free ones and reports the others.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.config import Settings
from tutorapp.core import zones
from tutorapp.core.audit import record
from tutorapp.core.errors import AppError, Conflict, InvalidInput
from tutorapp.scheduling import bookings, schemas, timeslots
from tutorapp.scheduling.models import Booking, Series


class SeriesConflict(Conflict):
    type, title = "/problems/series-conflict", "Some lessons of the series are not free"


async def book_series(session: AsyncSession, *, caller: User, data: schemas.SeriesIn,
                      settings: Settings, now: datetime) -> tuple[Series, list[Booking], list[schemas.Conflict]]:
    if data.count > settings.series_max_lessons:
        raise InvalidInput("count", f"at most {settings.series_max_lessons} lessons")
    zone_name = data.time_zone or caller.time_zone
    try:
        tz = zones.zone(zone_name)
    except ValueError as exc:
        raise InvalidInput("time_zone", "not an IANA time zone") from exc
    profile = await bookings.bookable_profile(session, data.tutor_id)
    student = await bookings.resolve_student(session, caller, data.student_id)
    local = data.start.astimezone(tz)
    series = Series(tutor_id=profile.id, student_id=student.id, booked_by_id=caller.id,
                    time_zone=zone_name, local_time=local.strftime("%H:%M"), length=data.length,
                    count=data.count)
    session.add(series)
    await session.flush()
    booked: list[Booking] = []
    conflicts: list[schemas.Conflict] = []
    occurrences = timeslots.weekly_occurrences(data.start, tz, data.count)
    for occ in occurrences:
        if occ.start is None:
            conflicts.append(schemas.Conflict(index=occ.index, date=occ.local_date, start=None,
                                              reason="nonexistent_local_time"))
            continue
        try:
            async with session.begin_nested():
                booked.append(await bookings.book(
                    session, caller=caller, tutor_id=profile.id, start=occ.start,
                    length=data.length, student_id=student.id, settings=settings, now=now,
                    series_id=series.id, series_index=occ.index, profile=profile, student=student,
                ))
        except AppError as exc:
            reason = "taken" if isinstance(exc, bookings.SlotTaken) else exc.detail
            conflicts.append(schemas.Conflict(index=occ.index, date=occ.local_date,
                                              start=occ.start, reason=reason))
    if conflicts and (data.mode == "all_or_nothing" or not booked):
        raise SeriesConflict(
            f"{len(conflicts)} of {data.count} lessons cannot be booked; nothing was booked.",
            conflicts=[c.model_dump(mode="json") for c in conflicts],
        )
    await record(session, "series.booked", subject_type="series", subject_id=series.id,
                 actor_id=caller.id, booked=len(booked), conflicts=len(conflicts))
    return series, booked, conflicts
