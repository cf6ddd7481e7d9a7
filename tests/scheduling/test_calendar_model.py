"""A hypothesis state machine books, moves and cancels at random through HTTP; the
API must always agree with an in-memory model of the tutor's calendar, including the
free slots it offers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.conftest import _empty_all_tables
from tests.scheduling.conftest import approved_tutor, make_market, sign_in
from tutorapp.app import create_app
from tutorapp.auth.roles import Role

NOW = datetime(2026, 6, 1, 7, tzinfo=UTC)
DAY0 = datetime(2026, 6, 2, 8, tzinfo=UTC)  # 09:00 in London (BST)
DAYS, OPEN_MINUTES = 2, 4 * 60  # 09:00-13:00 on two days
STARTS = [DAY0 + timedelta(days=d, minutes=m) for d in range(DAYS) for m in range(0, OPEN_MINUTES, 30)]
RULES = [{"weekday": d, "start": "09:00", "end": "13:00"} for d in range(7)]


def fits_hours(start: datetime, length: int) -> bool:
    day = DAY0 + timedelta(days=(start - DAY0).days)
    return start + timedelta(minutes=length) <= day + timedelta(minutes=OPEN_MINUTES)


def test_api_agrees_with_a_model_of_the_calendar(settings) -> None:
    loop = asyncio.new_event_loop()
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    app.state.clock = lambda: NOW
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    run = loop.run_until_complete

    class Calendar(RuleBasedStateMachine):
        bookings = Bundle("bookings")

        def __init__(self) -> None:
            super().__init__()
            run(_empty_all_tables(app))
            market = run(make_market(app, client))
            _, self.tutor_id = run(approved_tutor(app, client, market, rules=RULES,
                                                  lesson_lengths=[30, 60]))
            self.students = [run(sign_in(app, role=Role.student)) for _ in range(2)]
            self.model: dict[str, tuple[int, datetime, int]] = {}  # id -> (student, start, length)

        def overlaps(self, start: datetime, length: int, ignore: str | None = None) -> bool:
            end = start + timedelta(minutes=length)
            return any(s < end and start < s + timedelta(minutes=n)
                       for bid, (_, s, n) in self.model.items() if bid != ignore)

        @rule(target=bookings, who=st.integers(0, 1), start=st.sampled_from(STARTS),
              length=st.sampled_from([30, 60]))
        def book(self, who: int, start: datetime, length: int) -> str:
            response = run(client.post("/api/v1/bookings", headers=self.students[who].headers,
                                       json={"tutor_id": self.tutor_id, "start": start.isoformat(),
                                             "length": length}))
            free = fits_hours(start, length) and not self.overlaps(start, length)
            assert response.status_code == (201 if free else 409), response.text
            if not free:
                return "none"
            booking_id = response.json()["id"]
            self.model[booking_id] = (who, start, length)
            return booking_id

        @rule(booking=bookings, start=st.sampled_from(STARTS))
        def move(self, booking: str, start: datetime) -> None:
            if booking not in self.model:
                return
            who, _, length = self.model[booking]
            response = run(client.post(f"/api/v1/bookings/{booking}/reschedule",
                                       headers=self.students[who].headers,
                                       json={"start": start.isoformat()}))
            free = fits_hours(start, length) and not self.overlaps(start, length, ignore=booking)
            assert response.status_code == (200 if free else 409), response.text
            if free:
                self.model[booking] = (who, start, length)

        @rule(booking=consumes(bookings))
        def cancel(self, booking: str) -> None:
            if booking not in self.model:
                return
            who = self.model[booking][0]
            response = run(client.post(f"/api/v1/bookings/{booking}/cancel",
                                       headers=self.students[who].headers))
            assert response.status_code == 200, response.text
            del self.model[booking]

        @invariant()
        def api_agrees(self) -> None:
            slots = run(client.get(f"/api/v1/tutors/{self.tutor_id}/slots", params={
                "from": "2026-06-02", "to": "2026-06-03", "tz": "UTC", "length": 30}))
            expected = [s for s in STARTS if fits_hours(s, 30) and not self.overlaps(s, 30)]
            assert [datetime.fromisoformat(s) for s in slots.json()["slots"]] == expected
            listed = run(client.get("/api/v1/bookings", headers=self.students[0].headers)).json()
            listed += run(client.get("/api/v1/bookings", headers=self.students[1].headers)).json()
            active = {b["id"]: datetime.fromisoformat(b["start"]) for b in listed
                      if b["status"] == "confirmed"}
            assert active == {bid: start for bid, (_, start, _) in self.model.items()}

    try:
        run_state_machine_as_test(Calendar, settings=hsettings(
            max_examples=15, stateful_step_count=15, derandomize=True, deadline=None))
    finally:
        run(_empty_all_tables(app))
        run(client.aclose())
        run(lifespan.__aexit__(None, None, None))
        loop.close()
