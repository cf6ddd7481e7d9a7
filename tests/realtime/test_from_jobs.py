"""Booking events published from a job: jobs run on DBOS's own event loop (a payment
confirming a booking), and the events are published on the app's loop, whose database
and broker they belong to. This test's loop is not the server's, like a job's. (Its
own module: another server in the same process would be the newest hub.)"""

from __future__ import annotations

import uuid

from tests.realtime.conftest import RT
from tests.realtime.test_supabase_py import booked
from tests.realtime.test_wire import wire
from tutorapp.scheduling import live


async def test_a_booking_event_from_another_event_loop_reaches_the_channel(rt: RT) -> None:
    _student, tutor, _parent, booking_id = await booked(rt)
    async with wire(rt) as w:
        await w.join(f"booking:{booking_id}", tutor, postgres_changes=[
            {"event": "*", "schema": "public", "table": "bookings"}])
        await live.publish_booking_event("booking.confirmed", uuid.UUID(booking_id),
                                         {"before": "held"})
        frame = await w.until("postgres_changes")
    record = frame["payload"]["data"]["record"]
    assert (record["id"], record["event"]) == (booking_id, "booking.confirmed")
    assert frame["payload"]["data"]["old_record"] == {"id": booking_id, "status": "held"}
    again = await rt.http.get(f"/api/v1/bookings/{booking_id}", headers=tutor.headers)
    assert again.status_code == 200  # the server's pool is intact
