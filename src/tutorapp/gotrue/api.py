"""`/auth/v1`: Supabase Auth's (GoTrue's) API over our accounts.

Routes, parameters, JSON fields and error codes follow supabase/auth
(`openapi.yaml`, `internal/api`), so supabase-js, supabase-py and the Expo client
sign in unchanged. Every route calls the same accounts services as `/api/v1/auth`:
one set of accounts, sessions, rate limits and rules, two wire formats.
"""

from __future__ import annotations

import hmac
import re
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, EmailStr, TypeAdapter, ValidationError
from starlette.responses import RedirectResponse

from tutorapp import __version__
from tutorapp.accounts import mfa, service, sessions
from tutorapp.accounts.models import TokenPurpose, User
from tutorapp.accounts.service import InvalidToken
from tutorapp.auth.deps import PUBLIC, CurrentPrincipal, CurrentPrincipalAAL1, Principal
from tutorapp.auth.roles import Role
from tutorapp.config import Settings
from tutorapp.core.db import SessionDep
from tutorapp.core.deps import LimiterDep, SettingsDep
from tutorapp.core.errors import Conflict, InvalidInput
from tutorapp.core.ratelimit import Limit
from tutorapp.core.security import jwks, token_hash
from tutorapp.core.time import utcnow
from tutorapp.gotrue import schemas
from tutorapp.gotrue.errors import PREFIX, GoTrueError, RedirectTo

# GET routes a browser opens from an email or a service probes: no API key (as
# Supabase's gateway leaves /verify open).
_OPEN = {f"{PREFIX}/verify", f"{PREFIX}/health", f"{PREFIX}/.well-known/jwks.json"}
# A factor enrolment needs a recent sign-in (our API asks for the password instead).
FRESH_SIGN_IN = timedelta(minutes=10)
CHALLENGE_TTL = timedelta(minutes=5)
_FACTORS = uuid.UUID("6f1d0d1e-4d5c-4e53-9a3b-2f7f2b6f0a11")
_email = TypeAdapter(EmailStr)
Model = TypeVar("Model", bound=BaseModel)


async def api_key(request: Request) -> None:
    """Supabase clients send `apikey` (the anon or the service key) on every call."""
    settings: Settings = request.app.state.settings
    keys = [k for k in (settings.supabase_anon_key, settings.supabase_service_key) if k]
    if not keys or (request.method == "GET" and request.url.path in _OPEN):
        return
    sent = request.headers.get("apikey") or request.query_params.get("apikey")
    if not sent:
        raise GoTrueError(401, "no_api_key", "No API key found in request")
    if not any(hmac.compare_digest(sent.encode(), key.encode()) for key in keys):
        raise GoTrueError(401, "invalid_api_key", "Invalid API key")


router = APIRouter(prefix=PREFIX, tags=["supabase-auth"], include_in_schema=False,
                   dependencies=[Depends(api_key)])


# --- wire format ---------------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def factor_id(user: User) -> uuid.UUID:
    """Our one TOTP factor per user, under a stable id."""
    return uuid.uuid5(_FACTORS, str(user.id))


def factors_of(user: User) -> list[dict[str, Any]]:
    if not user.totp_secret_encrypted:
        return []
    created = user.totp_enabled_at or user.updated_at
    return [{
        "id": str(factor_id(user)), "friendly_name": "Authenticator app", "factor_type": "totp",
        "status": "verified" if user.mfa_enabled else "unverified",
        "created_at": _time(created), "updated_at": _time(user.updated_at),
        "last_challenged_at": None,
    }]


def user_json(settings: Settings, user: User) -> dict[str, Any]:
    """A user as GoTrue's `models.User` (null timestamps omitted, as its omitempty)."""
    confirmed = _time(user.email_verified_at)
    identity = {
        "identity_id": str(uuid.uuid5(_FACTORS, f"email:{user.id}")), "id": str(user.id),
        "user_id": str(user.id), "provider": "email", "email": user.email,
        "identity_data": {"email": user.email, "email_verified": confirmed is not None,
                          "phone_verified": False, "sub": str(user.id)},
        "created_at": _time(user.created_at), "updated_at": _time(user.updated_at),
    }
    body: dict[str, Any] = {
        "id": str(user.id), "aud": settings.jwt_audience, "role": "authenticated",
        "email": user.email or "", "phone": "",
        "app_metadata": service.app_metadata(user), "user_metadata": service.user_metadata(user),
        "identities": [identity] if user.email else [],
        "created_at": _time(user.created_at), "updated_at": _time(user.updated_at),
        "is_anonymous": False,
    }
    if confirmed:
        body["email_confirmed_at"] = body["confirmed_at"] = confirmed
    if factors := factors_of(user):
        body["factors"] = factors
    return body


