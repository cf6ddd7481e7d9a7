"""Races on one slot: every loser gets a clean 409, never a 500.

300 students book the same hour at once (the measurement of issue 14 item 7);
students race to move their lessons onto one free hour. Real concurrency: every
request runs on its own task through the whole app and its connection pool.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError

from tests.scheduling.conftest import Market, sign_in
from tests.scheduling.test_bookings import book, tutor
from tests.waiting import timeout_scale
from tutorapp.auth.roles import Role
from tutorapp.scheduling.models import Booking, BookingStatus

RACERS = 300


async def test_300_same_slot_bookings_give_one_201_and_299_409(app, client, market: Market, db) -> None:
    _, tutor_id = await tutor(app, client, market)
    students = [await sign_in(app, role=Role.student) for _ in range(RACERS)]
    responses = await asyncio.gather(*(
        book(client, s, tutor_id, "2026-06-03T11:00:00+01:00") for s in students
    ))
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 1, 409: RACERS - 1}, {
        c: next(r.text for r in responses if r.status_code == c) for c in codes}
    assert {r.json()["type"] for r in responses if r.status_code == 409} == {"/problems/slot-taken"}
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Booking)) == 1


async def test_racing_reschedules_onto_one_slot_move_exactly_one(app, client, market: Market, db) -> None:
    _, tutor_id = await tutor(app, client, market)
    movers = [await sign_in(app, role=Role.student) for _ in range(40)]
    lessons = []
    for i, student in enumerate(movers):  # 40 lessons on four days, every hour 09:00-16:00
        start = f"2026-06-{2 + i // 8:02d}T{9 + i % 8:02d}:00:00+01:00"
        response = await book(client, student, tutor_id, start)
        assert response.status_code == 201, response.text
        lessons.append(response.json()["id"])
    target = "2026-06-08T10:00:00+01:00"
    responses = await asyncio.gather(*(
        client.post(f"/api/v1/bookings/{lesson}/reschedule", headers=student.headers,
                    json={"start": target})
        for lesson, student in zip(lessons, movers, strict=True)
    ))
    codes = Counter(r.status_code for r in responses)
    assert codes == {200: 1, 409: 39}, {
        c: next(r.text for r in responses if r.status_code == c) for c in codes}
    async with db.session() as session:
        moved = await session.scalar(select(func.count()).select_from(Booking)
                                     .where(Booking.sequence == 1))
    assert moved == 1


async def test_racing_on_twenty_slots_at_once_books_each_once(app, client, market: Market, db) -> None:
    """15 racers on each of 20 slots of one tutor, all at once: on PostgreSQL every
    first collision of two inserts used to be a chance for the exclusion constraint
    to deadlock (500 "deadlock detected")."""
    _, tutor_id = await tutor(app, client, market)
    students = [await sign_in(app, role=Role.student) for _ in range(RACERS)]
    slots = [f"2026-06-{2 + k // 8:02d}T{9 + k % 8:02d}:00:00+01:00" for k in range(20)]
    starts = [slots[n % 20] for n in range(RACERS)]
    responses = await asyncio.gather(*(
        book(client, s, tutor_id, start) for s, start in zip(students, starts, strict=True)
    ))
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 20, 409: RACERS - 20}, {
        c: next(r.text for r in responses if r.status_code == c) for c in codes}


async def test_a_deadlock_on_insert_is_retried_once_and_the_booking_goes_through(
    app, client, market: Market, db, dialect,
) -> None:
    """A real deadlock: another transaction R holds an uncommitted overlapping lesson
    (the exclusion check of the request's insert waits on R) and then waits for the
    tutor row the request locked. PostgreSQL aborts the request's insert first (its
    `deadlock_timeout` is shorter); the service retries it once, by which time R has
    been chosen as the victim of its own check, so the retry books the slot."""
    if dialect != "postgresql":
        pytest.skip("PostgreSQL's deadlock detector")
    scale = timeout_scale()
    _, tutor_id = await tutor(app, client, market)
    student, rival = await sign_in(app, role=Role.student), await sign_in(app, role=Role.student)

    def short_deadlock_timeout(dbapi_connection, _record) -> None:
        dbapi_connection.run_async(lambda c: c.execute(
            f"SET deadlock_timeout = '{3 * scale}s'; SET lock_timeout = 0"))

    await db.primary.dispose()
    event.listen(db.primary.sync_engine, "connect", short_deadlock_timeout)
    start = datetime(2026, 6, 3, 10, tzinfo=UTC)
    rival_outcome: list[str] = []

    async def rival_transaction() -> None:
        async with db.session() as session:
            await session.execute(text(f"SET deadlock_timeout = '{4 * scale}s'"))
            profile_user = await session.scalar(
                text("SELECT user_id FROM tutor_profiles WHERE id = :id"), {"id": uuid.UUID(tutor_id)})
            session.add(Booking(
                tutor_id=uuid.UUID(tutor_id), tutor_user_id=profile_user, student_id=rival.id,
                booked_by_id=rival.id, start_at=start, end_at=start + timedelta(hours=1),
                blocked_until=start + timedelta(hours=1), length=60, status=BookingStatus.confirmed,
                sequence=0,
            ))
            await session.flush()
            rival_ready.set()
            await waiting_on_rival.wait()
            try:  # now wait for the tutor row the request holds: a cycle
                await session.execute(text("SELECT 1 FROM tutor_profiles WHERE id = :id FOR UPDATE"),
                                      {"id": uuid.UUID(tutor_id)})
                rival_outcome.append("not a victim")
            except DBAPIError as exc:
                rival_outcome.append(getattr(exc.orig, "sqlstate", "?"))
            await session.rollback()

    rival_ready, waiting_on_rival = asyncio.Event(), asyncio.Event()
    rival_task = asyncio.create_task(rival_transaction())
    try:
        await asyncio.wait_for(rival_ready.wait(), 20 * scale)
        request = asyncio.create_task(book(client, student, tutor_id, start.isoformat()))
        deadline = asyncio.get_running_loop().time() + 20 * scale
        async with db.replicas[0].connect() as watcher:  # until the insert waits on R
            while not await watcher.scalar(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted"
            )):
                assert asyncio.get_running_loop().time() < deadline, "the insert never waited"
                await asyncio.sleep(0.02)
        waiting_on_rival.set()
        response = await asyncio.wait_for(request, 60 * scale)
    finally:
        waiting_on_rival.set()
        await asyncio.wait_for(rival_task, 60 * scale)
        event.remove(db.primary.sync_engine, "connect", short_deadlock_timeout)
        await db.primary.dispose()
    assert response.status_code == 201, response.text
    assert rival_outcome == ["40P01"]
