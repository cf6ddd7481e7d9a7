"""Web pages of lessons: the dashboard at /app, the booking flow (single lesson or
weekly series, through payment), booking detail with "add to calendar",
reschedule, cancel (its consequence shown before confirming), review, and the
tutor's side: requests, lesson notes and weekly availability with date overrides.

Pages call the services of scheduling, billing, reviews, tutors and accounts."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts import service as accounts
from tutorapp.accounts.models import User
from tutorapp.auth.deps import CurrentPrincipal, StudentOrParent, TutorPrincipal
from tutorapp.auth.roles import Role
from tutorapp.core import zones
from tutorapp.core.db import SessionDep
from tutorapp.core.deps import clock
from tutorapp.core.errors import AppError, InvalidInput, NotFound, safe_next
from tutorapp.core.fields import browse_day, check_moment
from tutorapp.core.pages import FormProblem, form_failed, parse_form, render
from tutorapp.reviews import schemas as review_schemas
from tutorapp.reviews import service as reviews
from tutorapp.scheduling import availability, bookings, calendar, schemas, series
from tutorapp.scheduling.models import Booking, BookingStatus
from tutorapp.site.pages import slot_days, viewer_zone
from tutorapp.tutors import service as tutors

router = APIRouter(include_in_schema=False)
FormStr = Annotated[str, Form()]
OVERRIDE_ROWS_MAX = 503  # the page shows the saved overrides (at most 500) plus three empty rows
BOOK_LABELS = {"count": "Number of weekly lessons", "length": "Lesson length",
               "student_id": "Who the lesson is for", "start": "Time"}
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def describe(session: AsyncSession, rows: list[Booking]) -> list[dict[str, Any]]:
    """Bookings with the names a page shows (one query per kind, not per row)."""
    tutor_ids = {b.tutor_id for b in rows}
    user_ids = {b.student_id for b in rows} | {b.tutor_user_id for b in rows}
    profiles = await tutors.profiles_by_ids(session, tutor_ids)
    users = await accounts.users_by_ids(session, user_ids)
    reviewed = await reviews.reviewed_booking_ids(session, (b.id for b in rows))
    out = []
    for b in rows:
        profile = profiles.get(b.tutor_id)
        student = users.get(b.student_id)
        out.append({"b": b, "tutor_name": profile.display_name if profile else "—",
                    "student_name": student.display_name if student else "—",
                    "reviewed": b.id in reviewed, "profile": profile})
    return out


# --- wallet and subscription (billing's tables, read for display) ------------------------


async def wallet_summary(session: AsyncSession, user: User, now: datetime) -> dict[str, Any]:
    from tutorapp.billing import credits, repository

    wallet = await repository.wallet_of(session, user)
    if wallet is None:
        return {"credits": 0, "subscriptions": []}
    subs = await repository.subscriptions_of(session, wallet.id, newest_first=True)
    return {"credits": await credits.available(session, wallet.id, now), "subscriptions": subs}


# --- dashboard ------------------------------------------------------------------------


@router.get("/app")
async def dashboard(request: Request, principal: CurrentPrincipal, session: SessionDep) -> Response:
    user = principal.user
    now = clock(request)
    context: dict[str, Any] = {"user": user, "zone": user.time_zone, "now": now,
                               "resent": request.query_params.get("resent") == "1"}
    if user.role == Role.admin:
        return render(request, "app/home.html", **context)
    rows = await bookings.list_for(session, user, start=now - timedelta(days=120), limit=500)
    described = await describe(session, rows)
    context["upcoming"] = [d for d in described if d["b"].end_at > now
                           and d["b"].status in bookings.OPEN_STATUSES]
    context["past"] = list(reversed([d for d in described if d["b"].end_at <= now
                                     or d["b"].status not in bookings.OPEN_STATUSES]))[:20]
    if user.role == Role.tutor:
        context["profile"] = await tutors.profile_of_user(session, user.id)
        context["requests"] = [d for d in context["upcoming"]
                               if d["b"].status == BookingStatus.requested]
        context["earnings"] = await _earnings(session, user)
    else:
        context.update(await wallet_summary(session, user, now))
    if user.role == Role.parent:
        context["children"] = await accounts.children_of(session, user)
    return render(request, "app/home.html", **context)


async def _earnings(session: AsyncSession, user: User) -> dict[str, Any]:
    from tutorapp.billing import ledger, repository

    found = await ledger.balances(session, [ledger.tutor_pending(user.id),
                                            ledger.tutor_payable(user.id)])
    pending = [(-v, c) for (a, c), v in found.items() if a.startswith("tutor_pending") and v]
    payable = [(-v, c) for (a, c), v in found.items() if a.startswith("tutor_payable") and v]
    rows = await repository.earnings_of(session, user.id, limit=20)
    payouts = await repository.payout_totals_of(session, user.id, limit=12)
    return {"pending": pending, "payable": payable, "rows": rows, "payouts": payouts}


# --- booking flow -----------------------------------------------------------------------


def _parse_start(value: str) -> datetime:
    try:
        return check_moment(datetime.fromisoformat(value))
    except ValueError:
        raise InvalidInput("start", "pick a slot from the tutor's page") from None


async def _book_context(session: AsyncSession, principal: Any, tutor_id: uuid.UUID,
                        start: str, length: int, zone: str) -> dict[str, Any]:
    profile = await tutors.get_profile(session, tutor_id, viewer=principal.user)
    children = (await accounts.children_of(session, principal.user)
                if principal.role == Role.parent else [])
    moment = _parse_start(start)
    return {"profile": profile, "start": moment, "start_raw": start, "length": length,
            "zone": zone, "children": children,
            "weekday": WEEKDAYS[moment.astimezone(zones.zone(zone)).weekday()]}


@router.get("/app/book/{tutor_id}")
async def book_page(request: Request, tutor_id: uuid.UUID, principal: StudentOrParent,
                    session: SessionDep, start: str = "", length: int = 60,
                    tz: str | None = None) -> Response:
    zone = viewer_zone(principal, tz)
    try:
        context = await _book_context(session, principal, tutor_id, start, length, zone)
    except InvalidInput:
        return see_other(f"/tutors/{tutor_id}")
    return render(request, "app/book.html", **context)


@router.post("/app/book/{tutor_id}")
async def book_submit(request: Request, tutor_id: uuid.UUID, principal: StudentOrParent,
                      session: SessionDep, start: FormStr, length: FormStr,
                      zone: Annotated[str, Form()] = "UTC",
                      repeat: Annotated[str, Form()] = "once",
                      count: Annotated[str, Form()] = "4",
                      student_id: Annotated[str, Form()] = "") -> Response:
    """The booking form through the API's schemas (BookingIn, SeriesIn)."""
    settings = request.app.state.settings
    now = clock(request)
    shown_length = int(length) if length.isdigit() and len(length) < 4 else 60
    context: dict[str, Any] = {}
    try:
        moment = _parse_start(start)
        fields = {"tutor_id": tutor_id, "start": moment,
                  "length": int(length) if length.isdigit() else length,
                  "student_id": student_id or None}
        if repeat == "weekly":
            fields |= {"count": count, "mode": "available",
                       "time_zone": zone if zones.is_valid_zone(zone) else None}
        data = parse_form(schemas.SeriesIn if repeat == "weekly" else schemas.BookingIn, fields,
                          labels=BOOK_LABELS)
        context = await _book_context(session, principal, tutor_id, start, data.length, zone)
        child = data.student_id
        if principal.role == Role.parent and child is None:
            raise InvalidInput("student_id", "choose which child the lesson is for")
        if isinstance(data, schemas.SeriesIn):
            _, booked, _conflicts = await series.book_series(
                session, caller=principal.user, data=data, settings=settings, now=now)
            if not booked:
                raise bookings.SlotTaken("None of these weekly times is free: pick another slot.")
            first = booked[0]
            return see_other(f"/app/bookings/{first.id}?series={len(booked)}")
        booking = await bookings.book(session, caller=principal.user, tutor_id=tutor_id,
                                      start=data.start, length=data.length, student_id=child,
                                      settings=settings, now=now)
    except AppError as error:
        if not context:
            try:
                context = await _book_context(session, principal, tutor_id, start, shown_length,
                                              zone)
            except AppError:
                context = {}
        return await form_failed(session, request, "app/book.html", error, labels=BOOK_LABELS,
                                 **context)
    return see_other(f"/app/bookings/{booking.id}")