def session_json(settings: Settings, tokens: sessions.Tokens) -> dict[str, Any]:
    return {
        "access_token": tokens.access_token, "token_type": "bearer",
        "expires_in": tokens.expires_in, "expires_at": tokens.expires_at,
        "refresh_token": tokens.refresh_token, "user": user_json(settings, tokens.user),
    }


def client_of(request: Request) -> sessions.Client:
    return sessions.Client(ip=request.client.host if request.client else None,
                           user_agent=request.headers.get("user-agent"))


def _parse(model: type[Model], data: Any) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise GoTrueError(400, "validation_failed", f"Invalid input: {fields}") from exc


async def _body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise GoTrueError(400, "bad_json", "Could not parse request body as JSON") from exc


def _email_of(value: str | None, *, phone: str | None = None) -> str:
    if phone and not value:
        raise GoTrueError(422, "phone_provider_disabled", "Phone logins are disabled")
    if not value:
        raise GoTrueError(400, "validation_failed", "An email address is required")
    try:
        return str(_email.validate_python(value))
    except ValidationError as exc:
        raise GoTrueError(400, "email_address_invalid",
                          "Unable to validate email address: invalid format") from exc


def _redirect_target(settings: Settings, redirect_to: str | None) -> str:
    """`redirect_to` when allowed (our site, or TUTORAPP_AUTH_REDIRECT_URLS), else
    the site itself, as GoTrue falls back to its SITE_URL."""
    site = settings.public_url.rstrip("/")
    if redirect_to:
        if redirect_to == site or redirect_to.startswith(site + "/"):
            return redirect_to
        for allowed in settings.auth_redirect_urls:
            if (redirect_to.startswith(allowed[:-1]) if allowed.endswith("*")
                    else redirect_to == allowed):
                return redirect_to
    return site + "/"


_CHALLENGE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


def _pkce(body: schemas.FlowBody) -> tuple[str, str] | None:
    """(method, challenge) when the client runs the PKCE flow."""
    if not body.code_challenge:
        return None
    method = (body.code_challenge_method or "").lower()
    if method not in ("s256", "plain") or not _CHALLENGE.match(body.code_challenge):
        raise GoTrueError(400, "validation_failed",
                          "code challenge does not match the PKCE format (RFC 7636)")
    return method, body.code_challenge


def _link_path(settings: Settings, kind: str, redirect_to: str | None, default: str,
               pkce: tuple[str, str] | None = None) -> str:
    """Emailed links open our own pages, unless the app asked to come back to it or
    runs PKCE: then the link goes through GET /auth/v1/verify, which redirects there
    with a session (or, for PKCE, a code)."""
    if not redirect_to and not pkce:
        return default
    query = {"type": kind, "redirect_to": _redirect_target(settings, redirect_to)}
    if pkce:
        query |= {"code_challenge_method": pkce[0], "code_challenge": pkce[1]}
    return f"{PREFIX}/verify?{urlencode(query)}"


# --- sign-up, sign-in, tokens ---------------------------------------------------------


@router.post("/signup", dependencies=[PUBLIC])
async def signup(request: Request, db: SessionDep, settings: SettingsDep, limiter: LimiterDep,
                 redirect_to: str | None = None) -> dict[str, Any]:
    """A session when confirmation is not required; else the user, with a link sent."""
    body = _parse(schemas.SignupIn, await _body(request))
    email = _email_of(body.email, phone=body.phone)
    data = body.data or schemas.UserMetadata()
    client = client_of(request)
    await limiter.hit(Limit("signup-ip", settings.login_attempts_per_ip,
                            settings.login_window_minutes * 60), client.ip or "unknown")
    try:
        user = await service.sign_up(
            db, settings, email=email, password=body.password or "",
            display_name=data.profile_name or email.split("@")[0][:100],
            role=Role(data.role or Role.student.value), time_zone=data.time_zone or "UTC",
            locale=data.locale or "en",
            link_path=_link_path(settings, "signup", redirect_to, "/auth/verify", _pkce(body)),
        )
    except Conflict as exc:
        raise GoTrueError(422, "user_already_exists", "User already registered") from exc
    if settings.email_confirmation_required:
        return user_json(settings, user)
    tokens = await sessions.start_session(db, settings, user, amr=[sessions.PASSWORD],
                                          aal="aal1", client=client)
    return session_json(settings, tokens)


