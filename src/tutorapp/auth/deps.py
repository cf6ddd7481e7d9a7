"""Who is calling, and may they call this route?

Every route declares its access rule with exactly one of the dependencies below;
`tests/accounts/test_route_matrix.py` fails for a route that declares none.

- `PUBLIC` (in `dependencies=[...]`): anyone, signed in or not.
- `OptionalPrincipal`: anyone; the principal when signed in.
- `CurrentPrincipal`: any signed-in user.
- `require(Role.student, Role.parent)`: signed in with one of these roles.
- `AdminPrincipal`: an admin whose session passed TOTP (aal2).

A user with MFA whose session is still `aal1` may only call routes declared with
`allow_aal1=True` (MFA verification, logout, reading their own profile).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.auth.roles import Role
from tutorapp.config import Settings
from tutorapp.core.db import SessionDep
from tutorapp.core.deps import settings_of
from tutorapp.core.errors import AppError, CSRFFailed, Forbidden, Unauthorized
from tutorapp.core.security import (
    AccessClaims,
    TokenError,
    csrf_token,
    decode_access_token,
    token_hash,
)
from tutorapp.core.time import utcnow

if TYPE_CHECKING:  # accounts owns these tables; auth only reads the rows it is handed
    from tutorapp.accounts.models import AuthSession, User

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class IdentityStore:
    """How auth finds who a credential names. Users and their sessions are accounts'
    tables, and accounts sits above auth, so accounts hands these lookups to auth
    (`use_identities`, when `tutorapp.accounts.sessions` is imported) instead of auth
    importing accounts."""

    session_by_id: Callable[[AsyncSession, uuid.UUID], Awaitable[AuthSession | None]]
    session_by_cookie_hash: Callable[[AsyncSession, str], Awaitable[AuthSession | None]]
    # The session's user if it still exists; marks the session as seen now.
    user_of: Callable[[AsyncSession, AuthSession], Awaitable[User | None]]


_identities: IdentityStore | None = None


def use_identities(store: IdentityStore) -> None:
    global _identities
    _identities = store


def identities() -> IdentityStore:
    if _identities is None:
        raise RuntimeError("no identity store: import tutorapp.accounts.sessions first")
    return _identities


class MFARequired(AppError):
    status, type, title = 403, "/problems/mfa-required", "Second factor required"
    page_redirect = "/app/mfa"


class MFAEnrolmentRequired(AppError):
    status, type, title = 403, "/problems/mfa-enrolment-required", "Set up two-factor first"
    page_redirect = "/app/account/security"


class InvalidAccessToken(Unauthorized):
    pass


class SessionEnded(Unauthorized):
    pass


@dataclass
class Principal:
    user: User
    session: AuthSession
    via: Literal["bearer", "cookie"]

    @property
    def id(self) -> uuid.UUID:
        return self.user.id

    @property
    def role(self) -> Role:
        return self.user.role

    @property
    def aal(self) -> str:
        return self.session.aal


@dataclass(frozen=True)
class Viewer:
    """What pages show of the caller, as plain values taken when the caller was
    resolved: error pages render after the unit of work rolled back, which expires
    every ORM row of the request, so templates never read `Principal`'s rows."""

    id: uuid.UUID
    role: str
    display_name: str
    session_id: uuid.UUID
    via: str

    @classmethod
    def of(cls, principal: Principal) -> Viewer:
        return cls(id=principal.user.id, role=principal.user.role.value,
                   display_name=principal.user.display_name,
                   session_id=principal.session.id, via=principal.via)


class SessionCookie(APIKeyCookie):
    """The web session cookie. Its name follows the settings (`__Host-` prefixed
    with secure cookies), so it is read by that name, not the documented one."""

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        return request.cookies.get(settings_of(request).session_cookie_name) or None


# The two ways to sign in, as OpenAPI security schemes (the Authorize button of
# /api/docs). Neither refuses a request itself: the access rule decides.
bearer_scheme = HTTPBearer(
    auto_error=False, scheme_name="accessToken",
    description="An access token from `POST /api/v1/auth/login` (or `/auth/v1/token`).")
session_cookie = SessionCookie(
    name="tutorapp_session", auto_error=False, scheme_name="sessionCookie",
    description="The web session (`__Host-tutorapp_session` with secure cookies); a "
                "state-changing request also sends the CSRF token (`X-CSRF-Token`).")
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
SessionCookieValue = Annotated[str | None, Depends(session_cookie)]


