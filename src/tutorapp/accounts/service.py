"""Accounts: sign-up, profiles, child accounts, roles, email verification and change,
privacy export and deletion. The only writer of the `users` table."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import quote
from zoneinfo import available_timezones

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import (
    AuthSession,
    OneTimeToken,
    RecoveryCode,
    RefreshToken,
    TokenPurpose,
    User,
)
from tutorapp.auth.roles import Role
from tutorapp.config import Settings
from tutorapp.core import audit
from tutorapp.core.db import rows_changed
from tutorapp.core.errors import AppError, Conflict, InvalidInput, NotFound
from tutorapp.core.security import hash_password_async, new_token, password_problem, token_hash
from tutorapp.core.time import utcnow
from tutorapp.notifications import service as notifications
from tutorapp.notifications.service import enqueue_email

_LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Z]{2})?$")


class InvalidToken(AppError):
    status, type, title = 400, "/problems/invalid-token", "Invalid or expired link"


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_time_zone(value: str, field: str = "time_zone") -> str:
    if value not in _zones():
        raise InvalidInput(field, f"unknown IANA time zone {value!r}")
    return value


def check_locale(value: str) -> str:
    if not _LOCALE.match(value):
        raise InvalidInput("locale", "use a language tag such as 'en' or 'pt-BR'")
    return value


def check_password(password: str, field: str = "password") -> str:
    if problem := password_problem(password):
        raise InvalidInput(field, problem)
    return password


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def user_by_email(db: AsyncSession, email: str) -> User | None:
    return await db.scalar(
        select(User).where(User.email == normalize_email(email), User.deleted_at.is_(None))
    )


async def get_user(db: AsyncSession, user_id: uuid.UUID) -> User:
    user = await db.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise NotFound("No such user.")
    return user


async def users_by_ids(db: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, User]:
    """The users with these ids (deleted ones too: pages still name them), by id."""
    wanted = set(ids)
    if not wanted:
        return {}
    return {u.id: u for u in await db.scalars(select(User).where(User.id.in_(wanted)))}


async def count_users(db: AsyncSession) -> int:
    """Accounts that are not deleted."""
    return await db.scalar(
        select(func.count()).select_from(User).where(User.deleted_at.is_(None))) or 0


def app_metadata(user: User) -> dict[str, Any]:
    """What only we change, as Supabase's `app_metadata` (tokens and /auth/v1/user)."""
    return {"provider": "email", "providers": ["email"], "role": user.role.value}


def user_metadata(user: User) -> dict[str, Any]:
    """What the user changes, as Supabase's `user_metadata`."""
    return {"display_name": user.display_name, "time_zone": user.time_zone,
            "locale": user.locale}


def link(settings: Settings, path: str, token: str) -> str:
    """The emailed link: `path` is ours by default, or a /auth/v1/verify address with
    its own query (`type`, `redirect_to`) when a Supabase client asked."""
    joiner = "&" if "?" in path else "?"
    return f"{settings.public_url.rstrip('/')}{path}{joiner}token={quote(token)}"


# --- sign-up and verification ---------------------------------------------------------


async def sign_up(
    db: AsyncSession, settings: Settings, *, email: str, password: str, display_name: str,
    role: Role, time_zone: str, locale: str, link_path: str = "/auth/verify",
) -> User:
    check_password(password)
    check_time_zone(time_zone)
    check_locale(locale)
    if role is Role.admin:
        raise InvalidInput("role", "administrators are appointed, not signed up")
    email = normalize_email(email)
    # Hash first, off the event loop and before any query of this request's transaction.
    password_hash = await hash_password_async(password)
    if await user_by_email(db, email):
        raise Conflict("An account with this email already exists.", field="email")
    user = User(
        email=email, password_hash=password_hash, display_name=display_name.strip(),
        role=role, time_zone=time_zone, locale=locale,
    )
    db.add(user)
    try:
        await db.flush()
    except IntegrityError as exc:  # a concurrent sign-up with the same address won
        raise Conflict("An account with this email already exists.", field="email") from exc
    await audit.record(db, "user.signed_up", subject_type="user", subject_id=user.id,
                       actor_id=user.id, role=role.value)
    await send_verification(db, settings, user, link_path)
    return user


async def issue_one_time_token(
    db: AsyncSession, user: User, purpose: TokenPurpose, ttl: timedelta, *,
    secret: str | None = None, hashed: str | None = None, new_email: str | None = None,
) -> str:
    """Store a single-use token (only its hash) and return the secret to send."""
    secret = secret or new_token()
    db.add(OneTimeToken(
        user_id=user.id, purpose=purpose, token_hash=hashed or token_hash(secret),
        expires_at=utcnow() + ttl, new_email=new_email,
    ))
    await db.flush()
    return secret


