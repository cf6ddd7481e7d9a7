"""Who is on a socket: the one module of `realtime` that reads our auth.

A channel carries the JWT access token our auth issues (`access_token` in `phx_join`
or an `access_token` message), or the browser's session cookie sent with the
WebSocket handshake. Supabase clients send their API key as the token while signed
out: that names no user (anonymous).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.auth.deps import (  # OptionalPrincipal: the REST broadcast's caller
    OptionalPrincipal,
    identities,
    open_cookie_session,
    open_session_of,
)
from tutorapp.config import Settings
from tutorapp.core.security import TokenError, decode_access_token, token_hash


@dataclass(frozen=True)
class Identity:
    user_id: uuid.UUID | None  # None: anonymous
    expires_at: float | None  # unix time the credential stops being valid


ANONYMOUS = Identity(user_id=None, expires_at=None)
__all__ = ["ANONYMOUS", "Identity", "OptionalPrincipal", "Refused", "from_cookie", "from_token"]


class Refused(Exception):
    """A credential that names nobody valid; `code` follows Realtime's log codes."""

    def __init__(self, code: str, message: str, *, expired: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.expired = code, message, expired


def is_api_key(settings: Settings, token: str) -> bool:
    return token in (settings.supabase_anon_key, settings.supabase_service_key)


async def from_token(settings: Settings, session: AsyncSession, token: str) -> Identity:
    if is_api_key(settings, token):
        return ANONYMOUS
    try:
        claims = decode_access_token(settings, token)
    except TokenError as exc:
        if "expired" in str(exc).lower():
            raise Refused("InvalidJWTToken", "Token has expired", expired=True) from exc
        raise Refused("InvalidJWTToken", f"The token provided is not valid: {exc}") from exc
    auth_session = await identities().session_by_id(session, claims.session_id)
    if not open_session_of(claims, auth_session):
        raise Refused("InvalidJWTToken", "The session has ended; sign in again")
    await _live_user(session, claims.sub)
    return Identity(user_id=claims.sub, expires_at=float(claims.exp))


async def from_cookie(settings: Settings, session: AsyncSession, cookie: str) -> Identity | None:
    auth_session = await identities().session_by_cookie_hash(session, token_hash(cookie))
    if auth_session is None or not open_cookie_session(settings, auth_session):
        return None
    await _live_user(session, auth_session.user_id)
    return Identity(user_id=auth_session.user_id, expires_at=auth_session.expires_at.timestamp())


async def _live_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    user = await session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise Refused("Unauthorized", "The account no longer exists")
