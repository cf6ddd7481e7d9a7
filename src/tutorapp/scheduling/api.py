"""JSON routes: availability, free slots, bookings, series and calendar feeds."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, status
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.auth.deps import (
    PUBLIC,
    CurrentPrincipal,
    OptionalPrincipal,
    StudentOrParent,
    TutorPrincipal,
)
from tutorapp.core import zones
from tutorapp.core.db import ReadSessionDep, SessionDep
from tutorapp.core.deps import clock, settings_of
from tutorapp.core.errors import InvalidInput
from tutorapp.core.fields import LessonMinutes, Moment, Text
from tutorapp.scheduling import (
    availability,
    bookings,
    calendar,
    idempotency,
    schemas,
    search,
    series,
)
from tutorapp.scheduling.availability import parse_bound
from tutorapp.scheduling.models import Booking, BookingStatus
from tutorapp.tutors import schemas as tutor_schemas
from tutorapp.tutors import service as tutors
from tutorapp.tutors.models import Level, TutorProfile

router = APIRouter(prefix="/api/v1", tags=["scheduling"])
# Tutor search filters by free time, so it lives here; listed with the catalogue.
search_router = APIRouter(prefix="/api/v1", tags=["catalogue & tutors"])


async def present(session: AsyncSession, booking: Booking) -> schemas.BookingOut:
    profile = await session.get(TutorProfile, booking.tutor_id)
    link = profile.meeting_link if profile and booking.status == BookingStatus.confirmed else None
    return schemas.BookingOut(
        id=booking.id, tutor_id=booking.tutor_id, student_id=booking.student_id,
        booked_by_id=booking.booked_by_id, start=booking.start_at, end=booking.end_at,
        length=booking.length, status=booking.status, hold_expires_at=booking.hold_expires_at,
        credits=bookings.LESSON_CREDITS,
        series_id=booking.series_id, series_index=booking.series_index,
        cancelled_at=booking.cancelled_at, refund=booking.refund,
        tutor_notes=booking.tutor_notes, sequence=booking.sequence, meeting_link=link,
    )


# --- availability -----------------------------------------------------------------


@router.get("/tutors/me/availability")
async def get_own_availability(session: SessionDep, tutor: TutorPrincipal) -> schemas.AvailabilityOut:
    profile = await tutors.own_profile(session, tutor.id)
    return await availability.get_availability(session, profile)


@router.put("/tutors/me/availability")
async def set_own_availability(body: schemas.AvailabilityIn, session: SessionDep,
                               tutor: TutorPrincipal) -> schemas.AvailabilityOut:
    profile = await tutors.own_profile(session, tutor.id)
    await availability.set_availability(session, profile, body, actor_id=tutor.id)
    return await availability.get_availability(session, profile)


@router.get("/tutors/{tutor_id}/slots")
async def free_slots(
    tutor_id: uuid.UUID, request: Request, session: ReadSessionDep, viewer: OptionalPrincipal,
    from_: Annotated[Annotated[str, Text(40)], Query(alias="from", description="a date or an ISO 8601 moment")],
    to: Annotated[Annotated[str, Text(40)], Query(description="a date (inclusive) or an ISO 8601 moment")],
    tz: Annotated[Annotated[str, Text(64)] | None, Query()] = None,
    length: Annotated[LessonMinutes | None, Query()] = None,
) -> schemas.SlotsOut:
    settings = settings_of(request)
    zone_name = tz or (viewer.user.time_zone if viewer else "UTC")
    try:
        zone = zones.zone(zone_name)
    except ValueError:
        raise InvalidInput("tz", "not an IANA time zone, e.g. Europe/London", location="query") from None
    start = availability.parse_bound(from_, zone, "from", end=False)
    end = availability.parse_bound(to, zone, "to", end=True)
    if end <= start:
        raise InvalidInput("to", "must be after from", location="query")
    if end - start > timedelta(days=settings.slots_max_days):
        raise InvalidInput("to", f"at most {settings.slots_max_days} days after from", location="query")
    profile = await tutors.get_profile(session, tutor_id, viewer=viewer.user if viewer else None)
    length = length or min(profile.lesson_lengths)
    if length not in profile.lesson_lengths:
        raise InvalidInput("length", f"this tutor offers {sorted(profile.lesson_lengths)} minutes",
                           location="query")
    starts = await availability.slots(session, profile, start, end, length=length,
                                      settings=settings, now=clock(request))
    return schemas.SlotsOut(tutor_id=profile.id, tz=zone_name, length=length,
                            slots=[s.astimezone(zone) for s in starts])


# --- bookings ---------------------------------------------------------------------


@router.post("/bookings", status_code=status.HTTP_201_CREATED,
             responses={409: {"description": "the slot is taken"}})
async def create_booking(
    body: schemas.BookingIn, request: Request, session: SessionDep, caller: StudentOrParent,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> schemas.BookingOut:
    settings = settings_of(request)

    async def action() -> tuple[int, dict]:
        booking = await bookings.book(
            session, caller=caller.user, tutor_id=body.tutor_id, start=body.start,
            length=body.length, student_id=body.student_id, settings=settings, now=clock(request),
        )
        return 201, (await present(session, booking)).model_dump(mode="json")

    fingerprint = idempotency.request_hash("POST", "/api/v1/bookings", body.model_dump(mode="json"))
    code, payload, replayed = await idempotency.run_once(
        session, user_id=caller.id, key=idempotency_key, fingerprint=fingerprint, action=action,
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return JSONResponse(payload, status_code=code, headers=headers)  # type: ignore[return-value]


@router.get("/bookings")
async def list_bookings(
    session: SessionDep, caller: CurrentPrincipal,
    from_: Annotated[Moment | None, Query(alias="from")] = None,
    to: Annotated[Moment | None, Query()] = None,
) -> list[schemas.BookingOut]:
    rows = await bookings.list_for(session, caller.user, start=from_, end=to)
    return [await present(session, b) for b in rows]


@router.get("/bookings/{booking_id}")
async def get_booking(booking_id: uuid.UUID, session: SessionDep,
                      caller: CurrentPrincipal) -> schemas.BookingOut:
    return await present(session, await bookings.get_for(session, booking_id, caller.user))


@router.get("/bookings/{booking_id}/ics")
async def get_booking_ics(booking_id: uuid.UUID, request: Request, session: SessionDep,
                          caller: CurrentPrincipal) -> Response:
    booking = await bookings.get_for(session, booking_id, caller.user)
    body = await calendar.booking_ics(session, booking, settings=settings_of(request))
    return Response(body, media_type="text/calendar; charset=utf-8")


@router.post("/bookings/{booking_id}/approve")
async def approve_booking(booking_id: uuid.UUID, session: SessionDep,
                          tutor: TutorPrincipal) -> schemas.BookingOut:
    return await present(session, await bookings.approve(session, booking_id, tutor.user))


@router.post("/bookings/{booking_id}/decline")
async def decline_booking(booking_id: uuid.UUID, session: SessionDep, tutor: TutorPrincipal,
                          body: schemas.CancelIn | None = None) -> schemas.BookingOut:
    reason = body.reason if body else None
    return await present(session, await bookings.decline(session, booking_id, tutor.user, reason))


@router.post("/bookings/{booking_id}/cancel")
async def cancel_booking(booking_id: uuid.UUID, request: Request, session: SessionDep,
                         caller: CurrentPrincipal,
                         body: schemas.CancelIn | None = None) -> list[schemas.BookingOut]:
    body = body or schemas.CancelIn()
    done = await bookings.cancel(session, booking_id, caller.user, now=clock(request),
                                 reason=body.reason, scope=body.scope)
    return [await present(session, b) for b in done]


@router.post("/bookings/{booking_id}/reschedule")
async def reschedule_booking(booking_id: uuid.UUID, body: schemas.RescheduleIn, request: Request,
                             session: SessionDep, caller: CurrentPrincipal) -> schemas.BookingOut:
    booking = await bookings.reschedule(session, booking_id, caller.user, start=body.start,
                                        settings=settings_of(request), now=clock(request))
    return await present(session, booking)


@router.post("/bookings/{booking_id}/complete")
async def complete_booking(booking_id: uuid.UUID, request: Request, session: SessionDep,
                           tutor: TutorPrincipal) -> schemas.BookingOut:
    return await present(session, await bookings.complete(session, booking_id, tutor.user,
                                                          now=clock(request)))


@router.post("/bookings/{booking_id}/no-show")
async def no_show_booking(booking_id: uuid.UUID, request: Request, session: SessionDep,
                          tutor: TutorPrincipal) -> schemas.BookingOut:
    return await present(session, await bookings.no_show(session, booking_id, tutor.user,
                                                         now=clock(request)))


@router.put("/bookings/{booking_id}/notes")
async def set_booking_notes(booking_id: uuid.UUID, body: schemas.NotesIn, session: SessionDep,
                            tutor: TutorPrincipal) -> schemas.BookingOut:
    return await present(session, await bookings.set_notes(session, booking_id, tutor.user,
                                                           body.notes))


# --- series -----------------------------------------------------------------------


@router.post("/series", status_code=status.HTTP_201_CREATED)
async def create_series(body: schemas.SeriesIn, request: Request, session: SessionDep,
                        caller: StudentOrParent) -> schemas.SeriesOut:
    created, booked, conflicts = await series.book_series(
        session, caller=caller.user, data=body, settings=settings_of(request), now=clock(request),
    )
    return schemas.SeriesOut(id=created.id, bookings=[await present(session, b) for b in booked],
                             conflicts=conflicts)


# --- calendar feeds -----------------------------------------------------------------


@router.post("/calendar/feed")
async def regenerate_calendar_feed(request: Request, session: SessionDep,
                                   caller: CurrentPrincipal) -> schemas.FeedOut:
    """Create or replace the caller's secret ICS feed URL (the old one stops working)."""
    url = await calendar.regenerate_feed(session, caller.user, settings=settings_of(request))
    return schemas.FeedOut(url=url)