async def _booking_context(request: Request, session: AsyncSession, principal: Any,
                           booking_id: uuid.UUID) -> dict[str, Any]:
    booking = await bookings.get_for(session, booking_id, principal.user)
    (row,) = await describe(session, [booking])
    now = clock(request)
    context: dict[str, Any] = {"d": row, "b": booking, "zone": principal.user.time_zone,
                               "now": now, "user": principal.user,
                               "is_tutor": booking.tutor_user_id == principal.id,
                               "plans": request.app.state.settings.billing_plans}
    if booking.status == BookingStatus.held and principal.role in (Role.student, Role.parent):
        context.update(await wallet_summary(session, principal.user, now))
        # back from a checkout: the payment is being confirmed, never offered again
        context["confirming"] = bool(request.query_params.get("paid"))
        context["series_held"] = 1
        if booking.series_id is not None:
            context["series_held"] = await bookings.held_in_series(
                session, booking.series_id, booking.student_id)
    if booking.series_id is not None:
        context["series_rows"] = await describe(
            session, await bookings.of_series(session, booking.series_id))
    return context


@router.get("/app/bookings/{booking_id}")
async def booking_page(request: Request, booking_id: uuid.UUID, principal: CurrentPrincipal,
                       session: SessionDep) -> Response:
    return render(request, "app/booking.html",
                  **await _booking_context(request, session, principal, booking_id))


