"""Signing in and staying signed in: login sessions, access and refresh tokens.

One `AuthSession` row per login, shared by the browser cookie and the API's
refresh tokens. Access tokens are short-lived JWTs naming the session; every
request checks that the session is still live, so a sign-out takes effect at once.
Refresh tokens are opaque, stored hashed and rotated on every use; a token used
again after its rotation (past a short grace for racing clients) ends the session.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import AuthSession, OneTimeToken, RefreshToken, TokenPurpose, User
from tutorapp.accounts.service import (
    InvalidToken,
    app_metadata,
    check_password,
    consume_token,
    get_user,
    issue_one_time_token,
    link,
    normalize_email,
    user_by_email,
    user_metadata,
)
from tutorapp.auth.deps import IdentityStore, use_identities
from tutorapp.config import Settings
from tutorapp.core import audit
from tutorapp.core.db import rows_changed
from tutorapp.core.errors import AppError, InvalidInput, NotFound, TooManyRequests
from tutorapp.core.ratelimit import Limit, RateLimiter
from tutorapp.core.security import (
    hash_password_async,
    issue_access_token,
    keyed_hash,
    new_numeric_code,
    new_token,
    token_hash,
    verify_password_async,
)
from tutorapp.core.time import utcnow
from tutorapp.notifications.service import enqueue_email


class InvalidCredentials(AppError):
    status, type, title = 400, "/problems/invalid-credentials", "Invalid login credentials"


class InvalidGrant(AppError):
    status, type, title = 401, "/problems/invalid-grant", "Invalid refresh token"


class RefreshTokenNotFound(InvalidGrant):
    pass


class RefreshTokenReused(InvalidGrant):
    pass


class EmailNotConfirmed(AppError):
    status, type, title = 400, "/problems/email-not-confirmed", "Email not confirmed"


# Method names as Supabase Auth writes them in the `amr` claim.
PASSWORD, OTP, MAGIC_LINK, TOTP, RECOVERY = "password", "otp", "magiclink", "totp", "recovery"
_LEGACY_METHODS = {"pwd": PASSWORD}  # sessions started before the names followed GoTrue's


def amr_entries(auth_session: AuthSession) -> list[tuple[str, int]]:
    """(method, unix time it was used): stored as `method:time,...`, so a refresh keeps
    the time of the sign-in instead of re-stamping it."""
    default = int(auth_session.authenticated_at.timestamp())
    entries = []
    for item in auth_session.amr.split(","):
        method, _, stamp = item.partition(":")
        entries.append((_LEGACY_METHODS.get(method, method), int(stamp) if stamp else default))
    return entries


def _amr_text(entries: list[tuple[str, int]]) -> str:
    return ",".join(f"{method}:{stamp}" for method, stamp in entries)


@dataclass(frozen=True)
class Client:
    """Where a request comes from, for session records and rate limits."""

    ip: str | None
    user_agent: str | None


@dataclass(frozen=True)
class Tokens:
    access_token: str
    expires_in: int
    expires_at: int
    refresh_token: str
    session: AuthSession
    user: User
    cookie_token: str | None = None


def _limits(settings: Settings) -> dict[str, Limit]:
    window = settings.login_window_minutes * 60
    return {
        "account": Limit("login-account", settings.login_attempts_per_account, window),
        "ip": Limit("login-ip", settings.login_attempts_per_ip, window),
        "otp-send": Limit("otp-send", 1, max(1, settings.email_otp_interval_seconds)),
        "recover": Limit("recover", 3, 3600),
        "code": Limit("code-account", settings.login_attempts_per_account, window),
        "totp": Limit("totp-account", settings.login_attempts_per_account, window),
    }


# --- sessions and tokens ---------------------------------------------------------------


async def start_session(
    db: AsyncSession, settings: Settings, user: User, *,
    amr: list[str] | list[tuple[str, int]], aal: str,
    client: Client, with_cookie: bool = False,
) -> Tokens:
    now = utcnow()
    cookie = new_token() if with_cookie else None
    entries = [(m, int(now.timestamp())) if isinstance(m, str) else m for m in amr]
    auth_session = AuthSession(
        user_id=user.id, aal=aal, amr=_amr_text(entries), ip=client.ip,
        user_agent=(client.user_agent or "")[:400] or None,
        cookie_token_hash=token_hash(cookie) if cookie else None,
        authenticated_at=now, last_seen_at=now,
        expires_at=now + timedelta(hours=settings.session_max_age_hours),
    )
    db.add(auth_session)
    await db.flush()
    return await _issue_tokens(db, settings, user, auth_session, cookie)


async def _issue_tokens(
    db: AsyncSession, settings: Settings, user: User, auth_session: AuthSession,
    cookie: str | None = None,
) -> Tokens:
    now = utcnow()
    refresh = new_token()
    db.add(RefreshToken(session_id=auth_session.id, token_hash=token_hash(refresh)))
    await db.flush()
    access, ttl = issue_access_token(
        settings, user_id=user.id, role=user.role.value, aal=auth_session.aal,
        amr=amr_entries(auth_session), session_id=auth_session.id, now=now,
        email=user.email, user_metadata=user_metadata(user), app_metadata=app_metadata(user),
    )
    return Tokens(access, ttl, int(now.timestamp()) + ttl, refresh, auth_session, user, cookie)


async def reauthenticated(
    db: AsyncSession, settings: Settings, user: User, current: AuthSession, *,
    client: Client, add_amr: str | None = None, aal: str | None = None,
    sign_out_others: bool = False,
) -> Tokens:
    """Replace the session by a new one (new id, fresh tokens): after re-authentication
    or a step-up to aal2, so a token or cookie captured before cannot ride along."""
    amr = amr_entries(current)
    if add_amr and add_amr not in [method for method, _ in amr]:
        amr.append((add_amr, int(utcnow().timestamp())))
    tokens = await start_session(
        db, settings, user, amr=amr, aal=aal or current.aal, client=client,
        with_cookie=current.cookie_token_hash is not None,
    )
    await revoke(db, [current.id], reason="reauthenticated")
    if sign_out_others:
        await revoke_user_sessions(db, user.id, keep=tokens.session.id, reason="signed_out")
    return tokens


async def refresh(
    db: AsyncSession, settings: Settings, refresh_token: str, client: Client
) -> Tokens:
    now = utcnow()
    row = await db.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash(refresh_token))
        .with_for_update()
    )
    if row is None:
        raise RefreshTokenNotFound("Unknown refresh token.")
    auth_session = (await db.scalars(
        select(AuthSession).where(AuthSession.id == row.session_id).with_for_update()
    )).one()
    idle_deadline = auth_session.last_seen_at + timedelta(
        minutes=settings.session_idle_timeout_minutes
    )
    if auth_session.revoked_at is not None or auth_session.expires_at <= now or idle_deadline <= now:
        raise InvalidGrant("The session has ended; sign in again.")
    if row.rotated_at is not None and (
        now - row.rotated_at > timedelta(seconds=settings.refresh_reuse_grace_seconds)
    ):
        await revoke(db, [auth_session.id], reason="refresh_token_reuse")
        await audit.record(db, "session.revoked_token_reuse", subject_type="session",
                           subject_id=auth_session.id, actor_id=auth_session.user_id,
                           ip=client.ip)
        raise RefreshTokenReused(
            "This refresh token was already used; the session has been ended to protect "
            "the account.", keep_changes=True,
        )
    row.rotated_at = row.rotated_at or now
    auth_session.last_seen_at = now
    user = await get_user(db, auth_session.user_id)
    return await _issue_tokens(db, settings, user, auth_session)


async def revoke(db: AsyncSession, session_ids: list[uuid.UUID], *, reason: str) -> None:
    await db.execute(
        update(AuthSession)
        .where(AuthSession.id.in_(session_ids), AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session="fetch")
    )


async def revoke_user_sessions(
    db: AsyncSession, user_id: uuid.UUID, *, keep: uuid.UUID | None = None, reason: str
) -> None:
    statement = update(AuthSession).where(
        AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
    )
    if keep is not None:
        statement = statement.where(AuthSession.id != keep)
    await db.execute(
        statement.values(revoked_at=utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session="fetch")
    )


async def logout(db: AsyncSession, user: User, current: AuthSession, scope: str) -> None:
    if scope == "local":
        await revoke(db, [current.id], reason="signed_out")
    elif scope == "others":
        await revoke_user_sessions(db, user.id, keep=current.id, reason="signed_out")
    else:
        await revoke_user_sessions(db, user.id, reason="signed_out_everywhere")


async def purge_expired(db: AsyncSession) -> dict[str, int]:
    """Delete one-time tokens and sessions past their lifetime (refresh tokens go
    with their session: ON DELETE CASCADE)."""
    now = utcnow()
    tokens = await db.execute(delete(OneTimeToken).where(OneTimeToken.expires_at < now))
    ended = await db.execute(delete(AuthSession).where(AuthSession.expires_at < now))
    return {"one_time_tokens": rows_changed(tokens), "auth_sessions": rows_changed(ended)}


async def live_sessions(db: AsyncSession, user: User) -> list[AuthSession]:
    rows = await db.scalars(
        select(AuthSession).where(
            AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > utcnow(),
        ).order_by(AuthSession.last_seen_at.desc())
    )
    return list(rows)


async def revoke_own_session(db: AsyncSession, user: User, session_id: uuid.UUID) -> None:
    auth_session = await db.get(AuthSession, session_id)
    if auth_session is None or auth_session.user_id != user.id or auth_session.revoked_at:
        raise NotFound("No such active session.")
    await revoke(db, [session_id], reason="revoked_by_user")


# --- password login ------------------------------------------------------------------


def _aal_for(user: User) -> tuple[str, bool]:
    """(aal, needs TOTP next)."""
    return "aal1", user.mfa_enabled


async def login_with_password(
    db: AsyncSession, settings: Settings, limiter: RateLimiter, *, email: str, password: str,
    client: Client, with_cookie: bool = False,
) -> Tokens:
    limits = _limits(settings)
    email = normalize_email(email)
    await limiter.hit(limits["ip"], client.ip or "unknown")
    await limiter.check(limits["account"], email)
    user = await user_by_email(db, email)
    valid, new_hash = await verify_password_async(password, user.password_hash if user else None)
    if user is None or not valid:
        await limiter.hit(limits["account"], email)
        if await limiter.allows(limits["account"], email):
            raise InvalidCredentials("Wrong email or password.")
        # This failure used the last attempt: lock the account, tell its owner.
        if user is not None:
            await enqueue_email(
                db, to=email, template="auth/lockout", user_id=user.id, locale=user.locale,
                context={"name": user.display_name, "minutes": settings.login_window_minutes,
                         "link": settings.public_url.rstrip("/") + "/app/reset"},
            )
            await audit.record(db, "user.locked_out", subject_type="user",
                               subject_id=user.id, ip=client.ip)
        raise TooManyRequests(
            await limiter.retry_after(limits["account"], email),
            "Too many failed attempts: the account is locked for a while.", keep_changes=True,
        )
    if new_hash:
        user.password_hash = new_hash
    await limiter.clear(limits["account"], email)
    if settings.email_confirmation_required and user.email_verified_at is None:
        raise EmailNotConfirmed("Confirm your address from the email we sent first.")
    return await signed_in(db, settings, user, PASSWORD, client, with_cookie)


async def signed_in(
    db: AsyncSession, settings: Settings, user: User, method: str, client: Client,
    with_cookie: bool,
) -> Tokens:
    await _notice_new_device(db, user, client)
    aal, _ = _aal_for(user)
    tokens = await start_session(db, settings, user, amr=[method], aal=aal, client=client,
                                 with_cookie=with_cookie)
    await audit.record(db, "user.signed_in", subject_type="user", subject_id=user.id,
                       actor_id=user.id, ip=client.ip, method=method)
    return tokens


async def _notice_new_device(db: AsyncSession, user: User, client: Client) -> None:
    """Email the user when a login comes from a device and address never seen before."""
    previous = list(await db.execute(
        select(AuthSession.ip, AuthSession.user_agent).where(AuthSession.user_id == user.id)
    ))
    if not previous or not user.email:
        return
    if any((ip == client.ip and agent == (client.user_agent or "")[:400]) or None
           for ip, agent in previous):
        return
    from tutorapp.accounts.devices import describe_device

    await enqueue_email(
        db, to=user.email, template="auth/new_device", user_id=user.id, locale=user.locale,
        context={"name": user.display_name, "device": describe_device(client.user_agent),
                 "ip": client.ip or "unknown", "when": utcnow().strftime("%Y-%m-%d %H:%M UTC")},
    )


# --- passwordless: magic link or 6-digit code ----------------------------------------


async def send_login_code(
    db: AsyncSession, settings: Settings, limiter: RateLimiter, *, email: str, client: Client,
    link_path: str = "/auth/magic",
) -> None:
    """One email with both a magic link and a 6-digit code. Same answer whether or not
    the address has an account; at most one request per address per interval."""
    limits = _limits(settings)
    email = normalize_email(email)
    await limiter.hit(limits["ip"], client.ip or "unknown")
    await limiter.hit(limits["otp-send"], email)
    user = await user_by_email(db, email)
    if user is None:
        return
    ttl = timedelta(minutes=settings.email_otp_ttl_minutes)
    magic = await issue_one_time_token(db, user, TokenPurpose.magic_link, ttl)
    code = new_numeric_code()
    await issue_one_time_token(
        db, user, TokenPurpose.email_code, ttl, secret=code, hashed=keyed_hash(settings, code)
    )
    await enqueue_email(
        db, to=email, template="auth/login_code", user_id=user.id, locale=user.locale,
        context={"name": user.display_name, "code": code,
                 "link": link(settings, link_path, magic),
                 "minutes": settings.email_otp_ttl_minutes},
    )


async def login_with_code(
    db: AsyncSession, settings: Settings, limiter: RateLimiter, *, email: str | None,
    code: str | None, token: str | None, client: Client, with_cookie: bool = False,
) -> Tokens:
    user, method = await user_from_code(db, settings, limiter, email=email, code=code,
                                        token=token, client=client)
    return await signed_in(db, settings, user, method, client, with_cookie)


async def user_from_code(
    db: AsyncSession, settings: Settings, limiter: RateLimiter, *, email: str | None,
    code: str | None, token: str | None, client: Client,
) -> tuple[User, str]:
    """Spend a magic link's token, or an address's 6-digit code: (user, amr method)."""
    limits = _limits(settings)
    await limiter.hit(limits["ip"], client.ip or "unknown")
    if token:
        row = await consume_token(db, (TokenPurpose.magic_link,), token_hash(token))
        user, method = await get_user(db, row.user_id), MAGIC_LINK
    else:
        if not email or not code:
            raise InvalidInput("code", "send either the link's token or the email and its code")
        email = normalize_email(email)
        await limiter.hit(limits["code"], email)
        found = await user_by_email(db, email)
        if found is None:
            raise InvalidToken("This link or code is invalid, used or expired.")
        user = found
        await consume_token(db, (TokenPurpose.email_code,), keyed_hash(settings, code),
                            user_id=user.id)
        method = OTP
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()  # receiving the code proves the address
    return user, method


# --- PKCE (RFC 7636): an emailed link yields a code only its requester can redeem ---

PKCE_CODE_TTL = timedelta(minutes=5)


def _pkce_hash(code: str, method: str, challenge: str) -> str:
    return token_hash(f"{code}:{method}:{challenge}")


def pkce_challenge(method: str, verifier: str) -> str:
    if method == "s256":
        digest = hashlib.sha256(verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return verifier


async def issue_auth_code(
    db: AsyncSession, user: User, amr_method: str, challenge_method: str, challenge: str
) -> str:
    """A single-use code bound to the code challenge (only its hash with the
    challenge is stored) and naming the method that will start the session."""
    code = f"{new_token(24)}.{amr_method}"
    await issue_one_time_token(db, user, TokenPurpose.pkce_code, PKCE_CODE_TTL,
                               secret=code, hashed=_pkce_hash(code, challenge_method, challenge))
    return code


async def exchange_auth_code(
    db: AsyncSession, settings: Settings, *, code: str, verifier: str, client: Client
) -> Tokens:
    """The session for an auth code and the verifier of its challenge."""
    for method in ("s256", "plain"):
        hashed = _pkce_hash(code, method, pkce_challenge(method, verifier))
        try:
            row = await consume_token(db, (TokenPurpose.pkce_code,), hashed)
        except InvalidToken:
            continue
        user = await get_user(db, row.user_id)
        return await signed_in(db, settings, user, code.rpartition(".")[2], client, False)
    raise InvalidToken("This code is invalid, used, expired or not for this verifier.")


# --- password reset ------------------------------------------------------------------


async def request_password_reset(
    db: AsyncSession, settings: Settings, limiter: RateLimiter, *, email: str, client: Client,
    link_path: str = "/auth/reset",
) -> None:
    limits = _limits(settings)
    email = normalize_email(email)
    await limiter.hit(limits["ip"], client.ip or "unknown")
    await limiter.hit(limits["recover"], email)
    user = await user_by_email(db, email)
    if user is None:
        return
    token = await issue_one_time_token(
        db, user, TokenPurpose.reset_password,
        timedelta(minutes=settings.password_reset_ttl_minutes),
    )
    await enqueue_email(
        db, to=email, template="auth/reset_password", user_id=user.id, locale=user.locale,
        context={"name": user.display_name, "link": link(settings, link_path, token),
                 "minutes": settings.password_reset_ttl_minutes},
    )


async def reset_password(
    db: AsyncSession, settings: Settings, *, token: str, password: str, client: Client
) -> User:
    """Set a new password and end every session. It signs nobody in: the next login
    goes through the second factor as usual, so a reset never bypasses MFA."""
    check_password(password)
    row = await consume_token(db, (TokenPurpose.reset_password,), token_hash(token))
    user = await get_user(db, row.user_id)
    await set_password(db, user, password, client=client)
    await revoke_user_sessions(db, user.id, reason="password_reset")
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    return user


async def user_from_reset_link(db: AsyncSession, token: str) -> User:
    """Spend a reset link for a sign-in (Supabase's `verify` of type `recovery`): the
    session it starts has the `recovery` method, which lets it set a new password
    without the old one while the link would have lasted; MFA still applies."""
    row = await consume_token(db, (TokenPurpose.reset_password,), token_hash(token))
    user = await get_user(db, row.user_id)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    return user


def recovering(settings: Settings, auth_session: AuthSession) -> bool:
    """True while a session started from a reset link may set a password without the
    current one."""
    limit = int(utcnow().timestamp()) - settings.password_reset_ttl_minutes * 60
    return any(method == RECOVERY and stamp >= limit
               for method, stamp in amr_entries(auth_session))


async def set_password(db: AsyncSession, user: User, password: str, *, client: Client) -> None:
    check_password(password, "new_password" if user.password_hash else "password")
    user.password_hash = await hash_password_async(password)
    user.password_changed_at = utcnow()
    await db.flush()
    await audit.record(db, "user.password_changed", subject_type="user", subject_id=user.id,
                       actor_id=user.id, ip=client.ip)
    if user.email:
        await enqueue_email(db, to=user.email, template="auth/password_changed",
                            user_id=user.id, locale=user.locale,
                            context={"name": user.display_name})


async def check_current_password(user: User, password: str) -> None:
    valid, _ = await verify_password_async(password, user.password_hash)
    if not valid:
        raise InvalidInput("current_password", "is not your current password")


# --- who a credential names (handed to tutorapp.auth) ---------------------------
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


async def _session_by_id(db: AsyncSession, session_id: uuid.UUID) -> AuthSession | None:
    return await db.get(AuthSession, session_id)


async def _session_by_cookie_hash(db: AsyncSession, cookie_hash: str) -> AuthSession | None:
    return await db.scalar(select(AuthSession).where(AuthSession.cookie_token_hash == cookie_hash))


async def _user_of(db: AsyncSession, auth_session: AuthSession) -> User | None:
    """The session's user unless deleted; `last_seen_at` moves at most once a minute,
    so a busy session does not write on every request."""
    user = await db.get(User, auth_session.user_id)
    if user is None or user.deleted_at is not None:
        return None
    now = utcnow()
    if now - auth_session.last_seen_at >= LAST_SEEN_RESOLUTION:
        auth_session.last_seen_at = now
    return user


use_identities(IdentityStore(session_by_id=_session_by_id,
                             session_by_cookie_hash=_session_by_cookie_hash,
                             user_of=_user_of))
