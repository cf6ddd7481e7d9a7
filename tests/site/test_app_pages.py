"""The web app's pages through httpx (fast, both dialects): booking flow, dashboard,
cancel with its consequence, the tutor's editor and availability, children, account,
and the back office with its confirmation pages and audit rows."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlparse

import httpx
from sqlalchemy import select

from tests.accounts.test_browser_sessions import HTML, browser_login, csrf_of
from tests.factories import make_user, totp_code
from tests.scheduling.conftest import Market, approved_tutor, market  # noqa: F401
from tutorapp.auth.roles import Role
from tutorapp.core.audit import AuditEvent

WEEKDAYS = [{"weekday": d, "start": "08:00", "end": "20:00"} for d in range(7)]


async def first_slot(client: httpx.AsyncClient, tutor_id: str, week_offset: int = 1) -> dict:
    """A slot link of the tutor's page, a week or more ahead (free cancellation applies)."""
    week = (datetime.now() + timedelta(days=7 * week_offset)).date().isoformat()
    page = await client.get(f"/tutors/{tutor_id}", params={"week": week, "tz": "Europe/Paris"},
                            headers=HTML)
    href = re.search(r'href="(/app/book/[^"]+)"', page.text).group(1).replace("&amp;", "&")
    return {k: v[0] for k, v in parse_qs(urlparse(href).query).items()} | {"path": href}


async def test_student_books_sees_the_lesson_and_is_shown_the_cancellation_rule(
    app, client: httpx.AsyncClient, market: Market, db
) -> None:
    _, tutor_id = await approved_tutor(app, client, market, rules=WEEKDAYS, name="Grace Hopper")
    student = await make_user(db, display_name="Sam", time_zone="Europe/Paris")
    await browser_login(client, student.email)
    slot = await first_slot(client, tutor_id)
    page = await client.get(slot["path"], headers=HTML)
    assert page.status_code == 200 and "Book a lesson" in page.text
    assert "(Europe/Paris)" in page.text
    booked = await client.post(f"/app/book/{tutor_id}", headers=HTML, data={
        "start": slot["start"], "length": slot["length"], "zone": "Europe/Paris",
        "repeat": "once", "csrf_token": csrf_of(page)})
    assert booked.status_code == 303, booked.text[:500]
    booking = await client.get(booked.headers["location"], headers=HTML)
    assert "Lesson booked" in booking.text and "Add to calendar" in booking.text
    home = await client.get("/app", headers=HTML)
    assert "Grace Hopper" in home.text and "Confirmed" in home.text
    cancel = await client.get(booked.headers["location"] + "/cancel", headers=HTML)
    assert "Free cancellation" in cancel.text
    done = await client.post(booked.headers["location"] + "/cancel", headers=HTML,
                             data={"scope": "this", "csrf_token": csrf_of(cancel)})
    assert done.status_code == 303
    assert "Cancelled" in (await client.get(done.headers["location"], headers=HTML)).text
    taken = await client.post(f"/app/book/{tutor_id}", headers=HTML, data={
        "start": "not a time", "length": slot["length"], "csrf_token": csrf_of(cancel)})
    assert taken.status_code == 422 and "pick a slot" in taken.text


async def test_weekly_series_and_a_parent_booking_for_a_child(
    app, client: httpx.AsyncClient, market: Market, db
) -> None:
    _, tutor_id = await approved_tutor(app, client, market, rules=WEEKDAYS)
    parent = await make_user(db, role=Role.parent)
    await browser_login(client, parent.email)
    children = await client.get("/app/children", headers=HTML)
    added = await client.post("/app/children", headers=HTML, data={
        "display_name": "Kiran", "time_zone": "", "csrf_token": csrf_of(children)})
    assert added.status_code == 303
    slot = await first_slot(client, tutor_id)
    page = await client.get(slot["path"], headers=HTML)
    child_id = re.search(r'<option value="([0-9a-f-]{36})">Kiran</option>', page.text).group(1)
    booked = await client.post(f"/app/book/{tutor_id}", headers=HTML, data={
        "start": slot["start"], "length": slot["length"], "zone": "UTC", "repeat": "weekly",
        "count": "3", "student_id": child_id, "csrf_token": csrf_of(page)})
    assert booked.status_code == 303 and "series=3" in booked.headers["location"]
    home = await client.get("/app", headers=HTML)
    assert home.text.count("Kiran") >= 3 and "Family wallet" in home.text


