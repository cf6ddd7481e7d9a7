"""Generate a large marketplace for load tests: tutors, students, availability,
past and future bookings, reviews — on SQLite or PostgreSQL.

    TUTORAPP_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/tutorapp_bench \
        python bench/marketplace/generate.py --tutors 50000 --bookings 1000000 --reviews 500000

The database is migrated first (it should be empty). Rows go in with bulk Core
inserts in the migrations' schema, so the exclusion constraint, FTS triggers and
indexes are all live while loading. Also writes bench/marketplace/out/:
  tutors.txt     approved tutor ids (for profile + slots requests)
  tokens.txt     bearer tokens of bench students (for booking requests)
  bookable.txt   tutor_id,start pairs inside availability and not booked
Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from tutorapp.accounts.models import AuthSession, User
from tutorapp.auth.roles import Role
from tutorapp.config import Settings
from tutorapp.core import migrate
from tutorapp.core.db import create_engine
from tutorapp.core.security import issue_access_token
from tutorapp.reviews.models import Review
from tutorapp.scheduling.models import AvailabilityRule, Booking
from tutorapp.tutors.models import Language, Subject, TutorLanguage, TutorProfile, TutorSubject

OUT = Path(__file__).parent / "out"
WORDS = ["algebra", "geometry", "calculus", "statistics", "physics", "chemistry", "biology",
         "english", "french", "spanish", "german", "python", "piano", "guitar", "essay",
         "exam", "grammar", "reading", "coding", "history"]
SUBJECTS = [("mathematics", None), ("algebra", "mathematics"), ("geometry", "mathematics"),
            ("calculus", "mathematics"), ("statistics", "mathematics"), ("sciences", None),
            ("physics", "sciences"), ("chemistry", "sciences"), ("biology", "sciences"),
            ("languages", None), ("english", "languages"), ("french", "languages"),
            ("spanish", "languages"), ("german", "languages"), ("computing", None),
            ("python", "computing"), ("music", None), ("piano", "music"), ("guitar", "music")]
ZONES = ["Europe/London", "Europe/Paris", "America/New_York", "America/Los_Angeles",
         "Asia/Kolkata", "Australia/Sydney", "America/Sao_Paulo", "Europe/Berlin"]
LEVELS = ["primary", "secondary", "university", "adult"]
CHUNK = 5000


async def load(table, rows: list[dict], engine) -> None:
    for i in range(0, len(rows), CHUNK):
        async with engine.begin() as connection:
            await connection.execute(insert(table), rows[i:i + CHUNK])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tutors", type=int, default=50_000)
    parser.add_argument("--students", type=int, default=0, help="default: tutors * 2")
    parser.add_argument("--bookings", type=int, default=1_000_000)
    parser.add_argument("--reviews", type=int, default=500_000)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    settings = Settings()
    rng = random.Random(args.seed)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    started = time.monotonic()
    await asyncio.to_thread(migrate.upgrade, settings)
    engine = create_engine(settings, settings.database_url)

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {message}", flush=True)

    # catalogue
    subjects, paths = [], {}
    for slug, parent in SUBJECTS:
        path = f"{paths[parent]}/{slug}" if parent else slug
        paths[slug] = path
        subjects.append({"id": uuid.uuid4(), "slug": slug, "name": slug.title(), "path": path,
                         "parent_id": next((s["id"] for s in subjects if s["slug"] == parent), None),
                         "created_at": now, "updated_at": now})
    languages = [{"id": uuid.uuid4(), "code": c, "name": c, "created_at": now, "updated_at": now}
                 for c in ["en", "fr", "es", "de", "hi", "pt"]]
    await load(Subject.__table__, subjects, engine)
    await load(Language.__table__, languages, engine)
    leaves = [s for s in subjects if s["parent_id"] is not None]

    # users
    n_students = args.students or args.tutors * 2
    tutors, students = [], []
    for i in range(args.tutors):
        tutors.append({"id": uuid.uuid4(), "email": f"tutor{i}@bench.test", "display_name": f"Tutor {i}",
                       "role": Role.tutor, "time_zone": rng.choice(ZONES), "locale": "en",
                       "email_verified_at": now, "created_at": now, "updated_at": now})
    for i in range(n_students):
        students.append({"id": uuid.uuid4(), "email": f"student{i}@bench.test",
                         "display_name": f"Student {i}", "role": Role.student, "time_zone": "UTC",
                         "locale": "en", "email_verified_at": now, "created_at": now,
                         "updated_at": now})
    await load(User.__table__, tutors + students, engine)
    log(f"{len(tutors)} tutors and {len(students)} students")

    # profiles, subjects, languages, availability
    profiles, tutor_subjects, tutor_languages, rules = [], [], [], []
    for user in tutors:
        taught = rng.sample(leaves, k=rng.randint(1, 3))
        words = " ".join(rng.sample(WORDS, k=4))
        profile_id = uuid.uuid4()
        lengths = sorted(rng.sample([30, 45, 60, 90], k=rng.randint(1, 3)))
        if 60 not in lengths:
            lengths = sorted([*lengths, 60])
        profiles.append({
            "id": profile_id, "user_id": user["id"], "display_name": user["display_name"],
            "headline": f"Tutor of {' and '.join(s['slug'] for s in taught)}",
            "bio_markdown": f"I teach {words}.", "bio_html": f"<p>I teach {words}.</p>",
            "hourly_rate_minor": rng.randrange(1000, 10000, 100), "currency": "EUR",
            "time_zone": user["time_zone"], "lesson_lengths": lengths, "status": "approved",
            "requires_approval": False, "buffer_minutes": 0, "min_notice_minutes": 0,
            "horizon_days": 120, "free_cancellation_hours": 24, "rating_sum": 0,
            "rating_count": 0, "rating_avg": 0.0, "created_at": now, "updated_at": now,
            "search_text": f"{user['display_name']}\nTutor of {' '.join(s['slug'] for s in taught)}\n"
                           f"I teach {words}.\n" + " ".join(s["name"] for s in taught),
        })
        for s in taught:
            tutor_subjects.append({"id": uuid.uuid4(), "tutor_id": profile_id, "subject_id": s["id"],
                                   "level": rng.choice(LEVELS), "created_at": now, "updated_at": now})
        for lang in rng.sample(languages, k=rng.randint(1, 2)):
            tutor_languages.append({"id": uuid.uuid4(), "tutor_id": profile_id,
                                    "language_id": lang["id"], "created_at": now, "updated_at": now})
        start = rng.choice([8, 9, 10, 13]) * 60
        for weekday in rng.sample(range(7), k=5):
            rules.append({"id": uuid.uuid4(), "tutor_id": profile_id, "weekday": weekday,
                          "start_minute": start, "end_minute": start + 8 * 60,
                          "created_at": now, "updated_at": now})
    for table, rows in [(TutorProfile.__table__, profiles), (TutorSubject.__table__, tutor_subjects),
                        (TutorLanguage.__table__, tutor_languages),
                        (AvailabilityRule.__table__, rules)]:
        await load(table, rows, engine)
        log(f"{len(rows)} {table.name}")

    # bookings: each tutor's lessons on distinct days, half past (completed), half future;
    # future ones only on days at least 30 days out, so the next weeks stay bookable.
    per_tutor = max(1, args.bookings // len(profiles))
    ratings = {p["id"]: [0, 0] for p in profiles}
    reviews_left = args.reviews
    booked = 0
    batch: list[dict] = []
    review_batch: list[dict] = []
    for p, user in zip(profiles, tutors, strict=True):
        past_days = rng.sample(range(1, 400), k=per_tutor // 2 + per_tutor % 2)
        future_days = rng.sample(range(30, 120), k=per_tutor // 2)
        for offset, past in [(-d, True) for d in past_days] + [(d, False) for d in future_days]:
            start = now.replace(hour=rng.randint(0, 22)) + timedelta(days=offset)
            end = start + timedelta(minutes=60)
            student = rng.choice(students)
            booking_id = uuid.uuid4()
            batch.append({
                "id": booking_id, "tutor_id": p["id"], "tutor_user_id": user["id"],
                "student_id": student["id"], "booked_by_id": student["id"], "start_at": start,
                "end_at": end, "blocked_until": end, "length": 60,
                "status": "completed" if past else "confirmed", "price_minor": p["hourly_rate_minor"],
                "currency": "EUR", "sequence": 0, "created_at": now, "updated_at": now,
            })
            booked += 1
            if past and reviews_left > 0:
                stars = rng.choices([5, 4, 3, 2, 1], weights=[50, 30, 12, 5, 3])[0]
                review_batch.append({"id": uuid.uuid4(), "booking_id": booking_id, "tutor_id": p["id"],
                                     "author_id": student["id"], "stars": stars, "text": "Good lesson.",
                                     "created_at": end, "updated_at": end})
                ratings[p["id"]][0] += stars
                ratings[p["id"]][1] += 1
                reviews_left -= 1
        if len(batch) >= 50_000:
            await load(Booking.__table__, batch, engine)
            await load(Review.__table__, review_batch, engine)
            log(f"{booked} bookings")
            batch, review_batch = [], []
    await load(Booking.__table__, batch, engine)
    await load(Review.__table__, review_batch, engine)
    log(f"{booked} bookings, {args.reviews - reviews_left} reviews")

    from sqlalchemy import bindparam, update
    rows = [{"pid": pid, "s": s, "c": c, "a": (s / c if c else 0.0)} for pid, (s, c) in ratings.items()]
    statement = update(TutorProfile.__table__).where(
        TutorProfile.__table__.c.id == bindparam("pid")
    ).values(rating_sum=bindparam("s"), rating_count=bindparam("c"), rating_avg=bindparam("a"))
    for i in range(0, len(rows), CHUNK):
        async with engine.begin() as connection:
            await connection.execute(statement, rows[i:i + CHUNK])
    log("ratings")

    # bench callers: students with long-lived sessions and access tokens
    OUT.mkdir(exist_ok=True)
    sessions, tokens = [], []
    # the tokens outlive a long run (the server's 15-minute default would turn it into 401s)
    token_settings = settings.model_copy(update={"access_token_ttl_seconds": 30 * 86400})
    for student in students[: args.tokens]:
        session_id = uuid.uuid4()
        sessions.append({"id": session_id, "user_id": student["id"], "aal": "aal1", "amr": "pwd",
                         "authenticated_at": now, "last_seen_at": now,
                         "expires_at": now + timedelta(days=30), "created_at": now, "updated_at": now})
        token, _ = issue_access_token(token_settings, user_id=student["id"], role="student", aal="aal1",
                                      amr=["pwd"], session_id=session_id, now=now)
        tokens.append(token)
    await load(AuthSession.__table__, sessions, engine)
    (OUT / "tokens.txt").write_text("\n".join(tokens) + "\n")
    (OUT / "tutors.txt").write_text("\n".join(str(p["id"]) for p in profiles) + "\n")

    # bookable starts: next 7-28 days, inside each tutor's rules, one per tutor-day
    from tutorapp.scheduling import timeslots
    lines = []
    for p in rng.sample(profiles, k=min(len(profiles), 20_000)):
        tz = timeslots.zone(p["time_zone"])
        mine = [timeslots.WeeklyRule(r["weekday"], r["start_minute"], r["end_minute"])
                for r in rules if r["tutor_id"] == p["id"]] if len(profiles) <= 2000 else None
        if mine is None:
            break
        free = timeslots.availability(mine, [], tz, now + timedelta(days=7), now + timedelta(days=28))
        for start in timeslots.slot_starts(free, tz, length=60, step=60)[:: 3]:
            lines.append(f"{p['id']},{start.isoformat().replace('+00:00', 'Z')}")
    if not lines:  # large runs: index rules by tutor once
        by_tutor: dict = {}
        for r in rules:
            by_tutor.setdefault(r["tutor_id"], []).append(
                timeslots.WeeklyRule(r["weekday"], r["start_minute"], r["end_minute"]))
        for p in rng.sample(profiles, k=min(len(profiles), 20_000)):
            tz = timeslots.zone(p["time_zone"])
            free = timeslots.availability(by_tutor[p["id"]], [], tz, now + timedelta(days=7),
                                          now + timedelta(days=28))
            for start in timeslots.slot_starts(free, tz, length=60, step=60)[:: 3]:
                lines.append(f"{p['id']},{start.isoformat().replace('+00:00', 'Z')}")
    rng.shuffle(lines)
    (OUT / "bookable.txt").write_text("\n".join(lines) + "\n")
    log(f"{len(tokens)} tokens, {len(lines)} bookable starts written to {OUT}")
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