@router.get("/app/bookings/{booking_id}/payment")
async def payment_panel(request: Request, booking_id: uuid.UUID, principal: CurrentPrincipal,
                        session: SessionDep) -> Response:
    """The live payment state, polled by a held booking's page: 204 (nothing to
    change) while the booking is held, else (paid, or the hold ended) the booking
    page itself, loaded in full (`HX-Redirect`)."""
    booking = await bookings.get_for(session, booking_id, principal.user)
    if booking.status == BookingStatus.held:
        return Response(status_code=204)
    return Response(status_code=200, headers={"HX-Redirect": f"/app/bookings/{booking_id}?paid=1"})


@router.post("/app/bookings/{booking_id}/pay")
async def pay_with_credit(request: Request, booking_id: uuid.UUID, principal: StudentOrParent,
                          session: SessionDep) -> Response:
    from tutorapp.billing import bookings as billing

    try:
        await billing.pay_with_credit(session, request.app.state.settings, booking_id,
                                      principal.user, now=clock(request))
    except AppError as error:
        return await form_failed(session, request, "app/booking.html", error,
                                 **await _booking_context(request, session, principal, booking_id))
    return see_other(f"/app/bookings/{booking_id}?paid=1")


@router.post("/app/bookings/{booking_id}/checkout")
async def start_checkout(request: Request, booking_id: uuid.UUID, principal: StudentOrParent,
                         session: SessionDep, plan: FormStr) -> Response:
    from tutorapp.billing.api import start_checkout as start

    try:
        started = await start(request, session, principal.user, plan_key=plan,
                              booking_id=booking_id)
    except AppError as error:
        return await form_failed(session, request, "app/booking.html", error,
                                 **await _booking_context(request, session, principal, booking_id))
    return see_other(started.url)


@router.get("/app/bookings/{booking_id}/cancel")
async def cancel_page(request: Request, booking_id: uuid.UUID, principal: CurrentPrincipal,
                      session: SessionDep) -> Response:
    context = await _booking_context(request, session, principal, booking_id)
    context["refund"] = await bookings.cancellation_refunds(session, context["b"], principal.user,
                                                            context["now"])
    return render(request, "app/cancel.html", **context)