async def test_tutor_edits_profile_with_preview_and_sets_availability(
    app, client: httpx.AsyncClient, market: Market, db
) -> None:
    tutor = await make_user(db, role=Role.tutor)
    await browser_login(client, tutor.email)
    editor = await client.get("/app/profile", headers=HTML)
    assert editor.status_code == 200
    preview = await client.post("/app/profile/preview", headers={**HTML, "HX-Request": "true"},
                                data={"bio_markdown": "I *love* maths",
                                      "csrf_token": csrf_of(editor)})
    assert "<em>love</em>" in preview.text
    saved = await client.post("/app/profile", headers=HTML, data={
        "display_name": "Ada", "headline": "Maths", "bio_markdown": "Hi",
        f"subject_{market.subjects['mathematics/algebra']}": "secondary", "languages": "en",
        "time_zone": "Europe/London",
        "lesson_lengths": "60", "free_cancellation_hours": "24", "submit_for_review": "1",
        "csrf_token": csrf_of(editor)})
    assert saved.status_code == 303, saved.text[:800]
    assert "Submitted" in (await client.get("/app/profile?saved=1", headers=HTML)).text
    bad = await client.post("/app/profile", headers=HTML, data={
        "display_name": "Ada", "time_zone": "Mars/Olympus", "lesson_lengths": "60",
        "csrf_token": csrf_of(editor)})
    assert bad.status_code == 422 and "IANA time zone" in bad.text
    page = await client.get("/app/availability", headers=HTML)
    data = {"csrf_token": csrf_of(page), "d0_0_start": "09:00", "d0_0_end": "23:59",
            "o0_date": "2030-01-07", "o0_kind": "off"}
    assert (await client.post("/app/availability", headers=HTML, data=data)).status_code == 303
    rules = (await client.get("/api/v1/tutors/me/availability")).json()
    assert rules["rules"] == [{"weekday": 0, "start": "09:00", "end": "24:00"}]
    assert rules["overrides"][0]["kind"] == "off"


async def test_back_office_confirms_and_audits_role_changes(
    app, client: httpx.AsyncClient, market: Market, db
) -> None:
    await approved_tutor(app, client, market, rules=WEEKDAYS)
    admin = await make_user(db, role=Role.admin, totp=True)
    target = await make_user(db, display_name="Riley")
    await browser_login(client, admin.email)
    page = await client.get("/app/mfa", headers=HTML)
    await client.post("/app/mfa", headers=HTML, data={
        "code": totp_code(admin), "next": "/admin", "csrf_token": csrf_of(page)})
    for path in ("/admin", "/admin/tutors", "/admin/users", "/admin/bookings", "/admin/billing",
                 "/admin/audit"):
        response = await client.get(path, headers=HTML)
        assert response.status_code == 200, path
        assert 'href="/admin/jobs"' in response.text
    confirm = await client.get(f"/admin/users/{target.user.id}/role", params={"role": "tutor"},
                               headers=HTML)
    assert "Make Riley a tutor?" in confirm.text and "audit log" in confirm.text
    done = await client.post(f"/admin/users/{target.user.id}/role", headers=HTML, data={
        "role": "tutor", "csrf_token": csrf_of(confirm)})
    assert done.status_code == 303
    async with db.session() as session:
        event = await session.scalar(select(AuditEvent).where(
            AuditEvent.action == "user.role_changed",
            AuditEvent.subject_id == str(target.user.id)))
    assert event is not None and event.data["new"] == "tutor"


async def test_account_page_changes_zone_and_exports(client: httpx.AsyncClient, db) -> None:
    user = await make_user(db)
    await browser_login(client, user.email)
    page = await client.get("/app/account", headers=HTML)
    saved = await client.post("/app/account/profile", headers=HTML, data={
        "display_name": "New Name", "time_zone": "Asia/Kolkata", "csrf_token": csrf_of(page)})
    assert saved.status_code == 303
    bad = await client.post("/app/account/profile", headers=HTML, data={
        "display_name": "New Name", "time_zone": "Mars/Base", "csrf_token": csrf_of(page)})
    assert bad.status_code == 422
    export = await client.get("/app/account/export", headers=HTML)
    assert export.json()["user"]["time_zone"] == "Asia/Kolkata"
    assert "attachment" in export.headers["content-disposition"]


