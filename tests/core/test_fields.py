"""Out-of-range and unstorable input is a 422 naming the field, never a 500 (issue 14
items 9 and 10): dates far in the future or past, integers beyond the columns, crafted
search cursors, NUL and other control characters in any text field; and a correctly
signed webhook is stored even when its fields are odd."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Annotated

import httpx
import pytest

from tests.billing.conftest import deliver, order_event
from tests.factories import make_user
from tests.scheduling.conftest import Market, approved_tutor, market, profile_body, sign_in  # noqa: F401
from tutorapp.auth.roles import Role
from tutorapp.core.fields import Text, time_zones

WEEKDAYS = [{"weekday": d, "start": "08:00", "end": "20:00"} for d in range(7)]
PROBLEM = "application/problem+json"


def assert_field(response: httpx.Response, field: str, location: str | None = None) -> str:
    assert response.status_code == 422, (response.status_code, response.text[:400])
    assert response.headers["content-type"] == PROBLEM
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == [field], errors
    if location:
        assert errors[0]["location"] == location
    return errors[0]["message"]


def cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


# --- item 9: ranges -------------------------------------------------------------------


@pytest.mark.parametrize("start", ["9999-12-31T10:00:00Z", "0001-01-01T10:00:00Z",
                                   "2150-06-01T10:00:00+02:00"])
async def test_booking_series_and_reschedule_refuse_a_start_outside_the_date_window(
    app, client: httpx.AsyncClient, market: Market, start: str
) -> None:
    _, tutor_id = await approved_tutor(app, client, market, rules=WEEKDAYS)
    student = await sign_in(app, role=Role.student)
    body = {"tutor_id": tutor_id, "start": start, "length": 60}
    message = assert_field(await client.post("/api/v1/bookings", json=body,
                                             headers=student.headers), "start", "body")
    assert message == "must be between 2000-01-01 and 2099-12-31"
    assert_field(await client.post("/api/v1/series", json=body | {"count": 3},
                                   headers=student.headers), "start")
    assert_field(await client.post(f"/api/v1/bookings/{uuid.uuid4()}/reschedule",
                                   json={"start": start}, headers=student.headers), "start")


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "9999-12-31", "to": "9999-12-31"}, "from"),
    ({"from": "0001-01-01", "to": "0001-01-02"}, "from"),
    ({"from": "2026-01-01", "to": "9999-12-31T23:00"}, "to"),
    ({"from": "2026-01-01", "to": "2026-01-02", "length": 10**30}, "length"),
    ({"from": "2026-01-01", "to": "2026-01-02", "length": 45}, "length"),  # not offered
])
async def test_slots_refuse_out_of_range_bounds(
    app, client: httpx.AsyncClient, market: Market, params: dict, field: str
) -> None:
    _, tutor_id = await approved_tutor(app, client, market, rules=WEEKDAYS)
    assert_field(await client.get(f"/api/v1/tutors/{tutor_id}/slots", params=params),
                 field, "query")


async def test_slots_and_search_take_a_length_in_the_query_string(
    app, client: httpx.AsyncClient, market: Market
) -> None:
    _, tutor_id = await approved_tutor(app, client, market, rules=WEEKDAYS)
    slots = await client.get(f"/api/v1/tutors/{tutor_id}/slots",
                             params={"from": "2030-01-07", "to": "2030-01-07", "length": "30"})
    assert slots.status_code == 200 and slots.json()["length"] == 30
    found = await client.get("/api/v1/tutors", params={"length": "60",
                                                       "free_from": "2030-01-07"})
    assert found.status_code == 200, found.text


@pytest.mark.parametrize(("params", "field"), [
    ({"free_from": "9999-12-31"}, "free_from"),
    ({"free_from": "2026-01-01", "free_to": "9999-12-31"}, "free_to"),
    ({"free_from": "0001-01-01"}, "free_from"),
    ({"length": 10**30}, "length"),
    ({"sort": "soonest", "cursor": cursor("soonest", "2027-01-01T00:00:00", str(uuid.uuid4()))},
     "cursor"),
    ({"sort": "soonest", "cursor": cursor("soonest", "9999-12-31T23:59:59+00:00",
                                          str(uuid.uuid4()))}, "cursor"),
    ({"sort": "rating", "cursor": cursor("rating", "NaN", str(uuid.uuid4()))}, "cursor"),
    ({"sort": "rating", "cursor": cursor("rating", 10**400, str(uuid.uuid4()))}, "cursor"),
    ({"sort": "relevance", "cursor": cursor("relevance", 1e300, str(uuid.uuid4()))}, "cursor"),
])
async def test_search_refuses_out_of_range_filters_and_crafted_cursors(
    app, client: httpx.AsyncClient, market: Market, params: dict, field: str
) -> None:
    await approved_tutor(app, client, market, rules=WEEKDAYS)
    assert_field(await client.get("/api/v1/tutors", params=params), field, "query")


@pytest.mark.parametrize("param", ["from", "to"])
async def test_booking_list_refuses_dates_outside_the_window(
    app, client: httpx.AsyncClient, param: str
) -> None:
    student = await sign_in(app, role=Role.student)
    assert_field(await client.get("/api/v1/bookings", params={param: "9999-12-31T00:00:00Z"},
                                  headers=student.headers), param, "query")


async def test_availability_refuses_an_override_day_outside_the_window(
    app, client: httpx.AsyncClient, market: Market
) -> None:
    tutor, _ = await approved_tutor(app, client, market, rules=WEEKDAYS)
    body = {"rules": WEEKDAYS, "overrides": [{"day": "9999-12-31", "kind": "off"}]}
    assert_field(await client.put("/api/v1/tutors/me/availability", json=body,
                                  headers=tutor.headers), "overrides[0].day")


# --- item 10: control characters --------------------------------------------------------


@pytest.mark.parametrize("name", ["Ada\u0000Lovelace", "Ada\nLovelace", "Ada\u001bLovelace",
                                  "Ada\u0085Lovelace"])
async def test_signup_refuses_control_characters_in_the_name(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await client.post("/api/v1/auth/signup", json={
        "email": "ada@example.com", "password": "correct horse battery", "display_name": name})
    message = assert_field(response, "display_name", "body")
    assert "control characters" in message


async def test_profile_update_refuses_nul(app, client: httpx.AsyncClient, db) -> None:
    student = await sign_in(app, role=Role.student)
    assert_field(await client.patch("/api/v1/me", json={"display_name": "x\u0000"},
                                    headers=student.headers), "display_name")


@pytest.mark.parametrize(("field", "value", "where"), [
    ("bio_markdown", "I teach\u0000 algebra", "bio_markdown"),
    ("headline", "Maths\u0000", "headline"),
    ("headline", "two\nlines", "headline"),
    ("languages", ["e\u0000n"], "languages[0]"),
    ("meeting_link", "https://meet.example.com/\u0000", "meeting_link"),
    ("photo_ref", "a\u0000", "photo_ref"),
])
async def test_tutor_profile_refuses_control_characters(
    app, client: httpx.AsyncClient, market: Market, field: str, value: object, where: str
) -> None:
    tutor = await sign_in(app, role=Role.tutor)
    response = await client.put("/api/v1/tutors/me", json=profile_body(market, **{field: value}),
                                headers=tutor.headers)
    assert_field(response, where)


async def test_a_bio_keeps_its_line_breaks(app, client: httpx.AsyncClient, market: Market) -> None:
    tutor = await sign_in(app, role=Role.tutor)
    bio = "I teach algebra.\r\n\r\n\t- patiently\n- in English"
    response = await client.put("/api/v1/tutors/me", json=profile_body(market, bio_markdown=bio),
                                headers=tutor.headers)
    assert response.status_code == 200, response.text
    assert response.json()["bio_markdown"] == bio


async def test_booking_notes_refuse_nul(app, client: httpx.AsyncClient) -> None:
    tutor = await sign_in(app, role=Role.tutor)
    assert_field(await client.put(f"/api/v1/bookings/{uuid.uuid4()}/notes",
                                  json={"notes": "bring\u0000 a pen"}, headers=tutor.headers),
                 "notes")


@pytest.mark.parametrize("param", ["subject", "q", "language", "tz"])
async def test_search_refuses_nul_in_the_query_string(
    client: httpx.AsyncClient, param: str
) -> None:
    response = await client.get(f"/api/v1/tutors?{param}=a%00b")
    assert_field(response, param, "query")


async def test_the_directory_page_refuses_nul_with_a_sentence(client: httpx.AsyncClient) -> None:
    response = await client.get("/tutors?subject=a%00b", headers={"accept": "text/html"})
    assert response.status_code == 422
    assert "must not contain control characters" in response.text


async def test_a_signed_webhook_with_nul_and_overlong_fields_is_stored(
    client: httpx.AsyncClient, db, settings
) -> None:
    parent = await make_user(db, role=Role.parent)
    payload = order_event("order_created", user_id=parent.user.id)
    payload["meta"]["event_name"] = "order_\u0000created" + "x" * 500
    payload["data"]["type"] = "orders" + "y" * 100
    payload["data"]["id"] = "9" * 200
    payload["data"]["attributes"]["user_name"] = "Pat\u0000 Parent"
    response = await deliver(client, settings, payload)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "stored"
    again = await deliver(client, settings, payload)
    assert again.json() == {"status": "duplicate", "id": response.json()["id"]}


def test_the_shared_text_type_and_choices() -> None:
    from pydantic import TypeAdapter, ValidationError

    line = TypeAdapter(Annotated[str, Text(10, min_length=1)])
    notes = TypeAdapter(Annotated[str, Text(50, multiline=True)])
    assert line.validate_python("  Ada  ") == "Ada"
    for bad in ["", "   ", "a\u0000", "a\tb", "x" * 11, "\u007f"]:
        with pytest.raises(ValidationError):
            line.validate_python(bad)
    assert notes.validate_python("a\n\tb\r\n") == "a\n\tb"
    with pytest.raises(ValidationError):
        notes.validate_python("a\u0000b")
    zones = time_zones()
    assert zones[0] == "UTC" and "Europe/London" in zones and "America/Argentina/Salta" in zones
    assert not any(z.startswith(("Etc/", "posix/")) for z in zones)


async def test_a_signed_resend_event_with_nul_and_a_long_id_is_stored(
    app, client: httpx.AsyncClient, database_url: str
) -> None:
    from tests.conftest import make_settings
    from tests.notifications.test_webhooks import SECRET, bounce, signed

    app.state.settings = make_settings(database_url, resend_webhook_secret=SECRET)
    payload = bounce("gone@example.org")
    payload["data"]["subject"] = "Wel\u0000come"
    body, headers = signed(payload, msg_id="msg_" + "x" * 400)
    first = await client.post("/webhooks/resend", content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json() == {"received": True, "handled": True, "duplicate": False}
    again = await client.post("/webhooks/resend", content=body, headers=headers)
    assert again.json() == {"received": True, "handled": True, "duplicate": True}


@pytest.mark.parametrize("week", ["9999-12-31", "0001-01-01", "2099-12-30", "not-a-date"])
async def test_pages_browse_from_today_when_the_week_is_out_of_range(
    app, client: httpx.AsyncClient, market: Market, db, week: str
) -> None:
    from tests.accounts.test_browser_sessions import HTML, browser_login

    _, tutor_id = await approved_tutor(app, client, market, rules=WEEKDAYS)
    assert (await client.get(f"/tutors/{tutor_id}", params={"week": week},
                             headers=HTML)).status_code == 200
    student = await make_user(db)
    await browser_login(client, student.email)
    assert (await client.get("/app/calendar", params={"week": week},
                             headers=HTML)).status_code == 200
