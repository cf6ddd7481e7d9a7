"""Bad form input gets a human sentence on the page and loses nothing silently
(issue 14 item 12): the pages validate with the API's schemas, so limits are the
same, and pydantic's developer output ("1 validation error for SeriesIn", "String
should match pattern", "Input should be a valid UUID") never reaches a page."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.accounts.test_browser_sessions import HTML, browser_login, csrf_of
from tests.factories import make_user
from tests.scheduling.conftest import Market, approved_tutor, market  # noqa: F401
from tests.site.test_app_pages import WEEKDAYS, first_slot
from tutorapp.auth.roles import Role

DEVELOPER = re.compile(r"validation error for|String should|Input should|Value error|"
                       r"\^https|\[type=|pydantic", re.IGNORECASE)


def alert(page: httpx.Response) -> str:
    match = re.search(r'<div class="alert error" role="alert">(.*?)</div>', page.text, re.S)
    assert match, page.text[:800]
    text = match.group(1).replace("&#39;", "'").replace("&amp;", "&")
    assert not DEVELOPER.search(page.text), DEVELOPER.search(page.text)
    return text


async def signup(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await client.get("/app/signup", headers=HTML)
    data = {"display_name": "Ada", "email": "ada@example.com",
            "password": "correct horse battery staple", "role": "student",
            "time_zone": "Europe/London", "csrf_token": csrf_of(page)} | fields
    return await client.post("/app/signup", headers=HTML, data=data)


@pytest.mark.parametrize(("fields", "sentence"), [
    ({"email": "not-an-email"}, "Email is not a valid email address."),
    ({"display_name": "A" * 5000}, "Your name must be at most 100 characters."),
    ({"display_name": "   "}, "Your name is required."),
    ({"display_name": "Ada\u0000"}, "Your name must not contain control characters"),
    ({"password": "p" * 300}, "Password must be at most 128 characters."),
    ({"time_zone": "Mars/Olympus"}, "Time zone is not a known IANA time zone"),
    ({"role": "admin"}, "I am must be one of: student, parent or tutor."),
])
async def test_signup_refuses_with_a_sentence_and_keeps_nothing(
    client: httpx.AsyncClient, db, fields: dict, sentence: str
) -> None:
    response = await signup(client, **fields)
    assert response.status_code == 422
    assert sentence in alert(response)
    assert "tutorapp_session" not in response.headers.get("set-cookie", "")


async def test_signup_offers_time_zones_as_a_choice(client: httpx.AsyncClient) -> None:
    page = await client.get("/app/signup", headers=HTML)
    assert '<select id="f-time_zone" name="time_zone"' in page.text
    assert '<option value="America/Argentina/Salta"' in page.text
    assert '<option value="UTC" selected>' in page.text


async def test_account_page_refuses_an_unknown_zone_and_a_long_name(
    client: httpx.AsyncClient, db
) -> None:
    user = await make_user(db, display_name="Sam")
    await browser_login(client, user.email)
    page = await client.get("/app/account", headers=HTML)
    assert '<option value="UTC" selected>' in page.text
    bad = await client.post("/app/account/profile", headers=HTML, data={
        "display_name": "S" * 101, "time_zone": "Mars/Olympus", "csrf_token": csrf_of(page)})
    assert bad.status_code == 422
    message = alert(bad)
    assert "Name must be at most 100 characters." in message
    assert "Time zone is not a known IANA time zone" in message
    again = await client.get("/app/account", headers=HTML)
    assert 'value="Sam"' in again.text


async def test_children_page_refuses_control_characters(client: httpx.AsyncClient, db) -> None:
    parent = await make_user(db, role=Role.parent)
    await browser_login(client, parent.email)
    page = await client.get("/app/children", headers=HTML)
    bad = await client.post("/app/children", headers=HTML, data={
        "display_name": "Ki\u0000ran", "time_zone": "", "csrf_token": csrf_of(page)})
    assert bad.status_code == 422
    assert "Child's name must not contain control characters" in alert(bad)


@pytest.mark.parametrize(("count", "sentence"), [
    ("1", "Number of weekly lessons must be at least 2."),
    ("60", "Number of weekly lessons must be at most 52."),
    ("four", "Number of weekly lessons must be a whole number."),
])
async def test_a_weekly_series_with_a_bad_count_says_so(
    app, client: httpx.AsyncClient, market: Market, db, count: str, sentence: str
) -> None:
    _, tutor_id = await approved_tutor(app, client, market, rules=WEEKDAYS)
    student = await make_user(db)
    await browser_login(client, student.email)
    slot = await first_slot(client, tutor_id)
    page = await client.get(slot["path"], headers=HTML)
    response = await client.post(f"/app/book/{tutor_id}", headers=HTML, data={
        "start": slot["start"], "length": slot["length"], "zone": "UTC", "repeat": "weekly",
        "count": count, "csrf_token": csrf_of(page)})
    assert response.status_code == 422
    assert sentence in alert(response)


async def tutor_editor(app, client: httpx.AsyncClient, market: Market, db) -> httpx.Response:
    tutor = await make_user(db, role=Role.tutor)
    await browser_login(client, tutor.email)
    return await client.get("/app/profile", headers=HTML)


@pytest.mark.parametrize(("fields", "sentence"), [
    ({"meeting_link": "http://meet.example.com/room"}, "Meeting link must be an https:// link"),
    ({"time_zone": "Mars/Olympus"}, "Your time zone is not a known IANA time zone"),
    ({"headline": "H" * 201}, "Headline must be at most 200 characters."),
])
async def test_the_profile_editor_explains_each_refusal(
    app, client: httpx.AsyncClient, market: Market, db, fields: dict, sentence: str
) -> None:
    page = await tutor_editor(app, client, market, db)
    assert '<select id="f-time_zone" name="time_zone"' in page.text
    data = {"display_name": "Tom", "headline": "Maths", "bio_markdown": "Hi",
            "hourly_rate": "35", "currency": "EUR", "time_zone": "Europe/Madrid",
            "lesson_lengths": "60", "free_cancellation_hours": "24",
            "csrf_token": csrf_of(page)} | fields
    response = await client.post("/app/profile", headers=HTML, data=data)
    assert response.status_code == 422
    assert sentence in alert(response)


AVAILABILITY_CASES = [
    ({"d0_0_start": "09:00"}, "Monday, range 1: give both a start and an end time."),
    ({"d1_0_start": "25:99", "d1_0_end": "26:00"}, "must be a time such as 09:30"),
    ({"d2_0_start": "09:00", "d2_0_end": "12:00", "d2_1_start": "11:00", "d2_1_end": "14:00"},
     "Wednesday: 09:00-12:00 and 11:00-14:00 overlap."),
    ({"d3_0_start": "12:00", "d3_0_end": "10:00"}, "end must be after start"),
    ({"o0_date": "2026-02-31", "o0_kind": "off"}, "Date 1 must be a date such as 2026-05-31."),
    ({"o0_date": "2027-03-01", "o0_kind": "extra", "o0_start": "10:00"},
     "Date 1: give both a start and an end time"),
    ({"o0_kind": "extra", "o0_start": "10:00", "o0_end": "11:00"},
     "Date 1: give the date of these hours."),
]


@pytest.mark.parametrize(("fields", "sentence"), AVAILABILITY_CASES)
async def test_availability_refuses_what_it_would_have_dropped(
    app, client: httpx.AsyncClient, market: Market, db, fields: dict, sentence: str
) -> None:
    tutor = await make_user(db, role=Role.tutor)
    await browser_login(client, tutor.email)
    saved = await client.post("/app/profile", headers=HTML, data={
        "display_name": "Tom", "headline": "Maths", "bio_markdown": "Hi", "hourly_rate": "35",
        "currency": "EUR", "time_zone": "Europe/Madrid", "lesson_lengths": "60",
        "free_cancellation_hours": "24",
        "csrf_token": csrf_of(await client.get("/app/profile", headers=HTML))})
    assert saved.status_code == 303, saved.text[:500]
    page = await client.get("/app/availability", headers=HTML)
    data = {"d4_0_start": "08:00", "d4_0_end": "10:00", "csrf_token": csrf_of(page)} | fields
    response = await client.post("/app/availability", headers=HTML, data=data)
    assert response.status_code == 422, response.text[:300]
    assert sentence in alert(response)
    after = await client.get("/app/availability", headers=HTML)
    assert 'value="08:00"' not in after.text  # nothing of the refused form was saved


async def test_availability_keeps_a_day_off_and_ranges_that_touch(
    client: httpx.AsyncClient, db
) -> None:
    tutor = await make_user(db, role=Role.tutor)
    await browser_login(client, tutor.email)
    saved = await client.post("/app/profile", headers=HTML, data={
        "display_name": "Tom", "headline": "Maths", "bio_markdown": "Hi", "hourly_rate": "35",
        "currency": "EUR", "time_zone": "Europe/Madrid", "lesson_lengths": "60",
        "free_cancellation_hours": "24",
        "csrf_token": csrf_of(await client.get("/app/profile", headers=HTML))})
    assert saved.status_code == 303
    page = await client.get("/app/availability", headers=HTML)
    response = await client.post("/app/availability", headers=HTML, data={
        "d0_0_start": "09:00", "d0_0_end": "12:00", "d0_1_start": "12:00", "d0_1_end": "23:59",
        "o0_date": "2030-01-07", "o0_kind": "off",
        "o1_date": "2030-01-08", "o1_kind": "extra", "o1_start": "07:00", "o1_end": "08:00",
        "o2_date": "2030-01-08", "o2_kind": "extra", "o2_start": "08:00", "o2_end": "09:00",
        "csrf_token": csrf_of(page)})
    assert response.status_code == 303, alert(response)
    rules = (await client.get("/api/v1/tutors/me/availability")).json()
    assert rules["rules"] == [{"weekday": 0, "start": "09:00", "end": "12:00"},
                              {"weekday": 0, "start": "12:00", "end": "24:00"}]
    assert [(o["day"], o["kind"], o["start"]) for o in rules["overrides"]] == [
        ("2030-01-07", "off", None), ("2030-01-08", "extra", "07:00"),
        ("2030-01-08", "extra", "08:00")]


async def test_a_cancellation_reason_with_nul_is_refused_not_cut(
    app, client: httpx.AsyncClient, market: Market, db
) -> None:
    _, tutor_id = await approved_tutor(app, client, market, rules=WEEKDAYS)
    student = await make_user(db)
    await browser_login(client, student.email)
    slot = await first_slot(client, tutor_id)
    page = await client.get(slot["path"], headers=HTML)
    booked = await client.post(f"/app/book/{tutor_id}", headers=HTML, data={
        "start": slot["start"], "length": slot["length"], "zone": "UTC", "repeat": "once",
        "csrf_token": csrf_of(page)})
    assert booked.status_code == 303
    cancel = await client.get(booked.headers["location"] + "/cancel", headers=HTML)
    for reason, sentence in [("ill\u0000", "Reason must not contain control characters."),
                             ("r" * 501, "Reason must be at most 500 characters.")]:
        refused = await client.post(booked.headers["location"] + "/cancel", headers=HTML,
                                    data={"scope": "this", "reason": reason,
                                          "csrf_token": csrf_of(cancel)})
        assert refused.status_code == 422
        assert sentence in alert(refused)
    assert "Cancelled" not in (await client.get(booked.headers["location"], headers=HTML)).text
