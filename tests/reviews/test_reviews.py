"""Reviews of completed lessons, edits for 14 days, one tutor reply, the tutor's rating."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.scheduling.conftest import Market, approved_tutor, sign_in
from tutorapp.auth.roles import Role

NOW = datetime(2026, 6, 1, 7, tzinfo=UTC)
EVERY_DAY = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in range(7)]


async def completed_lesson(app, client, tutor, tutor_id, student, start) -> str:
    app.state.clock = lambda: NOW
    lesson = await client.post("/api/v1/bookings", headers=student.headers,
                               json={"tutor_id": tutor_id, "start": start, "length": 60})
    assert lesson.status_code == 201, lesson.text
    app.state.clock = lambda: NOW + timedelta(days=3)
    done = await client.post(f"/api/v1/bookings/{lesson.json()['id']}/complete", headers=tutor.headers)
    assert done.json()["status"] == "completed"
    return lesson.json()["id"]


async def test_review_edit_reply_and_rating(app, client, market: Market) -> None:
    app.state.clock = lambda: NOW
    tutor, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    alice, bea = await sign_in(app, role=Role.student), await sign_in(app, role=Role.student)
    first = await completed_lesson(app, client, tutor, tutor_id, alice, "2026-06-02T09:00:00+01:00")
    second = await completed_lesson(app, client, tutor, tutor_id, bea, "2026-06-02T11:00:00+01:00")

    review = await client.post(f"/api/v1/bookings/{first}/review", headers=alice.headers,
                               json={"stars": 5, "text": "Great"})
    assert review.status_code == 201, review.text
    assert (await client.post(f"/api/v1/bookings/{first}/review", headers=alice.headers,
                              json={"stars": 1})).status_code == 409
    assert (await client.post(f"/api/v1/bookings/{first}/review", headers=bea.headers,
                              json={"stars": 1})).status_code == 404  # not her lesson
    assert (await client.post(f"/api/v1/bookings/{second}/review", headers=bea.headers,
                              json={"stars": 2})).status_code == 201
    profile = (await client.get(f"/api/v1/tutors/{tutor_id}")).json()
    assert profile["rating"] == {"average": 3.5, "count": 2}

    review_id = review.json()["id"]
    edited = await client.patch(f"/api/v1/reviews/{review_id}", headers=alice.headers,
                                json={"stars": 4})
    assert (edited.json()["stars"], edited.json()["text"]) == (4, "Great")
    assert (await client.get(f"/api/v1/tutors/{tutor_id}")).json()["rating"] == {"average": 3.0, "count": 2}
    app.state.clock = lambda: NOW + timedelta(days=3 + 15)
    late = await client.patch(f"/api/v1/reviews/{review_id}", headers=alice.headers, json={"stars": 1})
    assert late.status_code == 409

    replied = await client.post(f"/api/v1/reviews/{review_id}/reply", headers=tutor.headers,
                                json={"text": "Thank you!"})
    assert replied.json()["reply"] == "Thank you!"
    assert (await client.post(f"/api/v1/reviews/{review_id}/reply", headers=tutor.headers,
                              json={"text": "again"})).status_code == 409
    other_tutor = await sign_in(app, role=Role.tutor)
    assert (await client.post(f"/api/v1/reviews/{review_id}/reply", headers=other_tutor.headers,
                              json={"text": "x"})).status_code == 404

    page = await client.get(f"/api/v1/tutors/{tutor_id}/reviews", params={"limit": 1})
    rest = await client.get(f"/api/v1/tutors/{tutor_id}/reviews",
                            params={"limit": 1, "cursor": page.json()["next_cursor"]})
    assert sorted([page.json()["items"][0]["stars"], rest.json()["items"][0]["stars"]]) == [2, 4]
    assert rest.json()["next_cursor"] is None


async def test_only_completed_lessons_are_reviewed(app, client, market: Market) -> None:
    app.state.clock = lambda: NOW
    _, tutor_id = await approved_tutor(app, client, market, rules=EVERY_DAY)
    student = await sign_in(app, role=Role.student)
    lesson = await client.post("/api/v1/bookings", headers=student.headers, json={
        "tutor_id": tutor_id, "start": "2026-06-02T09:00:00+01:00", "length": 60})
    response = await client.post(f"/api/v1/bookings/{lesson.json()['id']}/review",
                                 headers=student.headers, json={"stars": 5})
    assert response.status_code == 409
    assert (await client.post(f"/api/v1/bookings/{lesson.json()['id']}/review",
                              headers=student.headers, json={"stars": 6})).status_code == 422
