"""TOTP second factor (RFC 6238) with single-use codes and recovery codes."""

from __future__ import annotations

import base64
import secrets
import time

import pyotp
import segno
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import AuthSession, RecoveryCode, User
from tutorapp.accounts.sessions import Client, Tokens, reauthenticated
from tutorapp.config import Settings
from tutorapp.core import audit
from tutorapp.core.db import rows_changed
from tutorapp.core.errors import AppError, Conflict, InvalidInput
from tutorapp.core.ratelimit import Limit, RateLimiter
from tutorapp.core.security import decrypt, encrypt, keyed_hash
from tutorapp.core.time import utcnow
from tutorapp.notifications.service import enqueue_email

ISSUER = "TutorApp"
RECOVERY_CODES = 10
STEP_SECONDS = 30


class InvalidCode(AppError):
    status, type, title = 400, "/problems/invalid-mfa-code", "Invalid code"


def _totp(settings: Settings, user: User) -> pyotp.TOTP:
    if not user.totp_secret_encrypted:
        raise Conflict("Two-factor authentication is not set up.")
    return pyotp.TOTP(decrypt(settings, user.totp_secret_encrypted), interval=STEP_SECONDS)


def _matching_step(totp: pyotp.TOTP, code: str, at: float) -> int | None:
    """The time step (now, or one either side for clock drift) whose code this is."""
    now_step = int(at // STEP_SECONDS)
    for step in (now_step, now_step - 1, now_step + 1):
        if secrets.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


async def _accept_code(settings: Settings, user: User, code: str) -> bool:
    """Accept a TOTP code once: a step at or before the last accepted one is a replay."""
    step = _matching_step(_totp(settings, user), code, time.time())
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False
    user.totp_last_step = step
    return True


def _qr_svg(uri: str) -> str:
    return segno.make(uri, error="m").svg_inline(scale=4, dark="#1d2430")


async def begin_enrolment(db: AsyncSession, settings: Settings, user: User) -> dict[str, str]:
    if user.mfa_enabled:
        raise Conflict("Two-factor sign-in is already on; turn it off first to re-enrol.")
    secret = pyotp.random_base32()
    user.totp_secret_encrypted = encrypt(settings, secret)
    user.totp_last_step = None
    await db.flush()
    uri = pyotp.TOTP(secret).provisioning_uri(
        name=user.email or str(user.id), issuer_name=ISSUER
    )
    svg = _qr_svg(uri)
    return {"secret": secret, "otpauth_uri": uri, "qr_svg": svg,
            "qr_code": "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()}


async def _new_recovery_codes(db: AsyncSession, settings: Settings, user: User) -> list[str]:
    await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
    db.add_all(RecoveryCode(user_id=user.id, code_hash=keyed_hash(settings, c)) for c in codes)
    await db.flush()
    return codes


async def activate(
    db: AsyncSession, settings: Settings, user: User, current: AuthSession, code: str,
    client: Client,
) -> tuple[Tokens, list[str]]:
    """Confirm enrolment with a first code: TOTP is on, the session becomes aal2."""
    if user.mfa_enabled:
        raise Conflict("Two-factor sign-in is already on.")
    if not user.totp_secret_encrypted:
        raise Conflict("Start the enrolment first.")
    if not await _accept_code(settings, user, code):
        raise InvalidCode("That code is not valid for your authenticator right now.")
    user.totp_enabled_at = utcnow()
    codes = await _new_recovery_codes(db, settings, user)
    await audit.record(db, "user.mfa_enabled", subject_type="user", subject_id=user.id,
                       actor_id=user.id, ip=client.ip)
    if user.email:
        await enqueue_email(db, to=user.email, template="auth/mfa_changed", user_id=user.id,
                            locale=user.locale,
                            context={"name": user.display_name, "enabled": True})
    tokens = await reauthenticated(db, settings, user, current, client=client,
                                   add_amr="totp", aal="aal2")
    return tokens, codes


async def verify(
    db: AsyncSession, settings: Settings, limiter: RateLimiter, user: User,
    current: AuthSession, *, code: str | None, recovery_code: str | None, client: Client,
) -> Tokens:
    """Step an aal1 session up to aal2 with a TOTP or a recovery code."""
    if not user.mfa_enabled:
        raise Conflict("Two-factor sign-in is not on for this account.")
    limit = Limit("totp-account", settings.login_attempts_per_account,
                  settings.login_window_minutes * 60)
    await limiter.hit(limit, str(user.id))
    await limiter.hit(Limit("login-ip", settings.login_attempts_per_ip,
                            settings.login_window_minutes * 60), client.ip or "unknown")
    # Lock the user row so two requests cannot both accept the same code.
    await db.execute(select(User.id).where(User.id == user.id).with_for_update())
    if code:
        if not await _accept_code(settings, user, code):
            raise InvalidCode("That code is not valid, or was already used.")
        method = "totp"
    elif recovery_code:
        used = await db.execute(
            update(RecoveryCode)
            .where(RecoveryCode.user_id == user.id,
                   RecoveryCode.code_hash == keyed_hash(settings, recovery_code.strip().lower()),
                   RecoveryCode.used_at.is_(None))
            .values(used_at=utcnow())
        )
        if rows_changed(used) != 1:
            raise InvalidCode("That recovery code is not valid, or was already used.")
        method = "recovery"
        await audit.record(db, "user.recovery_code_used", subject_type="user",
                           subject_id=user.id, actor_id=user.id, ip=client.ip)
    else:
        raise InvalidInput("code", "send a 6-digit code or a recovery code")
    await limiter.clear(limit, str(user.id))
    return await reauthenticated(db, settings, user, current, client=client,
                                 add_amr=method, aal="aal2")


async def disable(
    db: AsyncSession, settings: Settings, user: User, code: str, client: Client
) -> None:
    if not user.mfa_enabled:
        raise Conflict("Two-factor sign-in is not on.")
    if not await _accept_code(settings, user, code):
        raise InvalidCode("That code is not valid, or was already used.")
    user.totp_enabled_at = None
    user.totp_secret_encrypted = None
    user.totp_last_step = None
    await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    await db.flush()
    await audit.record(db, "user.mfa_disabled", subject_type="user", subject_id=user.id,
                       actor_id=user.id, ip=client.ip)
    if user.email:
        await enqueue_email(db, to=user.email, template="auth/mfa_changed", user_id=user.id,
                            locale=user.locale,
                            context={"name": user.display_name, "enabled": False})


async def regenerate_recovery_codes(
    db: AsyncSession, settings: Settings, user: User
) -> list[str]:
    if not user.mfa_enabled:
        raise Conflict("Two-factor sign-in is not on.")
    return await _new_recovery_codes(db, settings, user)
