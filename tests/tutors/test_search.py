"""GET /api/v1/tutors: full text, filters, sorts and keyset pagination, on each database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from tests.scheduling.conftest import Market, approved_tutor, sign_in
from tutorapp.auth.roles import Role
from tutorapp.tutors import service as tutors_service

NOW = datetime(2026, 6, 1, 7, tzinfo=UTC)


async def rate(db, tutor_id: str, *stars: int) -> None:
    async with db.unit_of_work() as session:
        await tutors_service.apply_rating(session, uuid.UUID(tutor_id), add_stars=sum(stars),
                                          add_count=len(stars))


async def make_tutors(app, client, market: Market, db) -> dict[str, str]:
    app.state.clock = lambda: NOW
    s = market.subjects
    specs = {
        "ada": dict(headline="Algebra and calculus coach", bio_markdown="Exams made calm.",
                    subjects=[{"subject_id": s["mathematics/algebra"], "level": "secondary"}],
                    languages=["en"],
                    rules=[{"weekday": 2, "start": "09:00", "end": "10:00"}]),
        "bob": dict(headline="Geometry for beginners", bio_markdown="Shapes and proofs.",
                    subjects=[{"subject_id": s["mathematics/geometry"], "level": "primary"}],
                    languages=["en", "fr"],
                    rules=[{"weekday": 0, "start": "09:00", "end": "10:00"}]),
        "cleo": dict(headline="Linear algebra at university", bio_markdown="Matrices, vectors.",
                     subjects=[{"subject_id": s["mathematics/algebra/linear"], "level": "university"}],
                     languages=["de"], rules=[]),
        "dan": dict(headline="French conversation", bio_markdown="Parlons **français**.",
                    subjects=[{"subject_id": s["languages/french"], "level": "adult"}],
                    languages=["fr"],
                    rules=[{"weekday": 1, "start": "09:00", "end": "10:00"}]),
    }
    ids = {}
    for name, spec in specs.items():
        _, ids[name] = await approved_tutor(app, client, market, name=name.title(), **spec)
    await rate(db, ids["ada"], 5, 4)      # 4.5
    await rate(db, ids["bob"], 3)         # 3.0
    await rate(db, ids["cleo"], 5)        # 5.0
    # an unapproved tutor never shows up
    draft = await sign_in(app, role=Role.tutor)
    await client.put("/api/v1/tutors/me", headers=draft.headers, json={
        "headline": "Algebra draft", "bio_markdown": "x", "time_zone": "UTC",
        "lesson_lengths": [60]})
    return ids


def names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["display_name"] for item in response.json()["items"]]


async def test_full_text_and_filters(app, client, market: Market, db) -> None:
    await make_tutors(app, client, market, db)
    get = lambda **p: client.get("/api/v1/tutors", params=p)  # noqa: E731
    assert sorted(names(await get(q="algebra"))) == ["Ada", "Cleo"]  # rank order is per engine
    assert sorted(names(await get(q="alg"))) == ["Ada", "Cleo"]  # prefix match
    assert names(await get(q="français")) == ["Dan"]  # bio text, accents kept
    assert names(await get(q="matrices vectors")) == ["Cleo"]
    assert names(await get(q="geometry proofs")) == ["Bob"]
    assert names(await get(q="mathematics", sort="rating")) == ["Cleo", "Ada", "Bob"]  # subject ancestors
    assert names(await get(q="zzzz")) == []
    for odd in ['foo_bar 日本語', '"OR" NEAR( AND*', "x' OR 1=1 --"]:
        assert names(await get(q=odd)) == []
    assert names(await get(q="!!!", sort="rating")) == ["Cleo", "Ada", "Bob", "Dan"]
    assert names(await get(subject="mathematics", sort="rating")) == ["Cleo", "Ada", "Bob"]
    assert names(await get(subject="mathematics/algebra", sort="rating")) == ["Cleo", "Ada"]
    assert names(await get(subject=market.subjects["languages"])) == ["Dan"]
    assert names(await get(level="university")) == ["Cleo"]
    assert names(await get(subject="mathematics", level="primary")) == ["Bob"]
    assert names(await get(language="fr", sort="rating")) == ["Bob", "Dan"]
    assert names(await get(min_rating=4, sort="rating")) == ["Cleo", "Ada"]
    bad = await get(subject="nope")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "subject"
    assert (await get(sort="random")).status_code == 422
    assert (await get(cursor="garbage")).status_code == 422
    assert (await get(tz="Nowhere/X", free_from="2026-06-01")).status_code == 422


async def test_every_tutor_costs_one_credit_so_there_is_no_price_to_filter(
        app, client, market: Market, db) -> None:
    """Prices in GBP, EUR and USD used to be compared as equal numbers; a lesson now
    costs one credit with any tutor: no price in results, no price filter or sort."""
    await make_tutors(app, client, market, db)
    everyone = await client.get("/api/v1/tutors", params={"sort": "rating"})
    assert names(everyone) == ["Cleo", "Ada", "Bob", "Dan"]
    assert all("hourly_rate" not in item for item in everyone.json()["items"])
    assert (await client.get("/api/v1/tutors", params={"sort": "price"})).status_code == 422
    spec = await client.get("/api/openapi.json")
    params = {p["name"] for p in spec.json()["paths"]["/api/v1/tutors"]["get"]["parameters"]}
    assert not params & {"min_price", "max_price", "currency"}


async def test_free_time_filter_and_soonest_sort(app, client, market: Market, db) -> None:
    await make_tutors(app, client, market, db)
    get = lambda **p: client.get("/api/v1/tutors", params=p)  # noqa: E731
    # Tuesday 2026-06-02 in London: only Dan works on Tuesdays
    tuesday = await get(free_from="2026-06-02", free_to="2026-06-02", tz="Europe/London")
    assert names(tuesday) == ["Dan"]
    assert tuesday.json()["items"][0]["next_free_slot"] == "2026-06-02T08:00:00Z"
    soonest = await get(sort="soonest")
    assert names(soonest) == ["Bob", "Dan", "Ada"]  # today (Mon), Tue, Wed; Cleo has no hours
    assert [i["next_free_slot"] for i in soonest.json()["items"]] == [
        "2026-06-01T08:00:00Z", "2026-06-02T08:00:00Z", "2026-06-03T08:00:00Z"]
    # book Dan's only Tuesday hour: he drops out of the Tuesday filter
    student = await sign_in(app, role=Role.student)
    dan = soonest.json()["items"][1]["id"]
    booked = await client.post("/api/v1/bookings", headers=student.headers, json={
        "tutor_id": dan, "start": "2026-06-02T08:00:00Z", "length": 60})
    assert booked.status_code == 201, booked.text
    assert names(await get(free_from="2026-06-02", free_to="2026-06-02", tz="Europe/London")) == []
    assert names(await get(sort="soonest", limit=2)) == ["Bob", "Ada"]


async def test_keyset_pages_cover_everyone_once(app, client, market: Market, db) -> None:
    await make_tutors(app, client, market, db)
    for sort, expected in [("rating", ["Cleo", "Ada", "Bob", "Dan"]),
                           ("soonest", ["Bob", "Dan", "Ada"])]:
        seen, cursor = [], None
        for _ in range(10):
            params = {"sort": sort, "limit": 1} | ({"cursor": cursor} if cursor else {})
            page = await client.get("/api/v1/tutors", params=params)
            seen += names(page)
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert seen == expected, sort
    first = await client.get("/api/v1/tutors", params={"q": "algebra", "limit": 1})
    second = await client.get("/api/v1/tutors", params={"q": "algebra", "limit": 1,
                                                        "cursor": first.json()["next_cursor"]})
    assert sorted(names(first) + names(second)) == ["Ada", "Cleo"]
    assert second.json()["next_cursor"] is None
    wrong_sort = await client.get("/api/v1/tutors", params={
        "sort": "rating", "cursor": first.json()["next_cursor"]})
    assert wrong_sort.status_code == 422


async def test_editing_a_profile_updates_the_full_text_index(app, client, market: Market) -> None:
    from tests.scheduling.conftest import profile_body

    tutor, _ = await approved_tutor(app, client, market, headline="Chess openings")
    assert names(await client.get("/api/v1/tutors", params={"q": "chess"})) == ["Ada Tutor"]
    response = await client.put("/api/v1/tutors/me", headers=tutor.headers,
                                json=profile_body(market, headline="Violin basics"))
    assert response.status_code == 200
    assert names(await client.get("/api/v1/tutors", params={"q": "chess"})) == []
    assert names(await client.get("/api/v1/tutors", params={"q": "violin"})) == ["Ada Tutor"]