@router.post("/token", dependencies=[PUBLIC])
async def token(request: Request, db: SessionDep, settings: SettingsDep, limiter: LimiterDep,
                grant_type: str = "") -> dict[str, Any]:
    """`grant_type=password` (email and password) or `refresh_token` (rotating)."""
    client = client_of(request)
    if grant_type == "password":
        credentials = _parse(schemas.PasswordGrantIn, await _body(request))
        email = _email_of(credentials.email, phone=credentials.phone)
        tokens = await sessions.login_with_password(
            db, settings, limiter, email=email, password=credentials.password or "",
            client=client,
        )
    elif grant_type == "refresh_token":
        grant = _parse(schemas.RefreshGrantIn, await _body(request))
        if not grant.refresh_token:
            raise GoTrueError(400, "validation_failed", "refresh_token required")
        tokens = await sessions.refresh(db, settings, grant.refresh_token, client)
    elif grant_type == "pkce":
        exchange = _parse(schemas.PKCEGrantIn, await _body(request))
        if not exchange.auth_code or not exchange.code_verifier:
            raise GoTrueError(400, "validation_failed", "invalid request: both auth code and "
                              "code verifier should be non-empty")
        try:
            tokens = await sessions.exchange_auth_code(
                db, settings, code=exchange.auth_code, verifier=exchange.code_verifier,
                client=client)
        except InvalidToken as exc:
            raise GoTrueError(404, "flow_state_not_found",
                              "invalid flow state, no valid flow state found") from exc
    else:
        raise GoTrueError(400, "invalid_credentials", "unsupported_grant_type")
    return session_json(settings, tokens)


@router.post("/otp", dependencies=[PUBLIC])
async def otp(request: Request, db: SessionDep, settings: SettingsDep, limiter: LimiterDep,
              redirect_to: str | None = None) -> dict[str, Any]:
    """Email a magic link and a 6-digit code (`verify` type `magiclink` / `email`).
    Accounts are created by `signup` only; the answer is the same either way."""
    body = _parse(schemas.OtpIn, await _body(request))
    email = _email_of(body.email, phone=body.phone)
    await sessions.send_login_code(
        db, settings, limiter, email=email, client=client_of(request),
        link_path=_link_path(settings, "magiclink", redirect_to, "/auth/magic", _pkce(body)),
    )
    return {}


@router.post("/recover", dependencies=[PUBLIC])
async def recover(request: Request, db: SessionDep, settings: SettingsDep, limiter: LimiterDep,
                  redirect_to: str | None = None) -> dict[str, Any]:
    """Email a reset link; `verify` type `recovery` turns it into a session that may
    set a new password (PUT /user)."""
    body = _parse(schemas.RecoverIn, await _body(request))
    email = _email_of(body.email)
    await sessions.request_password_reset(
        db, settings, limiter, email=email, client=client_of(request),
        link_path=_link_path(settings, "recovery", redirect_to, "/auth/reset", _pkce(body)),
    )
    return {}


async def _verified(
    db: SessionDep, settings: Settings, limiter: LimiterDep, request: Request, kind: str, *,
    token: str | None, token_hash: str | None, email: str | None,
) -> tuple[User, str]:
    """Spend an emailed token or code: (user, the amr method to sign in with)."""
    secret = token_hash or token
    if not secret:
        raise GoTrueError(400, "validation_failed", "Verify requires a token or a token_hash")
    if kind in ("signup", "invite", "email_change"):
        return await service.verify_email_token(db, settings, secret), sessions.OTP
    if kind == "recovery":
        return await sessions.user_from_reset_link(db, secret), sessions.RECOVERY
    if kind in ("magiclink", "email"):
        if token_hash:
            return await sessions.user_from_code(db, settings, limiter, email=None, code=None,
                                                 token=token_hash, client=client_of(request))
        return await sessions.user_from_code(
            db, settings, limiter, email=_email_of(email), code=token, token=None,
            client=client_of(request),
        )
    raise GoTrueError(422, "phone_provider_disabled", "Phone verification is disabled")


@router.post("/verify", dependencies=[PUBLIC])
async def verify_post(request: Request, db: SessionDep, settings: SettingsDep,
                      limiter: LimiterDep) -> dict[str, Any]:
    """A code (`token` with `email`) or an emailed link's `token_hash`, for a session."""
    body = _parse(schemas.VerifyIn, await _body(request))
    user, method = await _verified(db, settings, limiter, request, body.type, token=body.token,
                                   token_hash=body.token_hash, email=body.email)
    tokens = await sessions.signed_in(db, settings, user, method, client_of(request), False)
    return session_json(settings, tokens)


