"""Booking through HTTP: no double booking (even under 50 concurrent requests),
idempotent retries, parents booking for children, and the lifecycle."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from tests.scheduling.conftest import Market, approved_tutor, sign_in
from tutorapp.auth.roles import Role
from tutorapp.core.audit import AuditEvent
from tutorapp.jobs.models import JobEvent
from tutorapp.scheduling import bookings as booking_service
from tutorapp.scheduling.models import Booking

EVERY_DAY = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in range(7)]
NOW = datetime(2026, 6, 1, 7, tzinfo=UTC)  # Monday 08:00 in London


def pin(app, when: datetime = NOW) -> None:
    app.state.clock = lambda: when


async def tutor(app, client, market, **profile):
    pin(app)
    profile.setdefault("rules", EVERY_DAY)
    return await approved_tutor(app, client, market, **profile)


async def book(client, caller, tutor_id, start, length=60, **extra):
    return await client.post("/api/v1/bookings", headers=caller.headers | extra.pop("headers", {}),
                             json={"tutor_id": tutor_id, "start": start, "length": length, **extra})


async def test_book_a_free_slot_then_the_overlap_is_refused(app, client, market: Market) -> None:
    _, tutor_id = await tutor(app, client, market)
    student = await sign_in(app, role=Role.student)
    response = await book(client, student, tutor_id, "2026-06-02T10:00:00+01:00", 30)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "confirmed"
    assert body["start"] == "2026-06-02T09:00:00Z" and body["end"] == "2026-06-02T09:30:00Z"
    assert body["credits"] == 1  # a lesson costs one credit, whatever the tutor and length
    assert "price" not in body
    assert body["student_id"] == str(student.id) and body["booked_by_id"] == str(student.id)

    other = await sign_in(app, role=Role.student)
    clash = await book(client, other, tutor_id, "2026-06-02T09:00:00Z", 60)  # 10:00 BST again
    assert clash.status_code == 409
    assert clash.json()["type"] == "/problems/slot-taken"
    for start, length, field in [("2026-06-02T10:10:00+01:00", 30, "start"),   # off the grid
                                 ("2026-06-02T10:00:00+01:00", 45, "length"),  # not offered
                                 ("2026-06-02T18:00:00+01:00", 30, None),      # outside hours
                                 ("2026-05-31T10:00:00+01:00", 30, "start")]:  # in the past
        response = await book(client, other, tutor_id, start, length)
        assert response.status_code in (409, 422), response.text
        if field:
            assert response.json()["errors"][0]["field"] == field
    naive = await book(client, other, tutor_id, "2026-06-02T12:00:00", 30)
    assert naive.status_code == 422


async def test_fifty_simultaneous_requests_for_one_slot_book_it_once(app, client, market: Market, db) -> None:
    _, tutor_id = await tutor(app, client, market)
    students = [await sign_in(app, role=Role.student) for _ in range(50)]
    responses = await asyncio.gather(*(
        book(client, s, tutor_id, "2026-06-03T11:00:00+01:00") for s in students
    ))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 49, codes
    async with db.session() as session:
        count = await session.scalar(select(func.count()).select_from(Booking))
    assert count == 1


async def test_overlapping_but_different_starts_race_too(app, client, market: Market, db) -> None:
    _, tutor_id = await tutor(app, client, market)
    students = [await sign_in(app, role=Role.student) for _ in range(10)]
    starts = ["2026-06-03T11:00:00+01:00", "2026-06-03T11:30:00+01:00"] * 5
    responses = await asyncio.gather(*(
        book(client, s, tutor_id, start) for s, start in zip(students, starts, strict=True)
    ))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 9


async def test_idempotency_key_replays_the_first_answer(app, client, market: Market, db) -> None:
    _, tutor_id = await tutor(app, client, market)
    student = await sign_in(app, role=Role.student)
    key = {"Idempotency-Key": "retry-1"}
    first = await book(client, student, tutor_id, "2026-06-04T09:00:00+01:00", headers=key)
    again = await book(client, student, tutor_id, "2026-06-04T09:00:00+01:00", headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other_body = await book(client, student, tutor_id, "2026-06-04T11:00:00+01:00", headers=key)
    assert other_body.status_code == 422
    assert other_body.json()["type"] == "/problems/idempotency-key-reused"
    # concurrent retries with one key: one booking, same answer for all
    racing = await asyncio.gather(*(
        book(client, student, tutor_id, "2026-06-05T09:00:00+01:00", headers={"Idempotency-Key": "k2"})
        for _ in range(5)
    ))
    assert [r.status_code for r in racing] == [201] * 5
    assert len({r.json()["id"] for r in racing}) == 1
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Booking)) == 2


async def test_parent_books_for_their_child_only(app, client, market: Market) -> None:
    _, tutor_id = await tutor(app, client, market)
    parent = await sign_in(app, role=Role.parent)
    child = await sign_in(app, role=Role.student, parent_id=parent.id)
    stranger = await sign_in(app, role=Role.student)
    missing = await book(client, parent, tutor_id, "2026-06-02T09:00:00+01:00")
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "student_id"
    not_mine = await book(client, parent, tutor_id, "2026-06-02T09:00:00+01:00",
                          student_id=str(stranger.id))
    assert not_mine.status_code == 422
    ok = await book(client, parent, tutor_id, "2026-06-02T09:00:00+01:00", student_id=str(child.id))
    assert ok.status_code == 201, ok.text
    assert ok.json()["student_id"] == str(child.id) and ok.json()["booked_by_id"] == str(parent.id)
    assert (await client.get(f"/api/v1/bookings/{ok.json()['id']}", headers=child.headers)).status_code == 200
    assert (await client.get(f"/api/v1/bookings/{ok.json()['id']}", headers=stranger.headers)).status_code == 404
    assert [b["id"] for b in (await client.get("/api/v1/bookings", headers=parent.headers)).json()] == [
        ok.json()["id"]]
    tutor_user = await sign_in(app, role=Role.tutor)
    assert (await book(client, tutor_user, tutor_id, "2026-06-02T11:00:00+01:00")).status_code == 403


async def test_requested_booking_needs_the_tutors_approval(app, client, market: Market) -> None:
    tutor_caller, tutor_id = await tutor(app, client, market, requires_approval=True)
    student = await sign_in(app, role=Role.student)
    first = (await book(client, student, tutor_id, "2026-06-02T09:00:00+01:00")).json()
    second = (await book(client, student, tutor_id, "2026-06-02T11:00:00+01:00")).json()
    assert first["status"] == second["status"] == "requested"
    assert first["meeting_link"] is None
    assert (await client.post(f"/api/v1/bookings/{first['id']}/approve",
                              headers=student.headers)).status_code == 403
    approved = await client.post(f"/api/v1/bookings/{first['id']}/approve", headers=tutor_caller.headers)
    assert approved.json()["status"] == "confirmed"
    declined = await client.post(f"/api/v1/bookings/{second['id']}/decline",
                                 headers=tutor_caller.headers, json={"reason": "ill"})
    assert declined.json()["status"] == "cancelled" and declined.json()["refund"] is True
    assert (await client.post(f"/api/v1/bookings/{second['id']}/approve",
                              headers=tutor_caller.headers)).status_code == 409


async def test_cancellation_policy(app, client, market: Market) -> None:
    tutor_caller, tutor_id = await tutor(app, client, market, free_cancellation_hours=24)
    student = await sign_in(app, role=Role.student)
    early = (await book(client, student, tutor_id, "2026-06-03T09:00:00+01:00")).json()
    late = (await book(client, student, tutor_id, "2026-06-02T09:00:00+01:00")).json()
    by_tutor = (await book(client, student, tutor_id, "2026-06-01T15:00:00+01:00")).json()
    pin(app, datetime(2026, 6, 1, 12, tzinfo=UTC))  # 21 h before `late`, 45 h before `early`
    response = await client.post(f"/api/v1/bookings/{early['id']}/cancel", headers=student.headers)
    assert [(b["status"], b["refund"]) for b in response.json()] == [("cancelled", True)]
    response = await client.post(f"/api/v1/bookings/{late['id']}/cancel", headers=student.headers,
                                 json={"reason": "busy"})
    assert [(b["status"], b["refund"]) for b in response.json()] == [("cancelled", False)]
    response = await client.post(f"/api/v1/bookings/{by_tutor['id']}/cancel", headers=tutor_caller.headers)
    assert [(b["status"], b["refund"]) for b in response.json()] == [("cancelled", True)]
    again = await client.post(f"/api/v1/bookings/{early['id']}/cancel", headers=student.headers)
    assert again.status_code == 409
    # the freed slot can be booked again
    assert (await book(client, student, tutor_id, "2026-06-03T09:00:00+01:00")).status_code == 201


async def test_reschedule_is_atomic_and_keeps_the_booking(app, client, market: Market, db) -> None:
    _, tutor_id = await tutor(app, client, market)
    student, other = await sign_in(app, role=Role.student), await sign_in(app, role=Role.student)
    mine = (await book(client, student, tutor_id, "2026-06-02T09:00:00+01:00")).json()
    theirs = (await book(client, other, tutor_id, "2026-06-02T12:00:00+01:00")).json()
    # overlapping its own old time is fine: old and new are swapped in one update
    moved = await client.post(f"/api/v1/bookings/{mine['id']}/reschedule", headers=student.headers,
                              json={"start": "2026-06-02T09:30:00+01:00"})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["id"], moved.json()["start"], moved.json()["sequence"]) == (
        mine["id"], "2026-06-02T08:30:00Z", 1)
    blocked = await client.post(f"/api/v1/bookings/{mine['id']}/reschedule", headers=student.headers,
                                json={"start": "2026-06-02T11:30:00+01:00"})
    assert blocked.status_code == 409
    current = (await client.get(f"/api/v1/bookings/{mine['id']}", headers=student.headers)).json()
    assert current["start"] == "2026-06-02T08:30:00Z"  # unchanged by the refused move
    assert (await book(client, other, tutor_id, "2026-06-02T09:00:00+01:00")).status_code == 409
    assert (await book(client, other, tutor_id, "2026-06-02T10:30:00+01:00")).status_code == 201
    assert theirs["status"] == "confirmed"


async def test_complete_no_show_and_notes(app, client, market: Market, db) -> None:
    tutor_caller, tutor_id = await tutor(app, client, market)
    parent = await sign_in(app, role=Role.parent)
    child = await sign_in(app, role=Role.student, parent_id=parent.id)
    lesson = (await book(client, parent, tutor_id, "2026-06-01T10:00:00+01:00",
                         student_id=str(child.id))).json()
    other = (await book(client, parent, tutor_id, "2026-06-01T12:00:00+01:00",
                        student_id=str(child.id))).json()
    early = await client.post(f"/api/v1/bookings/{lesson['id']}/complete", headers=tutor_caller.headers)
    assert early.status_code == 409
    pin(app, datetime(2026, 6, 1, 13, tzinfo=UTC))
    done = await client.post(f"/api/v1/bookings/{lesson['id']}/complete", headers=tutor_caller.headers)
    assert done.json()["status"] == "completed"
    missed = await client.post(f"/api/v1/bookings/{other['id']}/no-show", headers=tutor_caller.headers)
    assert missed.json()["status"] == "no_show"
    notes = await client.put(f"/api/v1/bookings/{lesson['id']}/notes", headers=tutor_caller.headers,
                             json={"notes": "Practise factorising."})
    assert notes.status_code == 200
    for viewer in (parent, child):
        seen = await client.get(f"/api/v1/bookings/{lesson['id']}", headers=viewer.headers)
        assert seen.json()["tutor_notes"] == "Practise factorising."
    assert (await client.put(f"/api/v1/bookings/{lesson['id']}/notes", headers=parent.headers,
                             json={"notes": "x"})).status_code == 403
    async with db.session() as session:
        actions = list(await session.scalars(
            select(AuditEvent.action).where(AuditEvent.subject_id == lesson["id"])
            .order_by(AuditEvent.created_at)))
    assert actions == ["booking.confirmed", "booking.completed", "booking.notes_updated"]
    async with db.session() as session:
        events = set((await session.execute(
            select(JobEvent.name, JobEvent.key).where(JobEvent.key.startswith(lesson["id"])))).all())
    assert events == {("booking.confirmed", f"{lesson['id']}:0"),
                      ("booking.completed", f"{lesson['id']}:1")}


async def test_held_booking_expires_and_frees_the_slot(app, client, market: Market, db) -> None:
    app.state.settings.booking_payment_required = True
    _, tutor_id = await tutor(app, client, market)
    student = await sign_in(app, role=Role.student)
    held = (await book(client, student, tutor_id, "2026-06-02T09:00:00+01:00")).json()
    assert held["status"] == "held"
    assert held["hold_expires_at"] == "2026-06-01T07:15:00Z"
    async with db.unit_of_work() as session:
        assert await booking_service.release_expired_holds(session, now=NOW + timedelta(minutes=14)) == 0
    async with db.unit_of_work() as session:
        assert await booking_service.release_expired_holds(session, now=NOW + timedelta(minutes=15)) == 1
    seen = await client.get(f"/api/v1/bookings/{held['id']}", headers=student.headers)
    assert seen.json()["status"] == "expired"
    paid = (await book(client, student, tutor_id, "2026-06-02T09:00:00+01:00")).json()
    assert paid["status"] == "held"  # the expired hold freed the slot
    async with db.unit_of_work() as session:
        booking = await booking_service.mark_paid(session, uuid.UUID(paid["id"]),
                                                  now=NOW + timedelta(minutes=5))
        assert (booking.status, booking.hold_expires_at) == ("confirmed", None)
    async with db.unit_of_work() as session:
        assert await booking_service.release_expired_holds(session, now=NOW + timedelta(days=1)) == 0


async def test_the_database_itself_refuses_overlaps(app, client, market: Market, db, dialect) -> None:
    """Bypassing the service: PostgreSQL's exclusion constraint refuses an overlapping
    active booking, and lets a cancelled one overlap."""
    import pytest
    from sqlalchemy.exc import IntegrityError

    tutor_caller, tutor_id = await tutor(app, client, market)
    student = await sign_in(app, role=Role.student)
    first = (await book(client, student, tutor_id, "2026-06-02T09:00:00+01:00")).json()
    if dialect != "postgresql":
        pytest.skip("SQLite relies on the serialized write transaction (see the race tests)")

    def row(status: str) -> Booking:
        start = datetime(2026, 6, 2, 8, 30, tzinfo=UTC)
        return Booking(tutor_id=uuid.UUID(tutor_id), tutor_user_id=tutor_caller.id,
                       student_id=student.id, booked_by_id=student.id, start_at=start,
                       end_at=start + timedelta(hours=1), blocked_until=start + timedelta(hours=1),
                       length=60, status=status, sequence=0)

    with pytest.raises(IntegrityError, match="ex_bookings_no_overlap"):
        async with db.unit_of_work() as session:
            session.add(row("confirmed"))
    async with db.unit_of_work() as session:
        session.add(row("cancelled"))
    assert first["status"] == "confirmed"


def test_expired_holds_are_released_every_minute_by_a_job() -> None:
    from tutorapp.jobs import registry

    assert registry.load_functions()["booking.release_holds"].cron == "* * * * *"