async def test_reschedule_and_the_calendar_with_its_feed(
    app, client: httpx.AsyncClient, market: Market, db
) -> None:
    _, tutor_id = await approved_tutor(app, client, market, rules=WEEKDAYS, name="Grace Hopper")
    student = await make_user(db, time_zone="UTC")
    await browser_login(client, student.email)
    slot = await first_slot(client, tutor_id)
    page = await client.get(slot["path"], headers=HTML)
    booked = await client.post(f"/app/book/{tutor_id}", headers=HTML, data={
        "start": slot["start"], "length": slot["length"], "zone": "UTC", "repeat": "once",
        "csrf_token": csrf_of(page)})
    booking_path = booked.headers["location"]
    move = await client.get(booking_path + "/reschedule", headers=HTML,
                            params={"week": (datetime.now() + timedelta(days=14)).date().isoformat()})
    new_start = re.search(r'name="start" value="([^"]+)"', move.text).group(1)
    moved = await client.post(booking_path + "/reschedule", headers=HTML,
                              data={"start": new_start, "csrf_token": csrf_of(move)})
    assert moved.status_code == 303 and moved.headers["location"].endswith("?moved=1")
    week = datetime.fromisoformat(new_start).date().isoformat()
    calendar = await client.get("/app/calendar", params={"week": week}, headers=HTML)
    assert "Grace Hopper" in calendar.text
    feed = await client.post("/app/calendar/feed", headers=HTML,
                             data={"csrf_token": csrf_of(calendar)})
    assert feed.status_code == 303
    url = parse_qs(urlparse(feed.headers["location"]).query)["feed"][0]
    ics = await client.get(urlparse(url).path)
    assert ics.status_code == 200 and "BEGIN:VEVENT" in ics.text


async def test_tutor_accepts_a_request_marks_it_taught_and_the_student_reviews(
    app, client: httpx.AsyncClient, market: Market, db
) -> None:
    await approved_tutor(app, client, market, rules=WEEKDAYS)  # the market's first tutor
    tutor = await make_user(db, role=Role.tutor, display_name="Alan")
    student = await make_user(db, display_name="Sam")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as tutor_http:
        await browser_login(tutor_http, tutor.email)
        editor = await tutor_http.get("/app/profile", headers=HTML)
        saved = await tutor_http.post("/app/profile", headers=HTML, data={
            "display_name": "Alan", "headline": "Logic", "bio_markdown": "Logic and sets.",
            f"subject_{market.subjects['mathematics']}": "adult",
            "time_zone": "UTC", "lesson_lengths": "60",
            "requires_approval": "on", "submit_for_review": "1", "csrf_token": csrf_of(editor)})
        assert saved.status_code == 303, re.findall(r'role="alert">([^<]+)', saved.text)
        me = (await tutor_http.get("/api/v1/tutors/me")).json()
        assert "id" in me, me
        tutor_id = me["id"]
        approved = await client.post(f"/api/v1/admin/tutors/{tutor_id}/approve",
                                     headers=market.admin.headers)
        assert approved.status_code == 200
        page = await tutor_http.get("/app/availability", headers=HTML)
        await tutor_http.post("/app/availability", headers=HTML, data={
            "csrf_token": csrf_of(page),
            **{f"d{d}_0_start": "08:00" for d in range(7)},
            **{f"d{d}_0_end": "20:00" for d in range(7)}})

        await browser_login(client, student.email)
        slot = await first_slot(client, tutor_id)
        page = await client.get(slot["path"], headers=HTML)
        booked = await client.post(f"/app/book/{tutor_id}", headers=HTML, data={
            "start": slot["start"], "length": slot["length"], "zone": "UTC",
            "csrf_token": csrf_of(page)})
        booking_path = booked.headers["location"]
        assert "Waiting for the tutor" in (await client.get(booking_path, headers=HTML)).text

        home = await tutor_http.get("/app", headers=HTML)
        assert "Booking requests" in home.text and "Sam" in home.text
        accepted = await tutor_http.post(booking_path + "/accept", headers=HTML,
                                         data={"next": "/app", "csrf_token": csrf_of(home)})
        assert accepted.status_code == 303 and accepted.headers["location"] == "/app"
        assert "Lesson booked" in (await client.get(booking_path, headers=HTML)).text

        later = datetime.fromisoformat(slot["start"]) + timedelta(hours=2)
        app.state.clock = lambda: later
        detail = await tutor_http.get(booking_path, headers=HTML)
        taught = await tutor_http.post(booking_path + "/complete", headers=HTML,
                                       data={"csrf_token": csrf_of(detail)})
        assert taught.status_code == 303
        review_page = await client.get(booking_path, headers=HTML)
        assert "Review the lesson" in review_page.text
        reviewed = await client.post(booking_path + "/review", headers=HTML, data={
            "stars": "5", "text": "Clear and kind.", "csrf_token": csrf_of(review_page)})
        assert reviewed.status_code == 303
        del app.state.clock
        public = await client.get(f"/tutors/{tutor_id}", headers=HTML)
        assert "Clear and kind." in public.text
