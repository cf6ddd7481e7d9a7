"""Auth and account API: `/api/v1/auth/...` and `/api/v1/me`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from tutorapp.accounts import mfa, service, sessions
from tutorapp.accounts.devices import describe_device
from tutorapp.accounts.models import User
from tutorapp.accounts.schemas import (
    ActivateMfaIn,
    ChangeEmailIn,
    ChangePasswordIn,
    ChildIn,
    DisableMfaIn,
    EmailIn,
    LoginIn,
    LogoutIn,
    MessageOut,
    MfaCodeIn,
    OtpVerifyIn,
    ProfileUpdate,
    ReauthIn,
    RecoveryCodesOut,
    RefreshIn,
    ResetPasswordIn,
    RoleChangeIn,
    SessionOut,
    SignupIn,
    TokenIn,
    TokensOut,
    TokensWithCodesOut,
    TotpEnrolmentOut,
    UserOut,
)
from tutorapp.auth.deps import (
    PUBLIC,
    AdminPrincipal,
    CurrentPrincipal,
    CurrentPrincipalAAL1,
    ParentPrincipal,
)
from tutorapp.auth.roles import Role
from tutorapp.core.db import SessionDep
from tutorapp.core.deps import LimiterDep, SettingsDep
from tutorapp.core.fields import Text
from tutorapp.core.ratelimit import Limit

auth = APIRouter(prefix="/api/v1/auth", tags=["auth"])
me = APIRouter(prefix="/api/v1/me", tags=["account"])
admin = APIRouter(prefix="/api/v1/admin", tags=["admin"])




def client_of(request: Request) -> sessions.Client:
    return sessions.Client(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id, email=user.email, email_verified=user.email_verified_at is not None,
        display_name=user.display_name, role=user.role, time_zone=user.time_zone,
        locale=user.locale, parent_id=user.parent_id, mfa_enabled=user.mfa_enabled,
        created_at=user.created_at,
    )


def tokens_out(tokens: sessions.Tokens) -> dict[str, Any]:
    needs_mfa = tokens.user.mfa_enabled and tokens.session.aal != "aal2"
    return TokensOut(
        access_token=tokens.access_token, expires_in=tokens.expires_in,
        expires_at=tokens.expires_at, refresh_token=tokens.refresh_token,
        user=user_out(tokens.user), next_step="mfa" if needs_mfa else None,
    ).model_dump()


ACCEPTED = MessageOut(message="If the address has an account, we sent an email to it.")


# --- /auth -------------------------------------------------------------------------


@auth.post("/signup", status_code=status.HTTP_201_CREATED, dependencies=[PUBLIC],
           responses={202: {"model": MessageOut,
                            "description": "Created; sign in once the address is confirmed "
                            "(`TUTORAPP_EMAIL_CONFIRMATION_REQUIRED`)"}})
async def signup(body: SignupIn, request: Request, response: Response, db: SessionDep,
                 settings: SettingsDep, limiter: LimiterDep) -> TokensOut | MessageOut:
    """Create an account and sign it in; a verification link goes to the address. When
    confirmation is required, the answer is 202 and sign-in waits for the link."""
    client = client_of(request)
    await limiter.hit(Limit("signup-ip", settings.login_attempts_per_ip,
                            settings.login_window_minutes * 60), client.ip or "unknown")
    user = await service.sign_up(
        db, settings, email=body.email, password=body.password, display_name=body.display_name,
        role=Role(body.role), time_zone=body.time_zone, locale=body.locale,
    )
    if settings.email_confirmation_required:
        response.status_code = status.HTTP_202_ACCEPTED
        return MessageOut(message="Confirm your address from the link we sent, then sign in.")
    tokens = await sessions.start_session(db, settings, user, amr=[sessions.PASSWORD],
                                          aal="aal1", client=client)
    return TokensOut(**tokens_out(tokens))


@auth.post("/login", dependencies=[PUBLIC])
async def login(body: LoginIn, request: Request, db: SessionDep, settings: SettingsDep,
                limiter: LimiterDep) -> TokensOut:
    """Password login. With TOTP on, the session is aal1 until `POST /auth/mfa/verify`."""
    tokens = await sessions.login_with_password(
        db, settings, limiter, email=body.email, password=body.password,
        client=client_of(request),
    )
    return TokensOut(**tokens_out(tokens))


@auth.post("/token/refresh", dependencies=[PUBLIC])
async def refresh(body: RefreshIn, request: Request, db: SessionDep,
                  settings: SettingsDep) -> TokensOut:
    """Trade a refresh token for new tokens; the old refresh token is spent."""
    tokens = await sessions.refresh(db, settings, body.refresh_token, client_of(request))
    return TokensOut(**tokens_out(tokens))


@auth.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(principal: CurrentPrincipalAAL1, db: SessionDep,
                 body: LogoutIn | None = None) -> Response:
    """End this session (`local`), every other one (`others`) or all (`global`)."""
    await sessions.logout(db, principal.user, principal.session, (body or LogoutIn()).scope)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@auth.post("/verify", dependencies=[PUBLIC])
async def verify(body: TokenIn, db: SessionDep, settings: SettingsDep) -> UserOut:
    """Confirm an address from the emailed link (sign-up or change of email)."""
    return user_out(await service.verify_email_token(db, settings, body.token))


@auth.post("/verify/resend", status_code=status.HTTP_202_ACCEPTED)
async def resend_verification(principal: CurrentPrincipal, db: SessionDep,
                              settings: SettingsDep, limiter: LimiterDep) -> MessageOut:
    if principal.user.email_verified_at is not None or not principal.user.email:
        return MessageOut(message="Your address is already verified.")
    await limiter.hit(Limit("verify-resend", 1, max(1, settings.email_otp_interval_seconds)),
                      str(principal.id))
    await service.send_verification(db, settings, principal.user)
    return MessageOut(message="We sent a new verification link.")


@auth.post("/password/recover", status_code=status.HTTP_202_ACCEPTED, dependencies=[PUBLIC])
async def recover(body: EmailIn, request: Request, db: SessionDep, settings: SettingsDep,
                  limiter: LimiterDep) -> MessageOut:
    """Email a reset link (valid one hour). The answer never tells whether the
    address has an account."""
    await sessions.request_password_reset(db, settings, limiter, email=body.email,
                                          client=client_of(request))
    return ACCEPTED


@auth.post("/password/reset", dependencies=[PUBLIC])
async def reset(body: ResetPasswordIn, request: Request, db: SessionDep,
                settings: SettingsDep) -> MessageOut:
    """Set a new password from the emailed link; every session ends. Sign in again."""
    await sessions.reset_password(db, settings, token=body.token, password=body.password,
                                  client=client_of(request))
    return MessageOut(message="Your password was changed. Sign in with it now.")


@auth.post("/otp", status_code=status.HTTP_202_ACCEPTED, dependencies=[PUBLIC])
async def send_otp(body: EmailIn, request: Request, db: SessionDep, settings: SettingsDep,
                   limiter: LimiterDep) -> MessageOut:
    """Email a magic link and a 6-digit code (one request per address per minute)."""
    await sessions.send_login_code(db, settings, limiter, email=body.email,
                                   client=client_of(request))
    return ACCEPTED


@auth.post("/otp/verify", dependencies=[PUBLIC])
async def verify_otp(body: OtpVerifyIn, request: Request, db: SessionDep,
                     settings: SettingsDep, limiter: LimiterDep) -> TokensOut:
    """Sign in with the magic link's `token`, or with `email` and `code`."""
    tokens = await sessions.login_with_code(
        db, settings, limiter, email=body.email, code=body.code, token=body.token,
        client=client_of(request),
    )
    return TokensOut(**tokens_out(tokens))