@router.post("/app/bookings/{booking_id}/cancel")
async def cancel_submit(request: Request, booking_id: uuid.UUID, principal: CurrentPrincipal,
                        session: SessionDep, scope: Annotated[str, Form()] = "this",
                        reason: Annotated[str, Form()] = "") -> Response:
    try:
        data = parse_form(schemas.CancelIn, {"reason": reason, "scope": scope},
                          labels={"reason": "Reason", "scope": "Which lessons"})
        await bookings.cancel(session, booking_id, principal.user, now=clock(request),
                              reason=data.reason or None, scope=data.scope)
    except AppError as error:
        context = await _booking_context(request, session, principal, booking_id)
        context["refund"] = False
        return await form_failed(session, request, "app/cancel.html", error, **context)
    return see_other(f"/app/bookings/{booking_id}")


@router.get("/app/bookings/{booking_id}/reschedule")
async def reschedule_page(request: Request, booking_id: uuid.UUID, principal: CurrentPrincipal,
                          session: SessionDep, week: str | None = None) -> Response:
    context = await _booking_context(request, session, principal, booking_id)
    profile = context["d"]["profile"]
    zone = principal.user.time_zone
    today = datetime.now(zones.zone(zone)).date()
    start_day = max(browse_day(week, today), today)
    context["days"] = await slot_days(request, session, profile, zone, start_day,
                                       context["b"].length)
    context["next_week"] = start_day + timedelta(days=7)
    return render(request, "app/reschedule.html", **context)


@router.post("/app/bookings/{booking_id}/reschedule")
async def reschedule_submit(request: Request, booking_id: uuid.UUID, principal: CurrentPrincipal,
                            session: SessionDep, start: FormStr) -> Response:
    try:
        await bookings.reschedule(session, booking_id, principal.user, start=_parse_start(start),
                                  settings=request.app.state.settings, now=clock(request))
    except AppError as error:
        context = await _booking_context(request, session, principal, booking_id)
        context["days"], context["next_week"] = [], None
        return await form_failed(session, request, "app/reschedule.html", error, **context)
    return see_other(f"/app/bookings/{booking_id}?moved=1")


@router.post("/app/bookings/{booking_id}/review")
async def review_submit(request: Request, booking_id: uuid.UUID, principal: StudentOrParent,
                        session: SessionDep, stars: FormStr,
                        text: Annotated[str, Form()] = "") -> Response:
    try:
        data = parse_form(review_schemas.ReviewIn,
                          {"stars": int(stars) if stars.isdigit() else stars, "text": text},
                          labels={"stars": "Stars", "text": "Your review"})
        await reviews.create(session, booking_id, principal.user, data, now=clock(request))
    except AppError as error:
        return await form_failed(session, request, "app/booking.html", error,
                                 **await _booking_context(request, session, principal, booking_id))
    return see_other(f"/app/bookings/{booking_id}?reviewed=1")


# --- calendar ---------------------------------------------------------------------------


@router.get("/app/calendar")
async def calendar_page(request: Request, principal: CurrentPrincipal, session: SessionDep,
                        week: str | None = None) -> Response:
    """The week's lessons, one column per day, in the viewer's zone."""
    zone = principal.user.time_zone
    tz = zones.zone(zone)
    today = datetime.now(tz).date()
    start_day = browse_day(week, today - timedelta(days=today.weekday()))
    start = datetime.combine(start_day, datetime.min.time(), tz)
    rows = await describe(session, await bookings.list_for(
        session, principal.user, start=start, end=start + timedelta(days=7)))
    days: list[tuple[date, list[dict[str, Any]]]] = [
        (start_day + timedelta(days=i), []) for i in range(7)]
    for row in rows:
        if row["b"].status in (BookingStatus.cancelled, BookingStatus.expired):
            continue
        local = row["b"].start_at.astimezone(tz).date()
        for day, items in days:
            if day == local:
                items.append(row)
    return render(request, "app/calendar.html", days=days, zone=zone, today=today,
                  prev_week=start_day - timedelta(days=7), next_week=start_day + timedelta(days=7),
                  feed_url=request.query_params.get("feed"))


@router.post("/app/calendar/feed")
async def calendar_feed(request: Request, principal: CurrentPrincipal,
                        session: SessionDep) -> Response:
    """A new secret ICS feed URL for calendar apps (the previous one stops working)."""
    from urllib.parse import urlencode

    url = await calendar.regenerate_feed(session, principal.user,
                                         settings=request.app.state.settings)
    return see_other("/app/calendar?" + urlencode({"feed": url}))


