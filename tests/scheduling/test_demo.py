"""seed_demo creates a browsable marketplace."""

from __future__ import annotations

from datetime import UTC, datetime

from tutorapp.demo_market import seed_demo

NOW = datetime(2026, 6, 1, 7, tzinfo=UTC)


async def test_seed_demo_creates_public_bookable_tutors(app, client, db) -> None:
    async with db.unit_of_work() as session:
        counts = await seed_demo(session, tutors=4, settings=app.state.settings, now=NOW)
    assert counts["tutors"] == 4 and counts["students"] == 9 and counts["parents"] == 1
    assert counts["bookings"] >= 8
    app.state.clock = lambda: NOW
    page = (await client.get("/api/v1/tutors", params={"sort": "rating", "limit": 10})).json()
    assert len(page["items"]) == 4
    assert sum(item["rating"]["count"] for item in page["items"]) == counts["reviews"]
    slots = await client.get(f"/api/v1/tutors/{page['items'][0]['id']}/slots",
                             params={"from": "2026-06-03", "to": "2026-06-16"})
    assert slots.status_code == 200 and slots.json()["slots"]
    found = await client.get("/api/v1/tutors", params={"q": "tutor"})
    assert len(found.json()["items"]) == 4
    async with db.unit_of_work() as session:  # a second run adds tutors, reusing the catalogue
        again = await seed_demo(session, tutors=1, settings=app.state.settings, now=NOW)
    assert again["tutors"] == 1
    assert len((await client.get("/api/v1/tutors")).json()["items"]) == 5
