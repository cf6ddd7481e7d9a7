"""Weekly series (all-or-nothing and book-what-is-free), cancelling one or the rest,
and the ICS feed."""

from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Calendar

from tests.scheduling.conftest import Market, approved_tutor, sign_in
from tutorapp.auth.roles import Role

NOW = datetime(2026, 3, 1, tzinfo=UTC)
EVENINGS = [{"weekday": d, "start": "16:00", "end": "20:00"} for d in range(7)]


async def setup(app, client, market):
    app.state.clock = lambda: NOW
    tutor, tutor_id = await approved_tutor(app, client, market, rules=EVENINGS,
                                           time_zone="America/New_York", lesson_lengths=[60])
    student = await sign_in(app, role=Role.student, time_zone="America/New_York")
    return tutor, tutor_id, student


async def test_series_keeps_local_time_across_dst(app, client, market: Market) -> None:
    _, tutor_id, student = await setup(app, client, market)
    response = await client.post("/api/v1/series", headers=student.headers, json={
        "tutor_id": tutor_id, "start": "2026-03-02T17:00:00-05:00", "length": 60, "count": 3})
    assert response.status_code == 201, response.text
    body = response.json()
    assert [b["start"] for b in body["bookings"]] == [
        "2026-03-02T22:00:00Z", "2026-03-09T21:00:00Z", "2026-03-16T21:00:00Z"]  # 17:00 local
    assert [b["series_index"] for b in body["bookings"]] == [0, 1, 2]
    assert body["conflicts"] == []


async def test_all_or_nothing_and_book_what_is_free(app, client, market: Market) -> None:
    _, tutor_id, student = await setup(app, client, market)
    rival = await sign_in(app, role=Role.student)
    taken = await client.post("/api/v1/bookings", headers=rival.headers, json={
        "tutor_id": tutor_id, "start": "2026-03-09T17:00:00-04:00", "length": 60})
    assert taken.status_code == 201
    series = {"tutor_id": tutor_id, "start": "2026-03-02T17:00:00-05:00", "length": 60, "count": 3}
    refused = await client.post("/api/v1/series", headers=student.headers, json=series)
    assert refused.status_code == 409
    assert refused.json()["conflicts"] == [
        {"index": 1, "date": "2026-03-09", "start": "2026-03-09T21:00:00Z", "reason": "taken"}]
    mine = await client.get("/api/v1/bookings", headers=student.headers)
    assert mine.json() == []  # nothing was booked
    partial = await client.post("/api/v1/series", headers=student.headers,
                                json=series | {"mode": "available"})
    assert partial.status_code == 201
    assert [b["series_index"] for b in partial.json()["bookings"]] == [0, 2]
    assert [c["index"] for c in partial.json()["conflicts"]] == [1]


async def test_move_one_cancel_this_and_following(app, client, market: Market) -> None:
    _, tutor_id, student = await setup(app, client, market)
    body = (await client.post("/api/v1/series", headers=student.headers, json={
        "tutor_id": tutor_id, "start": "2026-03-02T17:00:00-05:00", "length": 60,
        "count": 5})).json()
    ids = [b["id"] for b in body["bookings"]]
    moved = await client.post(f"/api/v1/bookings/{ids[1]}/reschedule", headers=student.headers,
                              json={"start": "2026-03-10T18:00:00-04:00"})
    assert moved.status_code == 200 and moved.json()["series_id"] == body["id"]
    one = await client.post(f"/api/v1/bookings/{ids[0]}/cancel", headers=student.headers)
    assert [b["id"] for b in one.json()] == [ids[0]]
    rest = await client.post(f"/api/v1/bookings/{ids[2]}/cancel", headers=student.headers,
                             json={"scope": "following"})
    assert [b["id"] for b in rest.json()] == ids[2:]
    statuses = {b["id"]: b["status"] for b in
                (await client.get("/api/v1/bookings", headers=student.headers)).json()}
    assert [statuses[i] for i in ids] == ["cancelled", "confirmed", "cancelled", "cancelled", "cancelled"]
    single = await client.post("/api/v1/bookings", headers=student.headers, json={
        "tutor_id": tutor_id, "start": "2026-04-01T17:00:00-04:00", "length": 60})
    not_series = await client.post(f"/api/v1/bookings/{single.json()['id']}/cancel",
                                   headers=student.headers, json={"scope": "following"})
    assert not_series.status_code == 422


async def test_ics_feed_is_secret_stable_and_keeps_cancellations(app, client, market: Market) -> None:
    tutor, tutor_id, student = await setup(app, client, market)
    lesson = (await client.post("/api/v1/bookings", headers=student.headers, json={
        "tutor_id": tutor_id, "start": "2026-03-03T17:00:00-05:00", "length": 60})).json()
    url = (await client.post("/api/v1/calendar/feed", headers=student.headers)).json()["url"]
    path = url.split("http://127.0.0.1:8000", 1)[1]

    async def events() -> list:
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/calendar")
        return Calendar.from_ical(response.content).walk("VEVENT")

    [event] = await events()
    uid = str(event["UID"])
    assert uid == f"booking-{lesson['id']}@127.0.0.1"
    assert (int(event["SEQUENCE"]), str(event["STATUS"])) == (0, "CONFIRMED")
    assert event.decoded("DTSTART") == datetime(2026, 3, 3, 22, tzinfo=UTC)
    await client.post(f"/api/v1/bookings/{lesson['id']}/reschedule", headers=student.headers,
                      json={"start": "2026-03-03T18:00:00-05:00"})
    [event] = await events()
    assert (str(event["UID"]), int(event["SEQUENCE"])) == (uid, 1)
    assert event.decoded("DTSTART") == datetime(2026, 3, 3, 23, tzinfo=UTC)
    await client.post(f"/api/v1/bookings/{lesson['id']}/cancel", headers=student.headers)
    [event] = await events()
    assert (str(event["UID"]), int(event["SEQUENCE"]), str(event["STATUS"])) == (uid, 2, "CANCELLED")
    # the tutor's own feed shows it too; regenerating kills the old URL
    tutor_url = (await client.post("/api/v1/calendar/feed", headers=tutor.headers)).json()["url"]
    assert tutor_url != url
    new_url = (await client.post("/api/v1/calendar/feed", headers=student.headers)).json()["url"]
    assert (await client.get(path)).status_code == 404
    assert (await client.get(new_url.split("8000", 1)[1])).status_code == 200
    ics = await client.get(f"/api/v1/bookings/{lesson['id']}/ics", headers=student.headers)
    cal = Calendar.from_ical(ics.content)
    assert str(cal["METHOD"]) == "CANCEL"
    assert str(cal.walk("VEVENT")[0]["UID"]) == uid
