"""Demo data: a catalogue, realistic tutors with availability, students, parents and
children, past lessons with reviews and upcoming bookings. Deterministic per `seed`.

`seed_demo(session, tutors=N)` is what `tutorapp seed --demo --tutors N` calls; it
flushes, the caller commits. Every demo account's password is `DEMO_PASSWORD`.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.auth.roles import Role
from tutorapp.config import Settings, get_settings
from tutorapp.core.security import hash_password
from tutorapp.core.time import utcnow
from tutorapp.reviews import schemas as review_schemas
from tutorapp.reviews import service as reviews
from tutorapp.scheduling import availability, schemas
from tutorapp.scheduling.models import Booking, BookingStatus
from tutorapp.tutors import schemas as tutor_schemas
from tutorapp.tutors import service as tutor_service
from tutorapp.tutors.models import Language, Level, Subject

DEMO_PASSWORD = "demo-password-2026"
DEMO_DOMAIN = "demo.example.com"  # .test addresses are refused by the API's email validation

SUBJECTS = [
    ("mathematics", "Mathematics", None), ("algebra", "Algebra", "mathematics"),
    ("geometry", "Geometry", "mathematics"), ("calculus", "Calculus", "mathematics"),
    ("statistics", "Statistics", "mathematics"),
    ("sciences", "Sciences", None), ("physics", "Physics", "sciences"),
    ("chemistry", "Chemistry", "sciences"), ("biology", "Biology", "sciences"),
    ("languages", "Languages", None), ("english", "English", "languages"),
    ("french", "French", "languages"), ("spanish", "Spanish", "languages"),
    ("german", "German", "languages"),
    ("computing", "Computing", None), ("python", "Python programming", "computing"),
    ("music", "Music", None), ("piano", "Piano", "music"), ("guitar", "Guitar", "music"),
]
LANGUAGES = [("en", "English"), ("fr", "French"), ("es", "Spanish"), ("de", "German"),
             ("hi", "Hindi"), ("pt", "Portuguese")]
ZONES = ["Europe/London", "Europe/Paris", "America/New_York", "America/Los_Angeles",
         "Asia/Kolkata", "Australia/Sydney", "America/Sao_Paulo", "Europe/Berlin"]
FIRST = ["Ada", "Grace", "Alan", "Emmy", "Srinivasa", "Marie", "Nikola", "Rosalind", "Carl",
         "Sofia", "Hypatia", "Leonhard", "Katherine", "Dorothy", "Blaise", "Mary", "Niels",
         "Lise", "Chandra", "Ibn", "Maryam", "Terence", "Ruth", "Omar"]
LAST = ["Lovelace", "Hopper", "Turing", "Noether", "Ramanujan", "Curie", "Tesla", "Franklin",
        "Gauss", "Kovalevskaya", "Euler", "Johnson", "Vaughan", "Pascal", "Somerville", "Bohr",
        "Meitner", "Bose", "Sina", "Mirzakhani", "Tao", "Lawrence", "Khayyam", "Hodgkin"]
STYLES = ["Patient", "Exam-focused", "Friendly", "Experienced", "Playful", "Structured"]
REVIEW_TEXT = ["Clear explanations and lots of practice.", "My grades went up a whole band.",
               "Always on time, very well prepared.", "Made a hard topic feel easy.",
               "Good lesson, a bit fast for me.", "Kind, encouraging and precise."]
LEVELS = ["primary", "secondary", "university", "adult"]


async def _catalogue(session: AsyncSession) -> tuple[dict[str, Subject], list[str]]:
    existing = {s.path: s for s in await session.scalars(select(Subject))}
    paths: dict[str, str] = {}
    for slug, name, parent in SUBJECTS:
        path = f"{paths[parent]}/{slug}" if parent else slug
        paths[slug] = path
        if path not in existing:
            parent_id = existing[paths[parent]].id if parent else None
            existing[path] = await tutor_service.create_subject(
                session, tutor_schemas.SubjectIn(name=name, slug=slug, parent_id=parent_id),
                actor_id=None,  # type: ignore[arg-type]
            )
    codes = set(await session.scalars(select(Language.code)))
    for code, name in LANGUAGES:
        if code not in codes:
            await tutor_service.create_language(session, tutor_schemas.LanguageIn(code=code, name=name),
                                         actor_id=None)  # type: ignore[arg-type]
    leaves = {p: s for p, s in existing.items() if "/" in p}
    return leaves, [c for c, _ in LANGUAGES]


async def seed_demo(session: AsyncSession, *, tutors: int, settings: Settings | None = None,
                    now: datetime | None = None, seed: int = 2026) -> dict[str, int]:
    """Create `tutors` approved tutors with students, lessons and reviews; returns counts."""
    settings = settings or get_settings()
    now = now or utcnow()
    rng = random.Random(seed)
    password = hash_password(DEMO_PASSWORD)
    subjects, languages = await _catalogue(session)
    offset = await session.scalar(
        select(func.count()).select_from(User).where(User.email.like(f"tutor%@{DEMO_DOMAIN}"))
    ) or 0

    def user(email: str | None, name: str, role: Role, tz: str, parent: User | None = None) -> User:
        account = User(email=email, display_name=name, role=role, time_zone=tz,
                       password_hash=password if email else None, email_verified_at=now,
                       parent_id=parent.id if parent else None, locale="en")
        session.add(account)
        return account

    students: list[User] = []
    for i in range(max(4, tutors * 2)):
        n = offset * 2 + i
        students.append(user(f"student{n}@{DEMO_DOMAIN}", f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                             Role.student, rng.choice(ZONES)))
    parents = [user(f"parent{offset + i}@{DEMO_DOMAIN}", f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                    Role.parent, rng.choice(ZONES)) for i in range(max(1, tutors // 4))]
    await session.flush()
    children = [user(None, f"{rng.choice(FIRST)} junior", Role.student, p.time_zone, parent=p)
                for p in parents]
    await session.flush()
    learners: list[tuple[User, User]] = [(s, s) for s in students] + [
        (c, next(p for p in parents if p.id == c.parent_id)) for c in children]

    counts = {"tutors": 0, "students": len(students) + len(children), "parents": len(parents),
              "bookings": 0, "reviews": 0}
    leaf_paths = sorted(subjects)
    for i in range(tutors):
        n = offset + i
        first, last = rng.choice(FIRST), rng.choice(LAST)
        tz = rng.choice(ZONES)
        taught = rng.sample(leaf_paths, k=rng.randint(1, 3))
        names = ", ".join(subjects[p].name.lower() for p in taught)
        account = user(f"tutor{n}@{DEMO_DOMAIN}", f"{first} {last}", Role.tutor, tz)
        await session.flush()
        profile = await tutor_service.save_profile(session, account, tutor_schemas.ProfileIn(
            headline=f"{rng.choice(STYLES)} tutor of {names}",
            bio_markdown=(f"Hello, I am **{first}**. I have taught {names} for "
                          f"{rng.randint(2, 25)} years.\n\n- tailored plans\n- homework help\n"
                          "- exam practice"),
            subjects=[tutor_schemas.TutorSubjectIn(subject_id=subjects[p].id,
                                                   level=Level(rng.choice(LEVELS))) for p in taught],
            languages=rng.sample(languages, k=rng.randint(1, 2)),
            time_zone=tz,
            meeting_link=f"https://meet.example.com/{first.lower()}-{n}",
            lesson_lengths=sorted(rng.sample([30, 45, 60, 90], k=rng.randint(1, 3))),
            requires_approval=rng.random() < 0.2, buffer_minutes=rng.choice([0, 0, 10, 15]),
            min_notice_minutes=rng.choice([60, 12 * 60, 24 * 60]), horizon_days=90,
            free_cancellation_hours=rng.choice([12, 24, 48]),
        ), settings=settings)
        await tutor_service.submit(session, account)
        await tutor_service.approve(session, profile.id, admin_id=None)  # type: ignore[arg-type]
        start_hour = rng.choice([8, 9, 10, 14, 16])
        days = sorted(rng.sample(range(7), k=rng.randint(3, 6)))
        await availability.set_availability(session, profile, schemas.AvailabilityIn(rules=[
            schemas.RuleIn(weekday=d, start=f"{start_hour:02d}:00",
                           end=f"{min(start_hour + rng.randint(3, 6), 23):02d}:00") for d in days
        ]), actor_id=account.id)
        counts["tutors"] += 1

        # lessons on the tutor's grid: past ones completed (most reviewed), future ones booked
        length = profile.lesson_lengths[0]
        base = now.replace(minute=0, second=0, microsecond=0)
        for k in range(rng.randint(2, 6)):
            student, booker = rng.choice(learners)
            past = k % 2 == 0
            start = base + timedelta(days=(-7 * (k + 1)) if past else (2 + 3 * k), hours=k)
            end = start + timedelta(minutes=length)
            booking = Booking(
                tutor_id=profile.id, tutor_user_id=account.id, student_id=student.id,
                booked_by_id=booker.id, start_at=start, end_at=end,
                blocked_until=end + timedelta(minutes=profile.buffer_minutes), length=length,
                status=BookingStatus.completed if past else BookingStatus.confirmed,
                sequence=0,
                tutor_notes="Worked through past papers." if past else None,
            )
            session.add(booking)
            await session.flush()
            counts["bookings"] += 1
            if past and rng.random() < 0.8:
                await reviews.create(session, booking.id, booker, review_schemas.ReviewIn(
                    stars=rng.choices([5, 4, 3, 2], weights=[6, 3, 1, 0.3])[0],
                    text=rng.choice(REVIEW_TEXT)), now=end + timedelta(hours=2))
                counts["reviews"] += 1
    return counts


def describe(counts: dict[str, Any]) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items())