@auth.post("/mfa/verify")
async def verify_mfa(body: MfaCodeIn, principal: CurrentPrincipalAAL1, request: Request,
                     db: SessionDep, settings: SettingsDep, limiter: LimiterDep) -> TokensOut:
    """Pass the second factor: the session is replaced by a new aal2 one."""
    tokens = await mfa.verify(db, settings, limiter, principal.user, principal.session,
                              code=body.code, recovery_code=body.recovery_code,
                              client=client_of(request))
    return TokensOut(**tokens_out(tokens))


# --- /me ---------------------------------------------------------------------------


@me.get("")
async def read_me(principal: CurrentPrincipalAAL1) -> UserOut:
    return user_out(principal.user)


@me.patch("")
async def update_me(body: ProfileUpdate, principal: CurrentPrincipal, db: SessionDep) -> UserOut:
    user = await service.update_profile(
        db, principal.user, display_name=body.display_name, time_zone=body.time_zone,
        locale=body.locale,
    )
    return user_out(user)


@me.delete("", status_code=status.HTTP_204_NO_CONTENT)
async def delete_me(body: ReauthIn, principal: CurrentPrincipal, request: Request,
                    db: SessionDep) -> Response:
    """Delete the account: personal data erased, accounting rows kept anonymised."""
    await sessions.check_current_password(principal.user, body.current_password)
    await service.delete_account(db, principal.user, ip=client_of(request).ip)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me.get("/export")
async def export_me(principal: CurrentPrincipal, db: SessionDep) -> dict[str, Any]:
    """All the data we hold about you, as JSON."""
    return await service.export(db, principal.user)


@me.post("/password")
async def change_password(body: ChangePasswordIn, principal: CurrentPrincipal, request: Request,
                          db: SessionDep, settings: SettingsDep) -> TokensOut:
    """Re-authenticate with the current password, set a new one; the session gets a
    new id, and `sign_out_others` ends every other session."""
    await sessions.check_current_password(principal.user, body.current_password)
    client = client_of(request)
    await sessions.set_password(db, principal.user, body.new_password, client=client)
    tokens = await sessions.reauthenticated(db, settings, principal.user, principal.session,
                                            client=client, sign_out_others=body.sign_out_others)
    return TokensOut(**tokens_out(tokens))


