"""GET /api/v1/tutors/{id}/slots across DST changes, through HTTP on each database."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.scheduling.conftest import Market, approved_tutor, sign_in
from tutorapp.auth.roles import Role

SUNDAY_NIGHT = [{"weekday": 6, "start": "00:00", "end": "04:00"}]


def pin(app, *args: int) -> None:
    app.state.clock = lambda: datetime(*args, tzinfo=UTC)


async def test_new_york_spring_and_autumn_in_the_tutors_zone(app, client, market: Market) -> None:
    pin(app, 2026, 3, 1)
    _, tutor_id = await approved_tutor(app, client, market, rules=SUNDAY_NIGHT,
                                       time_zone="America/New_York", lesson_lengths=[60])
    spring = await client.get(f"/api/v1/tutors/{tutor_id}/slots",
                              params={"from": "2026-03-08", "to": "2026-03-08",
                                      "tz": "America/New_York"})
    assert spring.status_code == 200, spring.text
    assert spring.json() == {
        "tutor_id": tutor_id, "tz": "America/New_York", "length": 60,
        "slots": ["2026-03-08T00:00:00-05:00", "2026-03-08T00:30:00-05:00",
                  "2026-03-08T01:00:00-05:00", "2026-03-08T01:30:00-05:00",
                  "2026-03-08T03:00:00-04:00"],
    }
    autumn = await client.get(f"/api/v1/tutors/{tutor_id}/slots",
                              params={"from": "2026-11-01", "to": "2026-11-01",
                                      "tz": "America/New_York"})
    assert autumn.json()["slots"] == [
        "2026-11-01T00:00:00-04:00", "2026-11-01T00:30:00-04:00", "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:30:00-05:00",
        "2026-11-01T02:00:00-05:00", "2026-11-01T02:30:00-05:00", "2026-11-01T03:00:00-05:00",
    ]


async def test_london_tutor_seen_from_kolkata_and_default_viewer_zone(app, client, market: Market) -> None:
    pin(app, 2026, 3, 1)
    _, tutor_id = await approved_tutor(
        app, client, market, time_zone="Europe/London", lesson_lengths=[60],
        rules=[{"weekday": 6, "start": "00:00", "end": "03:00"}],
    )
    viewer = await sign_in(app, role=Role.student, time_zone="Asia/Kolkata")
    response = await client.get(f"/api/v1/tutors/{tutor_id}/slots", headers=viewer.headers,
                                params={"from": "2026-03-29T00:00:00Z", "to": "2026-03-30T00:00:00Z"})
    assert response.json()["tz"] == "Asia/Kolkata"
    # London 00:00 GMT, 00:30 GMT, (01:00-02:00 does not exist), 02:00 BST
    assert response.json()["slots"] == [
        "2026-03-29T05:30:00+05:30", "2026-03-29T06:00:00+05:30", "2026-03-29T06:30:00+05:30",
    ]


async def test_slots_skip_booked_time_notice_and_horizon(app, client, market: Market) -> None:
    pin(app, 2026, 6, 1, 8)  # Monday 09:00 in London
    _, tutor_id = await approved_tutor(
        app, client, market, time_zone="Europe/London", lesson_lengths=[60],
        min_notice_minutes=120, horizon_days=7, buffer_minutes=15,
        rules=[{"weekday": d, "start": "09:00", "end": "13:00"} for d in range(7)],
    )
    student = await sign_in(app, role=Role.student)
    booked = await client.post("/api/v1/bookings", headers=student.headers, json={
        "tutor_id": tutor_id, "start": "2026-06-02T10:00:00+01:00", "length": 60})
    assert booked.status_code == 201, booked.text
    day = await client.get(f"/api/v1/tutors/{tutor_id}/slots",
                           params={"from": "2026-06-01", "to": "2026-06-02", "tz": "Europe/London"})
    assert day.json()["slots"] == [
        # today: notice until 11:00
        "2026-06-01T11:00:00+01:00", "2026-06-01T11:30:00+01:00", "2026-06-01T12:00:00+01:00",
        # tomorrow: 10:00-11:00 booked, 15 minutes' buffer either side
        "2026-06-02T11:30:00+01:00", "2026-06-02T12:00:00+01:00",
    ]
    beyond = await client.get(f"/api/v1/tutors/{tutor_id}/slots",
                              params={"from": "2026-06-08", "to": "2026-06-09", "tz": "Europe/London"})
    assert beyond.json()["slots"] == ["2026-06-08T09:00:00+01:00"]  # horizon: 7 days from 09:00


async def test_bad_slot_queries_are_clear_errors(app, client, market: Market) -> None:
    _, tutor_id = await approved_tutor(app, client, market, rules=SUNDAY_NIGHT)
    url = f"/api/v1/tutors/{tutor_id}/slots"
    cases = [
        ({"from": "2026-03-08", "to": "2026-03-08", "tz": "Nowhere/City"}, "tz"),
        ({"from": "yesterday", "to": "2026-03-08"}, "from"),
        ({"from": "2026-03-08T10:00:00", "to": "2026-03-09"}, "from"),
        ({"from": "2026-03-09", "to": "2026-03-01"}, "to"),
        ({"from": "2026-01-01", "to": "2026-12-31"}, "to"),
        ({"from": "2026-03-08", "to": "2026-03-08", "length": 45}, "length"),
    ]
    for params, field in cases:
        response = await client.get(url, params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["errors"][0]["field"] == field
    assert (await client.get(url, params={"to": "2026-03-08"})).status_code == 422
    missing = await client.get("/api/v1/tutors/6a1f1ab0-0000-4000-8000-000000000000/slots",
                               params={"from": "2026-03-08", "to": "2026-03-08"})
    assert missing.status_code == 404
