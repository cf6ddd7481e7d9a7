"""Races on one slot: every loser gets a clean 409, never a 500.

300 students book the same hour at once (the measurement of issue 14 item 7);
students race to move their lessons onto one free hour. Real concurrency: every
request runs on its own task through the whole app and its connection pool.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select

from tests.scheduling.conftest import Market, sign_in
from tests.scheduling.test_bookings import book, tutor
from tutorapp.accounts.models import Role
from tutorapp.scheduling.models import Booking

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