@router.get("/calendar/feeds/{token}.ics", dependencies=[PUBLIC])
async def calendar_feed(token: str, request: Request,
                        session: ReadSessionDep) -> Response:
    body = await calendar.feed_ics(session, token, settings=settings_of(request), now=clock(request))
    return Response(body, media_type="text/calendar; charset=utf-8",
                    headers={"Cache-Control": "private, max-age=300"})


# --- search -----------------------------------------------------------------------


@search_router.get("/tutors", dependencies=[PUBLIC])
async def search_tutors(
    request: Request, session: ReadSessionDep,
    q: Annotated[Annotated[str, Text(200)] | None, Query()] = None,
    subject: Annotated[Annotated[str, Text(400)] | None, Query(description="id or path")] = None,
    level: Level | None = None,
    language: Annotated[Annotated[str, Text(16)] | None, Query()] = None,
    min_rating: Annotated[float | None, Query(ge=0, le=5)] = None,
    free_from: Annotated[Annotated[str, Text(40)] | None, Query(description="a date or an ISO 8601 moment")] = None,
    free_to: Annotated[Annotated[str, Text(40)] | None, Query(description="a date or an ISO 8601 moment")] = None,
    tz: Annotated[Annotated[str, Text(64)], Query()] = "UTC",
    length: Annotated[LessonMinutes | None, Query()] = None,
    sort: Annotated[Literal[search.SORTS] | None, Query()] = None,  # type: ignore[valid-type]
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[Annotated[str, Text(400)] | None, Query()] = None,
) -> tutor_schemas.SearchPage:
    """Approved tutors; see docs/api-marketplace.md for the rules of each parameter."""
    settings = request.app.state.settings
    try:
        zone = zones.zone(tz)
    except ValueError:
        raise InvalidInput("tz", "not an IANA time zone", location="query") from None
    query = search.Query(
        q=q, subject=subject, level=level, language=language, min_rating=min_rating,
        free_from=None if free_from is None else parse_bound(free_from, zone, "free_from", end=False),
        free_to=None if free_to is None else parse_bound(free_to, zone, "free_to", end=True),
        length=length, sort=sort or "relevance", limit=min(limit, settings.search_page_size_max),
        cursor=cursor,
    )
    return await search.search(session, query, settings=settings, now=clock(request),
                               dialect=request.app.state.database.dialect)