async def send_verification(
    db: AsyncSession, settings: Settings, user: User, link_path: str = "/auth/verify"
) -> None:
    if not user.email:
        raise Conflict("This account has no email address to verify.", field="email")
    token = await issue_one_time_token(
        db, user, TokenPurpose.verify_email, timedelta(hours=settings.email_verification_ttl_hours)
    )
    await enqueue_email(
        db, to=user.email, template="auth/verify_email", user_id=user.id, locale=user.locale,
        context={"name": user.display_name, "link": link(settings, link_path, token),
                 "hours": settings.email_verification_ttl_hours},
    )


async def consume_token(
    db: AsyncSession, purposes: tuple[TokenPurpose, ...], hashed: str,
    user_id: uuid.UUID | None = None,
) -> OneTimeToken:
    """Mark a token used, exactly once even under concurrent use (conditional UPDATE)."""
    now = utcnow()
    query = select(OneTimeToken).where(
        OneTimeToken.token_hash == hashed, OneTimeToken.purpose.in_(purposes)
    )
    if user_id is not None:
        query = query.where(OneTimeToken.user_id == user_id)
    row = await db.scalar(query)
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise InvalidToken("This link or code is invalid, used or expired.")
    claimed = await db.execute(
        update(OneTimeToken)
        .where(OneTimeToken.id == row.id, OneTimeToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if rows_changed(claimed) != 1:
        raise InvalidToken("This link or code is invalid, used or expired.")
    row.used_at = now
    return row


async def verify_email_token(db: AsyncSession, settings: Settings, token: str) -> User:
    """Confirms a sign-up address, or applies a change of address."""
    row = await consume_token(
        db, (TokenPurpose.verify_email, TokenPurpose.change_email), token_hash(token)
    )
    user = await get_user(db, row.user_id)
    now = utcnow()
    if row.purpose is TokenPurpose.change_email:
        if not row.new_email:
            raise ValueError(f"change-email token {row.id} carries no new address")
        if await user_by_email(db, row.new_email):
            raise Conflict("That address now belongs to another account.", field="email")
        old = user.email
        user.email = row.new_email
        user.email_verified_at = now
        await db.flush()
        await audit.record(db, "user.email_changed", subject_type="user", subject_id=user.id,
                           actor_id=user.id, old=old, new=row.new_email)
        if old:
            await enqueue_email(db, to=old, template="auth/email_changed", user_id=user.id,
                                locale=user.locale,
                                context={"name": user.display_name, "new_email": row.new_email})
        return user
    if user.email_verified_at is None:
        user.email_verified_at = now
        await audit.record(db, "user.email_verified", subject_type="user", subject_id=user.id,
                           actor_id=user.id)
        await enqueue_email(db, to=user.email or "", template="auth/welcome", user_id=user.id,
                            locale=user.locale,
                            context={"name": user.display_name,
                                     "link": settings.public_url.rstrip("/") + "/app"})
    return user


async def request_email_change(
    db: AsyncSession, settings: Settings, user: User, new_email: str
) -> None:
    new_email = normalize_email(new_email)
    if new_email == user.email:
        raise InvalidInput("new_email", "this is already your address")
    if await user_by_email(db, new_email):
        raise Conflict("An account with this email already exists.", field="new_email")
    token = await issue_one_time_token(
        db, user, TokenPurpose.change_email,
        timedelta(hours=settings.email_verification_ttl_hours), new_email=new_email,
    )
    await enqueue_email(
        db, to=new_email, template="auth/confirm_email_change", user_id=user.id, locale=user.locale,
        context={"name": user.display_name, "link": link(settings, "/auth/verify", token),
                 "hours": settings.email_verification_ttl_hours},
    )


# --- profile, children, roles -----------------------------------------------------


async def update_profile(
    db: AsyncSession, user: User, *, display_name: str | None, time_zone: str | None,
    locale: str | None,
) -> User:
    if display_name is not None:
        user.display_name = display_name.strip()
    if time_zone is not None:
        user.time_zone = check_time_zone(time_zone)
    if locale is not None:
        user.locale = check_locale(locale)
    await db.flush()
    return user


async def add_child(
    db: AsyncSession, parent: User, *, display_name: str, time_zone: str | None,
    email: str | None,
) -> User:
    if parent.role is not Role.parent:
        raise InvalidInput("role", "only parent accounts manage children")
    email = normalize_email(email) if email else None
    if email and await user_by_email(db, email):
        raise Conflict("An account with this email already exists.", field="email")
    child = User(
        email=email, display_name=display_name.strip(), role=Role.student,
        time_zone=check_time_zone(time_zone or parent.time_zone), locale=parent.locale,
        parent_id=parent.id,
    )
    db.add(child)
    await db.flush()
    await audit.record(db, "user.child_added", subject_type="user", subject_id=child.id,
                       actor_id=parent.id)
    return child


async def children_of(db: AsyncSession, parent: User) -> list[User]:
    rows = await db.scalars(
        select(User).where(User.parent_id == parent.id, User.deleted_at.is_(None))
        .order_by(User.created_at)
    )
    return list(rows)


async def child_of(db: AsyncSession, parent: User, child_id: uuid.UUID) -> User:
    child = await db.get(User, child_id)
    if child is None or child.parent_id != parent.id or child.deleted_at is not None:
        raise NotFound("No such child on your account.")
    return child


async def change_role(db: AsyncSession, admin: User, user_id: uuid.UUID, role: Role,
                      *, ip: str | None) -> User:
    user = await get_user(db, user_id)
    if user.id == admin.id and role is not Role.admin:
        raise InvalidInput("role", "you cannot remove your own admin role")
    old = user.role
    if old is not role:
        user.role = role
        await db.flush()
        await audit.record(db, "user.role_changed", subject_type="user", subject_id=user.id,
                           actor_id=admin.id, ip=ip, old=old.value, new=role.value)
    return user


async def list_users(
    db: AsyncSession, *, role: Role | None, query: str | None, limit: int, offset: int
) -> list[User]:
    statement = select(User).where(User.deleted_at.is_(None))
    if role:
        statement = statement.where(User.role == role)
    if query:
        pattern = f"%{query.lower()}%"
        statement = statement.where(
            User.email.like(pattern) | User.display_name.ilike(pattern)
        )
    rows = await db.scalars(statement.order_by(User.created_at.desc()).limit(limit).offset(offset))
    return list(rows)


# --- privacy -------------------------------------------------------------------------

Exporter = Callable[[AsyncSession, User], Awaitable[Any]]
_EXPORTERS: dict[str, Exporter] = {}


def register_exporter(name: str) -> Callable[[Exporter], Exporter]:
    """Each domain adds what it holds about a user to the privacy export under `name`
    (accounts cannot know every domain's tables, and must not depend on them)."""

    def register(exporter: Exporter) -> Exporter:
        _EXPORTERS[name] = exporter
        return exporter

    return register


Eraser = Callable[[AsyncSession, User], Awaitable[None]]
_ERASERS: dict[str, Eraser] = {}


def register_eraser(name: str) -> Callable[[Eraser], Eraser]:
    """Each domain withdraws what a deleted account leaves behind (a public profile,
    future lessons) before accounts anonymises the user."""

    def register(eraser: Eraser) -> Eraser:
        _ERASERS[name] = eraser
        return eraser

    return register


def row_dict(obj: Any, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A table row as JSON-ready values."""
    values: dict[str, Any] = {}
    for column in obj.__table__.columns:
        if column.key in exclude:
            continue
        value = getattr(obj, column.key)
        values[column.key] = value.isoformat() if isinstance(value, datetime) else (
            str(value) if isinstance(value, uuid.UUID) else value
        )
    return values


_SECRETS = ("password_hash", "totp_secret_encrypted", "cookie_token_hash", "token_hash",
            "code_hash")


async def export(db: AsyncSession, user: User) -> dict[str, Any]:
    """Everything we hold about the user, secrets excluded."""
    children = await children_of(db, user)
    sessions = await db.scalars(select(AuthSession).where(AuthSession.user_id == user.id))
    emails = await notifications.messages_of(db, user.id)
    events = await db.scalars(
        select(audit.AuditEvent).where(
            (audit.AuditEvent.actor_id == user.id)
            | ((audit.AuditEvent.subject_type == "user")
               & (audit.AuditEvent.subject_id == str(user.id)))
        ).order_by(audit.AuditEvent.created_at)
    )
    return {
        "exported_at": utcnow().isoformat(),
        "user": row_dict(user, exclude=_SECRETS),
        "children": [row_dict(c, exclude=_SECRETS) for c in children],
        "sessions": [row_dict(s, exclude=_SECRETS) for s in sessions],
        "emails": [row_dict(e, exclude=("html",)) for e in emails],
        "audit_events": [row_dict(e) for e in events],
    } | {name: await exporter(db, user) for name, exporter in sorted(_EXPORTERS.items())}


async def delete_account(db: AsyncSession, user: User, *, ip: str | None) -> None:
    """Erase personal data; keep the anonymised row that bookings and the ledger point at."""
    now = utcnow()
    for person in [user, *await children_of(db, user)]:
        for _, eraser in sorted(_ERASERS.items()):
            await eraser(db, person)
        await db.execute(
            update(AuthSession).where(AuthSession.user_id == person.id,
                                      AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason="account_deleted")
        )
        for model in (OneTimeToken, RecoveryCode):
            for row in await db.scalars(select(model).where(model.user_id == person.id)):
                await db.delete(row)
        person.email = None
        person.email_verified_at = None
        person.password_hash = None
        person.display_name = "Deleted user"
        person.totp_secret_encrypted = None
        person.totp_enabled_at = None
        person.totp_last_step = None
        person.deleted_at = now
    await notifications.forget_user(db, user.id)
    await db.execute(
        update(RefreshToken).where(RefreshToken.session_id.in_(
            select(AuthSession.id).where(AuthSession.user_id == user.id)
        )).values(rotated_at=now)
    )
    await db.flush()
    await audit.record(db, "user.deleted", subject_type="user", subject_id=user.id,
                       actor_id=user.id, ip=ip)