@router.get("/verify", dependencies=[PUBLIC])
async def verify_get(request: Request, db: SessionDep, settings: SettingsDep,
                     limiter: LimiterDep, token: Annotated[str, Query(max_length=200)],
                     type: Annotated[schemas.VerifyType, Query()],
                     redirect_to: Annotated[str | None, Query(max_length=2048)] = None,
                     code_challenge: Annotated[str | None, Query(max_length=128)] = None,
                     code_challenge_method: Annotated[str | None, Query(max_length=10)] = None,
                     ) -> Response:
    """The emailed link: redirect (303) to `redirect_to` with the session in the URL
    fragment, or (PKCE) with `?code=` to exchange at `/token?grant_type=pkce`; errors
    go there as `error`, `error_code` and `error_description` in the fragment."""
    target = _redirect_target(settings, redirect_to)
    try:
        pkce = _pkce(schemas.FlowBody(code_challenge=code_challenge,
                                   code_challenge_method=code_challenge_method))
        user, method = await _verified(db, settings, limiter, request, type, token=None,
                                       token_hash=token, email=None)  # a link's token
    except GoTrueError as exc:
        raise RedirectTo(target, exc) from exc
    except InvalidToken as exc:
        raise RedirectTo(target, GoTrueError(403, "otp_expired",
                                             "Email link is invalid or has expired")) from exc
    if pkce:
        code = await sessions.issue_auth_code(db, user, method, *pkce)
        joiner = "&" if "?" in target else "?"
        return RedirectResponse(f"{target}{joiner}{urlencode({'code': code})}",
                                status_code=status.HTTP_303_SEE_OTHER)
    tokens = await sessions.signed_in(db, settings, user, method, client_of(request), False)
    fragment = urlencode({
        "access_token": tokens.access_token, "expires_at": tokens.expires_at,
        "expires_in": tokens.expires_in, "refresh_token": tokens.refresh_token,
        "token_type": "bearer", "type": type, "sb": "",
    })
    return RedirectResponse(f"{target}#{fragment}", status_code=status.HTTP_303_SEE_OTHER)


# --- the signed-in user ---------------------------------------------------------------


@router.get("/user")
async def read_user(principal: CurrentPrincipalAAL1, settings: SettingsDep) -> dict[str, Any]:
    return user_json(settings, principal.user)


async def _check_reauthenticated(settings: Settings, principal: Principal,
                           current_password: str | None) -> None:
    """Changing the password or the address needs the current password, except in a
    session opened from a reset link (GoTrue's UpdatePasswordRequireCurrentPassword)."""
    if sessions.recovering(settings, principal.session):
        return
    if not current_password:
        raise GoTrueError(400, "current_password_required",
                          "Current password required when setting new password.")
    try:
        await sessions.check_current_password(principal.user, current_password)
    except InvalidInput as exc:
        raise GoTrueError(400, "current_password_invalid",
                          "Current password required when setting new password.") from exc


@router.put("/user")
async def update_user(request: Request, principal: CurrentPrincipal, db: SessionDep,
                      settings: SettingsDep, redirect_to: str | None = None) -> dict[str, Any]:
    """`data` updates the profile (display_name, time_zone, locale); `password` sets a
    new one and ends the other sessions; `email` sends a confirmation to the new one."""
    body = _parse(schemas.UserUpdateIn, await _body(request))
    user, client = principal.user, client_of(request)
    if body.phone:
        raise GoTrueError(422, "phone_provider_disabled", "Phone logins are disabled")
    if body.data:
        await service.update_profile(db, user, display_name=body.data.profile_name,
                                     time_zone=body.data.time_zone, locale=body.data.locale)
    if body.password is not None:
        await _check_reauthenticated(settings, principal, body.current_password)
        await sessions.set_password(db, user, body.password, client=client)
        await sessions.revoke_user_sessions(db, user.id, keep=principal.session.id,
                                            reason="password_changed")
    if body.email and service.normalize_email(body.email) != user.email:
        await _check_reauthenticated(settings, principal, body.current_password)
        try:
            await service.request_email_change(db, settings, user, _email_of(body.email))
        except Conflict as exc:
            raise GoTrueError(422, "email_exists", "A user with this email address has "
                              "already been registered") from exc
    return user_json(settings, user)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(principal: CurrentPrincipalAAL1, db: SessionDep,
                 scope: Literal["global", "local", "others"] = "global") -> Response:
    """End this session (`local`), every other one (`others`) or all (`global`)."""
    await sessions.logout(db, principal.user, principal.session, scope)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- MFA (TOTP) --------------------------------------------------------------------------