@me.post("/email", status_code=status.HTTP_202_ACCEPTED)
async def change_email(body: ChangeEmailIn, principal: CurrentPrincipal, db: SessionDep,
                       settings: SettingsDep) -> MessageOut:
    """Re-authenticate, then confirm the new address from the link sent to it."""
    await sessions.check_current_password(principal.user, body.current_password)
    await service.request_email_change(db, settings, principal.user, body.new_email)
    if body.sign_out_others:
        await sessions.revoke_user_sessions(db, principal.id, keep=principal.session.id,
                                            reason="signed_out")
    return MessageOut(message="Confirm the new address from the link we sent to it.")


@me.get("/sessions")
async def list_sessions(principal: CurrentPrincipal, db: SessionDep) -> list[SessionOut]:
    return [
        SessionOut(id=s.id, device=describe_device(s.user_agent), ip=s.ip, aal=s.aal,
                   created_at=s.created_at, last_seen_at=s.last_seen_at,
                   current=s.id == principal.session.id)
        for s in await sessions.live_sessions(db, principal.user)
    ]


@me.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_session(session_id: uuid.UUID, principal: CurrentPrincipal,
                         db: SessionDep) -> Response:
    await sessions.revoke_own_session(db, principal.user, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me.post("/mfa/totp/enroll")
async def enroll_totp(body: ReauthIn, principal: CurrentPrincipal, db: SessionDep,
                      settings: SettingsDep) -> TotpEnrolmentOut:
    """Start TOTP enrolment: scan the QR code, then confirm with a first code."""
    await sessions.check_current_password(principal.user, body.current_password)
    return TotpEnrolmentOut(**await mfa.begin_enrolment(db, settings, principal.user))


@me.post("/mfa/totp/activate")
async def activate_totp(body: ActivateMfaIn, principal: CurrentPrincipal, request: Request,
                        db: SessionDep, settings: SettingsDep) -> TokensWithCodesOut:
    """Confirm enrolment with a code: TOTP is on, you get 10 single-use recovery codes
    (shown once) and an aal2 session; `sign_out_others` ends every other session."""
    tokens, codes = await mfa.activate(db, settings, principal.user, principal.session,
                                       body.code, client_of(request))
    if body.sign_out_others:
        await sessions.revoke_user_sessions(db, principal.id, keep=tokens.session.id,
                                            reason="signed_out")
    return TokensWithCodesOut(**tokens_out(tokens), recovery_codes=codes)


@me.post("/mfa/totp/disable", status_code=status.HTTP_204_NO_CONTENT)
async def disable_totp(body: DisableMfaIn, principal: CurrentPrincipal, request: Request,
                       db: SessionDep, settings: SettingsDep) -> Response:
    """Turn TOTP off: needs the current password and a current code."""
    await sessions.check_current_password(principal.user, body.current_password)
    await mfa.disable(db, settings, principal.user, body.code, client_of(request))
    if body.sign_out_others:
        await sessions.revoke_user_sessions(db, principal.id, keep=principal.session.id,
                                            reason="signed_out")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me.post("/mfa/recovery-codes")
async def new_recovery_codes(body: ReauthIn, principal: CurrentPrincipal, db: SessionDep,
                             settings: SettingsDep) -> RecoveryCodesOut:
    """Replace the recovery codes; the old ones stop working."""
    await sessions.check_current_password(principal.user, body.current_password)
    return RecoveryCodesOut(
        recovery_codes=await mfa.regenerate_recovery_codes(db, settings, principal.user)
    )


@me.get("/children")
async def list_children(principal: ParentPrincipal, db: SessionDep) -> list[UserOut]:
    return [user_out(c) for c in await service.children_of(db, principal.user)]


@me.post("/children", status_code=status.HTTP_201_CREATED)
async def add_child(body: ChildIn, principal: ParentPrincipal, db: SessionDep) -> UserOut:
    """Create a student account managed by you; a child needs no email."""
    child = await service.add_child(db, principal.user, display_name=body.display_name,
                                    time_zone=body.time_zone, email=body.email)
    return user_out(child)


@me.patch("/children/{child_id}")
async def update_child(child_id: uuid.UUID, body: ProfileUpdate, principal: ParentPrincipal,
                       db: SessionDep) -> UserOut:
    child = await service.child_of(db, principal.user, child_id)
    child = await service.update_profile(db, child, display_name=body.display_name,
                                         time_zone=body.time_zone, locale=body.locale)
    return user_out(child)


# --- /admin ------------------------------------------------------------------------


@admin.get("/users")
async def list_users(
    principal: AdminPrincipal, db: SessionDep, role: Role | None = None,
    q: Annotated[Annotated[str, Text(100)] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[UserOut]:
    users = await service.list_users(db, role=role, query=q, limit=limit, offset=offset)
    return [user_out(u) for u in users]


@admin.patch("/users/{user_id}/role")
async def change_role(user_id: uuid.UUID, body: RoleChangeIn, principal: AdminPrincipal,
                      request: Request, db: SessionDep) -> UserOut:
    """Give a user another role (audited)."""
    user = await service.change_role(db, principal.user, user_id, body.role,
                                     ip=client_of(request).ip)
    return user_out(user)


routers = [auth, me, admin]