# --- the tutor's side -------------------------------------------------------------------


@router.post("/app/bookings/{booking_id}/{action}")
async def tutor_action(request: Request, booking_id: uuid.UUID, action: str,
                       principal: TutorPrincipal, session: SessionDep,
                       notes: Annotated[str, Form()] = "",
                       next: Annotated[str, Form()] = "") -> Response:
    now = clock(request)
    try:
        if action == "accept":
            await bookings.approve(session, booking_id, principal.user)
        elif action == "decline":
            await bookings.decline(session, booking_id, principal.user)
        elif action == "complete":
            await bookings.complete(session, booking_id, principal.user, now=now)
        elif action == "notes":
            data = parse_form(schemas.NotesIn, {"notes": notes}, labels={"notes": "Notes"})
            await bookings.set_notes(session, booking_id, principal.user, data.notes)
        else:
            raise NotFound("No such action.")
    except AppError as error:
        return await form_failed(session, request, "app/booking.html", error,
                                 **await _booking_context(request, session, principal, booking_id))
    return see_other(safe_next(next) if next else f"/app/bookings/{booking_id}")


def _rules_form(out: schemas.AvailabilityOut) -> dict[str, Any]:
    return {"rules": out.rules, "overrides": out.overrides}


@router.get("/app/availability")
async def availability_page(request: Request, principal: TutorPrincipal,
                            session: SessionDep) -> Response:
    profile = await tutors.profile_of_user(session, principal.id)
    if profile is None:
        return see_other("/app/profile")
    out = await availability.get_availability(session, profile)
    return render(request, "app/availability.html", profile=profile, weekdays=WEEKDAYS,
                  **_rules_form(out))


@router.post("/app/availability")
async def availability_submit(request: Request, principal: TutorPrincipal,
                              session: SessionDep) -> Response:
    """The whole week in one form: per weekday up to 3 ranges, plus date overrides."""
    profile = await tutors.own_profile(session, principal.id)
    form = await request.form()
    rules: list[dict[str, Any]] = []
    overrides: list[dict[str, Any]] = []
    labels: dict[str, str] = {"rules": "Weekly hours", "overrides": "Date",
                              "overrides.day": "", "start": "from", "end": "to"}
    problems: list[str] = []  # a half-filled row is refused, never dropped
    for day in range(7):
        for n in range(3):
            start = str(form.get(f"d{day}_{n}_start") or "").strip()
            end = str(form.get(f"d{day}_{n}_end") or "").strip()
            if not (start or end):
                continue
            where = f"{WEEKDAYS[day]}, range {n + 1}"
            if not (start and end):
                problems.append(f"{where}: give both a start and an end time.")
                continue
            labels[f"rules[{len(rules)}]"] = where
            rules.append({"weekday": day, "start": start,
                          "end": "24:00" if end == "23:59" else end})
    for n in range(OVERRIDE_ROWS_MAX):
        date_text = str(form.get(f"o{n}_date") or "").strip()
        start = str(form.get(f"o{n}_start") or "").strip()
        end = str(form.get(f"o{n}_end") or "").strip()
        if not (date_text or start or end):
            continue
        if not date_text:
            problems.append(f"Date {n + 1}: give the date of these hours.")
            continue
        if bool(start) != bool(end):
            problems.append(f"Date {n + 1}: give both a start and an end time, or neither "
                            "for a whole day off.")
            continue
        labels[f"overrides[{len(overrides)}]"] = f"Date {n + 1}"
        item: dict[str, Any] = {"day": date_text, "kind": str(form.get(f"o{n}_kind") or "off")}
        if start:
            item.update(start=start, end=end)
        overrides.append(item)
    try:
        if problems:
            raise FormProblem(" ".join(problems))
        body = parse_form(schemas.AvailabilityIn, {"rules": rules, "overrides": overrides},
                          labels=labels)
        await availability.set_availability(session, profile, body, actor_id=principal.id)
    except AppError as error:
        out = await availability.get_availability(session, profile)
        return await form_failed(session, request, "app/availability.html", error,
                                 profile=profile, weekdays=WEEKDAYS, **_rules_form(out))
    return see_other("/app/availability?saved=1")