def _factor(principal: Principal, factor: uuid.UUID) -> User:
    user = principal.user
    if factor != factor_id(user) or not user.totp_secret_encrypted:
        raise GoTrueError(404, "mfa_factor_not_found", "Factor not found")
    return user


@router.post("/factors")
async def enroll_factor(request: Request, principal: CurrentPrincipal, db: SessionDep,
                        settings: SettingsDep) -> dict[str, Any]:
    """Start TOTP enrolment; challenge and verify the factor to turn it on (aal2)."""
    body = _parse(schemas.FactorIn, await _body(request))
    if body.factor_type != "totp":
        raise GoTrueError(422, f"mfa_{body.factor_type}_enroll_not_enabled",
                          f"MFA enroll is disabled for {body.factor_type}")
    last_used = max(stamp for _, stamp in sessions.amr_entries(principal.session))
    if utcnow().timestamp() - last_used > FRESH_SIGN_IN.total_seconds():
        raise GoTrueError(400, "reauthentication_needed",
                          "Sign in again to set up two-factor sign-in")
    try:
        enrolment = await mfa.begin_enrolment(db, settings, principal.user)
    except Conflict as exc:
        raise GoTrueError(422, "mfa_verified_factor_exists",
                          "A verified TOTP factor already exists; unenroll it first") from exc
    return {
        "id": str(factor_id(principal.user)), "type": "totp",
        "friendly_name": body.friendly_name or "",
        "totp": {"qr_code": enrolment["qr_svg"], "secret": enrolment["secret"],
                 "uri": enrolment["otpauth_uri"]},
    }


@router.post("/factors/{factor}/challenge")
async def challenge_factor(factor: uuid.UUID, principal: CurrentPrincipalAAL1,
                           db: SessionDep) -> dict[str, Any]:
    user = _factor(principal, factor)
    challenge = uuid.uuid4()
    await service.issue_one_time_token(db, user, TokenPurpose.mfa_challenge, CHALLENGE_TTL,
                                       secret=str(challenge))
    expires_at = int((utcnow() + CHALLENGE_TTL).timestamp())
    return {"id": str(challenge), "type": "totp", "expires_at": expires_at}


@router.post("/factors/{factor}/verify")
async def verify_factor(factor: uuid.UUID, request: Request, principal: CurrentPrincipalAAL1,
                        db: SessionDep, settings: SettingsDep,
                        limiter: LimiterDep) -> dict[str, Any]:
    """A code for the challenge: the factor is verified (enrolment) or the session
    steps up to aal2; either way the session is replaced by a new aal2 one."""
    user = _factor(principal, factor)
    body = _parse(schemas.FactorVerifyIn, await _body(request))
    try:
        await service.consume_token(db, (TokenPurpose.mfa_challenge,),
                                    token_hash(body.challenge_id), user_id=user.id)
    except InvalidToken as exc:
        raise GoTrueError(422, "mfa_challenge_expired",
                          "MFA challenge has expired or is unknown; create a new one") from exc
    client = client_of(request)
    if user.mfa_enabled:
        tokens = await mfa.verify(db, settings, limiter, user, principal.session,
                                  code=body.code, recovery_code=None, client=client)
    else:
        tokens, _ = await mfa.activate(db, settings, user, principal.session, body.code, client)
    return session_json(settings, tokens)


# --- about the server -------------------------------------------------------------------


@router.get("/settings", dependencies=[PUBLIC])
async def read_settings(settings: SettingsDep) -> dict[str, Any]:
    external = dict.fromkeys((
        "anonymous_users", "apple", "azure", "bitbucket", "discord", "facebook", "figma",
        "github", "gitlab", "google", "keycloak", "kakao", "linkedin", "notion", "phone",
        "saml", "slack", "spotify", "twitch", "twitter", "workos", "zoom"), False)
    return {
        "external": external | {"email": True}, "disable_signup": False,
        "mailer_autoconfirm": not settings.email_confirmation_required,
        "phone_autoconfirm": False, "sms_provider": "", "saml_enabled": False,
    }


@router.get("/health", dependencies=[PUBLIC])
async def health() -> dict[str, str]:
    return {"version": __version__, "name": "GoTrue",
            "description": "TutorApp's Supabase Auth compatible API"}


@router.get("/.well-known/jwks.json", dependencies=[PUBLIC])
async def read_jwks(settings: SettingsDep) -> dict[str, Any]:
    """The public signing key (TUTORAPP_JWT_PRIVATE_KEY); empty with shared secrets."""
    return jwks(settings)