def _bearer(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The bearer token naming a user. Supabase clients send their API key as the
    bearer while signed out: that key names no user, so the caller is anonymous."""
    if credentials is None:
        return None
    settings = settings_of(request)
    token = credentials.credentials.strip()
    if token in (settings.supabase_anon_key, settings.supabase_service_key):
        return None
    return token


def open_session_of(claims: AccessClaims, auth_session: AuthSession | None) -> bool:
    """Whether the session an access token names is still open (the token's own expiry
    is checked when it is decoded)."""
    return (auth_session is not None and auth_session.user_id == claims.sub
            and auth_session.revoked_at is None and auth_session.expires_at > utcnow())


def open_cookie_session(settings: Settings, auth_session: AuthSession | None) -> bool:
    """Whether a browser session is open: not revoked, not expired, not idle too long."""
    now = utcnow()
    idle = timedelta(minutes=settings.session_idle_timeout_minutes)
    return (auth_session is not None and auth_session.revoked_at is None
            and auth_session.expires_at > now and auth_session.last_seen_at + idle > now)


async def _from_bearer(request: Request, db: SessionDep, token: str) -> Principal:
    try:
        claims = decode_access_token(settings_of(request), token)
    except TokenError as exc:
        raise InvalidAccessToken(f"Invalid access token: {exc}.",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from exc
    auth_session = await identities().session_by_id(db, claims.session_id)
    if auth_session is None or not open_session_of(claims, auth_session):
        raise SessionEnded("The session has ended; sign in again.",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return await _principal(db, auth_session, "bearer")


async def _from_cookie(request: Request, db: SessionDep, token: str) -> Principal | None:
    settings = settings_of(request)
    auth_session = await identities().session_by_cookie_hash(db, token_hash(token))
    if auth_session is None or not open_cookie_session(settings, auth_session):
        return None
    if request.method not in SAFE_METHODS:
        await _check_csrf(request, settings, auth_session.id)
    return await _principal(db, auth_session, "cookie")


async def _check_csrf(request: Request, settings: Settings, session_id: uuid.UUID) -> None:
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = (await request.form()).get("csrf_token")  # type: ignore[assignment]
    import hmac

    if not isinstance(sent, str) or not hmac.compare_digest(
        sent, csrf_token(settings, session_id)
    ):
        raise CSRFFailed("Cookie-authenticated requests that change state need the CSRF token.")


async def _principal(db: SessionDep, auth_session: AuthSession, via: str) -> Principal:
    user = await identities().user_of(db, auth_session)
    if user is None:
        raise Unauthorized("The account no longer exists.")
    return Principal(user=user, session=auth_session, via=via)  # type: ignore[arg-type]


async def resolve_principal(request: Request, db: SessionDep, bearer: BearerCredentials,
                            cookie: SessionCookieValue) -> Principal | None:
    """The caller: a bearer token first, then the session cookie; None if anonymous."""
    if "principal" in request.scope.get("state", {}):
        return request.state.principal
    principal: Principal | None = None
    if token := _bearer(request, bearer):
        principal = await _from_bearer(request, db, token)
    elif cookie:
        principal = await _from_cookie(request, db, cookie)
    request.state.principal = principal
    request.state.viewer = Viewer.of(principal) if principal else None
    return principal


@dataclass(frozen=True)
class Access:
    """An access rule, used as a dependency; the route × role test reads it."""

    roles: frozenset[Role] | None = None  # None: any role
    authenticated: bool = True
    allow_aal1: bool = False
    require_aal2: bool = False

    async def __call__(self, request: Request, db: SessionDep, bearer: BearerCredentials,
                       cookie: SessionCookieValue) -> Principal | None:
        principal = await resolve_principal(request, db, bearer, cookie)
        if principal is None:
            if self.authenticated:
                raise Unauthorized("Sign in to continue.",
                                   headers={"WWW-Authenticate": "Bearer"})
            return None
        if self.roles is not None and principal.role not in self.roles:
            raise Forbidden(f"This needs the role {' or '.join(sorted(self.roles))}.")
        if principal.user.mfa_enabled and principal.aal != "aal2" and not self.allow_aal1:
            raise MFARequired("Verify your second factor to continue.")
        if self.require_aal2 and principal.aal != "aal2":
            if not principal.user.mfa_enabled:
                raise MFAEnrolmentRequired("Administrators must set up two-factor sign-in.")
            raise MFARequired("Verify your second factor to continue.")
        return principal


def require(*roles: Role, allow_aal1: bool = False) -> Access:
    return Access(roles=frozenset(roles) or None, allow_aal1=allow_aal1)


_public = Access(authenticated=False)
PUBLIC = Depends(_public)
OptionalPrincipal = Annotated[Principal | None, Depends(_public)]
CurrentPrincipal = Annotated[Principal, Depends(Access())]
CurrentPrincipalAAL1 = Annotated[Principal, Depends(Access(allow_aal1=True))]
AdminPrincipal = Annotated[
    Principal, Depends(Access(roles=frozenset({Role.admin}), require_aal2=True))
]
StudentOrParent = Annotated[Principal, Depends(require(Role.student, Role.parent))]
TutorPrincipal = Annotated[Principal, Depends(require(Role.tutor))]
ParentPrincipal = Annotated[Principal, Depends(require(Role.parent))]
