"""EXPLAIN ANALYZE the SQL the marketplace sends for search and slots, on the bench
database (PostgreSQL). Captures the statements of real service calls, then runs each
with its parameters under EXPLAIN (ANALYZE, BUFFERS). Output: Markdown on stdout.

    TUTORAPP_DATABASE_URL=postgresql://…/tutorapp_bench python bench/marketplace/explain.py
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select

from tutorapp.config import Settings
from tutorapp.core.db import Database
from tutorapp.scheduling import availability
from tutorapp.tutors import search
from tutorapp.tutors.models import TutorProfile

CASES = [
    ("full text, relevance", dict(q="algebra", sort="relevance")),
    ("full text + subject subtree + rating sort", dict(q="exam", subject="mathematics", sort="rating")),
    ("subject subtree + level, rating sort (no text)", dict(subject="sciences", level="secondary", sort="rating")),
    ("language + minimum rating", dict(language="fr", min_rating=4.5, sort="rating")),
    ("rating sort, page 2 (keyset)", dict(sort="rating", cursor="__page2__")),
]


async def main() -> None:
    settings = Settings()
    db = Database(settings)
    captured: list[tuple[str, object]] = []

    @event.listens_for(db.primary.sync_engine, "before_cursor_execute")
    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    now = datetime.now(UTC)
    out = []
    for title, params in CASES:
        async with db.session() as session:
            if params.get("cursor") == "__page2__":
                first = await search.search(session, search.Query(sort="rating"), settings=settings,
                                            now=now, dialect="postgresql")
                params = dict(params, cursor=first.next_cursor)
            captured.clear()
            await search.search(session, search.Query(**params), settings=settings, now=now,
                                dialect="postgresql")
            statement, parameters = next((st, p) for st, p in captured
                                         if "FROM tutor_profiles" in st and "ORDER BY" in st)
            raw = await session.connection()
            driver = (await raw.get_raw_connection()).driver_connection
            rows = await driver.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *parameters)
            out.append((title, params, statement, [r[0] for r in rows]))
    # slots: the busy-time query of one tutor's week
    async with db.session() as session:
        profile = await session.scalar(select(TutorProfile).limit(1).offset(12345))
        captured.clear()
        await availability.slots(session, profile, now + timedelta(days=7), now + timedelta(days=14),
                                 length=60, settings=settings, now=now)
        raw = await session.connection()
        driver = (await raw.get_raw_connection()).driver_connection
        for statement, parameters in captured:
            rows = await driver.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *parameters)
            out.append(("slots: " + statement.split("FROM", 1)[1].split()[0], {}, statement,
                        [r[0] for r in rows]))
    for title, params, statement, plan in out:
        print(f"#### {title}\n")
        if params:
            print(f"`{ {k: v for k, v in params.items() if k != 'cursor'} }`\n")
        print("```sql\n" + statement.strip() + "\n```\n\n```\n" + "\n".join(plan) + "\n```\n")
    await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
