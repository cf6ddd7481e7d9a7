"""Demo data for a fresh installation: known accounts plus a realistic marketplace."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyotp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.auth.roles import Role
from tutorapp.core.db import Database
from tutorapp.core.security import encrypt, hash_password
from tutorapp.core.time import utcnow

DEMO_PASSWORD = "demo-password-2026"


@dataclass(frozen=True)
class DemoAccount:
    role: Role
    email: str
    display_name: str
    time_zone: str


DEMO_ACCOUNTS = (
    DemoAccount(Role.admin, "admin@example.com", "Ada Admin", "Europe/London"),
    DemoAccount(Role.tutor, "tutor@example.com", "Tomás Tutor", "Europe/Madrid"),
    DemoAccount(Role.student, "student@example.com", "Sam Student", "America/New_York"),
    DemoAccount(Role.parent, "parent@example.com", "Priya Parent", "Asia/Kolkata"),
)


@dataclass
class DemoResult:
    created: bool
    accounts: list[DemoAccount]
    admin_totp_secret: str | None


async def is_empty(db: Database) -> bool:
    async with db.session() as session:
        return not await session.scalar(select(func.count()).select_from(User))


async def seed_demo(
    db: Database, *, tutors: int, advance: Callable[[int], None] | None = None
) -> DemoResult:
    """Create the demo accounts (admin with TOTP, tutor, student, parent with a child)
    and `tutors` more approved tutors with availability, bookings and reviews."""
    advance = advance or (lambda _: None)
    secret = pyotp.random_base32()
    password_hash = hash_password(DEMO_PASSWORD)
    now = utcnow()
    async with db.unit_of_work() as session:
        users = {}
        for account in DEMO_ACCOUNTS:
            user = User(email=account.email, email_verified_at=now, password_hash=password_hash,
                        display_name=account.display_name, role=account.role,
                        time_zone=account.time_zone, locale="en")
            if account.role is Role.admin:
                user.totp_secret_encrypted = encrypt(db.settings, secret)
                user.totp_enabled_at = now
            session.add(user)
            users[account.role] = user
        await session.flush()
        session.add(User(display_name="Mia", role=Role.student, time_zone="Asia/Kolkata",
                         locale="en", parent_id=users[Role.parent].id))
        await session.flush()
        advance(len(DEMO_ACCOUNTS))
        await _seed_marketplace(session, tutors=tutors, demo_tutor=users[Role.tutor],
                                advance=advance)
    return DemoResult(created=True, accounts=list(DEMO_ACCOUNTS), admin_totp_secret=secret)


async def _seed_marketplace(session: AsyncSession, *, tutors: int, demo_tutor: User,
                            advance: Callable[[int], None]) -> None:
    """The marketplace's own demo data (catalogue, tutors, availability, bookings)."""
    try:
        from tutorapp.demo_market import seed_demo as seed_marketplace
    except ImportError:  # the marketplace domain is not installed in this build
        return
    if tutors:  # `--tutors 0`: the demo accounts alone
        await seed_marketplace(session, tutors=tutors)
        advance(tutors)
