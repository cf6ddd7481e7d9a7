"""Sign-in pages of the web app: the same services as the API, with a session cookie."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts import mfa, schemas, service, sessions
from tutorapp.accounts.api import client_of
from tutorapp.accounts.devices import describe_device
from tutorapp.auth.deps import (
    PUBLIC,
    CurrentPrincipal,
    CurrentPrincipalAAL1,
    OptionalPrincipal,
    ParentPrincipal,
)
from tutorapp.auth.roles import Role
from tutorapp.config import Settings
from tutorapp.core.db import SessionDep
from tutorapp.core.deps import LimiterDep, SettingsDep
from tutorapp.core.errors import AppError, safe_next
from tutorapp.core.pages import FormCSRF, form_failed, parse_form, render
from tutorapp.core.ratelimit import Limit

router = APIRouter(include_in_schema=False)
def signed_in(settings: Settings, tokens: sessions.Tokens, next_path: str) -> Response:
    """Set the session cookie and go on: to the second factor when the account has one."""
    target = safe_next(next_path)
    if tokens.user.mfa_enabled and tokens.session.aal != "aal2":
        from urllib.parse import urlencode

        target = "/app/mfa?" + urlencode({"next": target})
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, settings, tokens)
    return response


def set_session_cookie(response: Response, settings: Settings, tokens: sessions.Tokens) -> None:
    if not tokens.cookie_token:
        raise ValueError("these tokens were issued without a cookie token")
    response.set_cookie(
        settings.session_cookie_name, tokens.cookie_token, httponly=True, samesite="lax",
        secure=settings.secure_cookies, path="/", max_age=settings.session_max_age_hours * 3600,
    )


Field = Annotated[str, Form()]
SIGNUP_LABELS = {"display_name": "Your name", "role": "I am", "time_zone": "Time zone"}


# --- sign in ---------------------------------------------------------------------


@router.get("/app/login", dependencies=[PUBLIC])
async def login_page(request: Request, principal: OptionalPrincipal, next: str = "/app") -> Response:
    if principal is not None and principal.via == "cookie":
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "auth/login.html", next=safe_next(next))


@router.post("/app/login", dependencies=[PUBLIC, FormCSRF])
async def login_submit(request: Request, db: SessionDep, settings: SettingsDep,
                       limiter: LimiterDep, email: Field, password: Field,
                       next: Annotated[str, Form()] = "/app") -> Response:
    try:
        tokens = await sessions.login_with_password(
            db, settings, limiter, email=email, password=password, client=client_of(request),
            with_cookie=True,
        )
    except AppError as error:
        return await form_failed(db, request, "auth/login.html", error, email=email, next=next)
    return signed_in(settings, tokens, next)


@router.get("/app/signup", dependencies=[PUBLIC])
async def signup_page(request: Request, role: str = "student") -> Response:
    return render(request, "auth/signup.html", role=role if role in ("student", "parent", "tutor")
                  else "student")


@router.post("/app/signup", dependencies=[PUBLIC, FormCSRF])
async def signup_submit(request: Request, db: SessionDep, settings: SettingsDep,
                        email: Field, password: Field, display_name: Field,
                        role: Annotated[str, Form()] = "student",
                        time_zone: Annotated[str, Form()] = "UTC") -> Response:
    values: dict[str, Any] = {"email": email, "display_name": display_name, "role": role,
                              "time_zone": time_zone}
    try:
        data = parse_form(schemas.SignupIn, values | {"password": password}, labels=SIGNUP_LABELS)
        user = await service.sign_up(db, settings, email=data.email, password=data.password,
                                     display_name=data.display_name, role=Role(data.role),
                                     time_zone=data.time_zone, locale="en")
    except AppError as error:
        return await form_failed(db, request, "auth/signup.html", error, **values)
    if settings.email_confirmation_required:
        return render(request, "auth/done.html", title="Check your inbox",
                      message=f"We sent a confirmation link to {user.email}. Open it, then "
                      "sign in.", link="/app/login", link_text="Sign in")
    tokens = await sessions.start_session(db, settings, user, amr=[sessions.PASSWORD],
                                          aal="aal1", client=client_of(request),
                                          with_cookie=True)
    return signed_in(settings, tokens, "/app?welcome=1")


@router.post("/app/logout")
async def logout_submit(principal: CurrentPrincipalAAL1, db: SessionDep,
                        settings: SettingsDep) -> Response:
    await sessions.logout(db, principal.user, principal.session, "local")
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(settings.session_cookie_name, path="/",
                           secure=settings.secure_cookies, httponly=True, samesite="lax")
    return response


# --- passwordless --------------------------------------------------------------------


@router.get("/app/login/code", dependencies=[PUBLIC])
async def code_page(request: Request, email: str = "", next: str = "/app") -> Response:
    return render(request, "auth/code.html", email=email, next=safe_next(next), sent=bool(email))


@router.post("/app/login/code", dependencies=[PUBLIC, FormCSRF])
async def code_submit(request: Request, db: SessionDep, settings: SettingsDep,
                      limiter: LimiterDep, email: Field,
                      code: Annotated[str, Form()] = "",
                      next: Annotated[str, Form()] = "/app") -> Response:
    try:
        if not code:
            await sessions.send_login_code(db, settings, limiter, email=email,
                                           client=client_of(request))
            return render(request, "auth/code.html", email=email, next=next, sent=True)
        tokens = await sessions.login_with_code(db, settings, limiter, email=email, code=code,
                                                token=None, client=client_of(request),
                                                with_cookie=True)
    except AppError as error:
        return await form_failed(db, request, "auth/code.html", error, email=email, next=next,
                                 sent=bool(code))
    return signed_in(settings, tokens, next)


@router.get("/auth/magic", dependencies=[PUBLIC])
async def magic_page(request: Request, token: str = "") -> Response:
    # A button, not an automatic sign-in: mail scanners that open links sign nobody in.
    return render(request, "auth/confirm_link.html", token=token, action="/auth/magic",
                  title="Sign in to TutorApp", button="Sign in")


@router.post("/auth/magic", dependencies=[PUBLIC, FormCSRF])
async def magic_submit(request: Request, db: SessionDep, settings: SettingsDep,
                       limiter: LimiterDep, token: Field) -> Response:
    try:
        tokens = await sessions.login_with_code(db, settings, limiter, email=None, code=None,
                                                token=token, client=client_of(request),
                                                with_cookie=True)
    except AppError as error:
        return await form_failed(db, request, "auth/confirm_link.html", error, token=token,
                                 action="/auth/magic", title="Sign in to TutorApp",
                                 button="Sign in")
    return signed_in(settings, tokens, "/app")


# --- email links -------------------------------------------------------------------------


@router.get("/auth/verify", dependencies=[PUBLIC])
async def verify_page(request: Request, token: str = "") -> Response:
    return render(request, "auth/confirm_link.html", token=token, action="/auth/verify",
                  title="Confirm your email address", button="Confirm my address")


@router.post("/auth/verify", dependencies=[PUBLIC, FormCSRF])
async def verify_submit(request: Request, db: SessionDep, settings: SettingsDep,
                        token: Field) -> Response:
    try:
        user = await service.verify_email_token(db, settings, token)
    except AppError as error:
        return await form_failed(db, request, "auth/confirm_link.html", error, token=token,
                                 action="/auth/verify", title="Confirm your email address",
                                 button="Confirm my address")
    return render(request, "auth/done.html", title="Address confirmed",
                  message=f"{user.email} is confirmed. You can use every part of TutorApp now.",
                  link="/app", link_text="Continue")


@router.get("/app/reset", dependencies=[PUBLIC])
async def recover_page(request: Request) -> Response:
    return render(request, "auth/recover.html")


@router.post("/app/reset", dependencies=[PUBLIC, FormCSRF])
async def recover_submit(request: Request, db: SessionDep, settings: SettingsDep,
                         limiter: LimiterDep, email: Field) -> Response:
    try:
        await sessions.request_password_reset(db, settings, limiter, email=email,
                                              client=client_of(request))
    except AppError as error:
        return await form_failed(db, request, "auth/recover.html", error, email=email)
    return render(request, "auth/done.html", title="Check your email",
                  message="If the address has an account, we sent a link to choose a new "
                  "password. It works once, for an hour.", link="/app/login",
                  link_text="Back to sign in")


@router.get("/auth/reset", dependencies=[PUBLIC])
async def reset_page(request: Request, token: str = "") -> Response:
    return render(request, "auth/reset.html", token=token)


@router.post("/auth/reset", dependencies=[PUBLIC, FormCSRF])
async def reset_submit(request: Request, db: SessionDep, settings: SettingsDep,
                       token: Field, password: Field) -> Response:
    try:
        await sessions.reset_password(db, settings, token=token, password=password,
                                      client=client_of(request))
    except AppError as error:
        return await form_failed(db, request, "auth/reset.html", error, token=token)
    return render(request, "auth/done.html", title="Password changed",
                  message="Your password was changed and every session was signed out.",
                  link="/app/login", link_text="Sign in")


# --- second factor -------------------------------------------------------------------


@router.get("/app/mfa")
async def mfa_page(request: Request, principal: CurrentPrincipalAAL1,
                   next: str = "/app") -> Response:
    if principal.aal == "aal2" or not principal.user.mfa_enabled:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "auth/mfa.html", next=safe_next(next))


@router.post("/app/mfa")
async def mfa_submit(request: Request, principal: CurrentPrincipalAAL1, db: SessionDep,
                     settings: SettingsDep, limiter: LimiterDep,
                     code: Annotated[str, Form()] = "",
                     recovery_code: Annotated[str, Form()] = "",
                     next: Annotated[str, Form()] = "/app") -> Response:
    try:
        tokens = await mfa.verify(db, settings, limiter, principal.user, principal.session,
                                  code=code.strip() or None,
                                  recovery_code=recovery_code.strip() or None,
                                  client=client_of(request))
    except AppError as error:
        return await form_failed(db, request, "auth/mfa.html", error, next=next)
    return signed_in(settings, tokens, next)


# --- account security ------------------------------------------------------------------


async def _security_context(db: AsyncSession, principal: Any) -> dict[str, Any]:
    live = await sessions.live_sessions(db, principal.user)
    return {
        "user": principal.user,
        "sessions": [
            {"id": s.id, "device": describe_device(s.user_agent), "ip": s.ip,
             "last_seen_at": s.last_seen_at, "current": s.id == principal.session.id}
            for s in live
        ],
    }


@router.get("/app/account/security", response_class=HTMLResponse)
async def security_page(request: Request, principal: CurrentPrincipal,
                        db: SessionDep) -> Response:
    return render(request, "auth/security.html", **await _security_context(db, principal))


@router.post("/app/account/mfa/enroll")
async def enroll_submit(request: Request, principal: CurrentPrincipal, db: SessionDep,
                        settings: SettingsDep, current_password: Field) -> Response:
    try:
        await sessions.check_current_password(principal.user, current_password)
        enrolment = await mfa.begin_enrolment(db, settings, principal.user)
    except AppError as error:
        return await form_failed(db, request, "auth/security.html", error,
                                 **await _security_context(db, principal))
    return render(request, "auth/security.html", enrolment=enrolment,
                  **await _security_context(db, principal))


@router.post("/app/account/mfa/activate")
async def activate_submit(request: Request, principal: CurrentPrincipal, db: SessionDep,
                          settings: SettingsDep, code: Field) -> Response:
    try:
        tokens, codes = await mfa.activate(db, settings, principal.user, principal.session,
                                           code.strip(), client_of(request))
    except AppError as error:
        return await form_failed(db, request, "auth/security.html", error,
                                 **await _security_context(db, principal))
    response = render(request, "auth/recovery_codes.html", codes=codes)
    set_session_cookie(response, settings, tokens)
    return response


@router.post("/app/account/sessions/{session_id}/revoke")
async def revoke_submit(session_id: uuid.UUID, principal: CurrentPrincipal,
                        db: SessionDep) -> Response:
    await sessions.revoke_own_session(db, principal.user, session_id)
    return RedirectResponse("/app/account/security", status_code=303)


# --- the web app's home (the dashboard itself is site.app_pages) ----------------------


@router.post("/app/verify/resend")
async def resend_submit(request: Request, principal: CurrentPrincipal, db: SessionDep,
                        settings: SettingsDep, limiter: LimiterDep) -> Response:
    if principal.user.email_verified_at is None and principal.user.email:
        try:
            await limiter.hit(Limit("verify-resend", 1,
                                    max(1, settings.email_otp_interval_seconds)),
                              str(principal.id))
        except AppError as error:
            return await form_failed(db, request, "auth/done.html", error,
                                     title="Try again in a minute", message=error.detail,
                                     link="/app", link_text="Back")
        await service.send_verification(db, settings, principal.user)
    return RedirectResponse("/app?resent=1", status_code=303)


# --- account: profile, time zone, email, password, export, deletion --------------------


def _account_values(principal: Any, extra: dict[str, Any]) -> dict[str, Any]:
    values = {"display_name": principal.user.display_name, "time_zone": principal.user.time_zone}
    values.update(extra.pop("values", {}))
    return values


def _account(request: Request, principal: Any, **extra: Any) -> Response:
    return render(request, "app/account.html", user=principal.user,
                  values=_account_values(principal, extra), **extra)


async def _account_failed(db: AsyncSession, request: Request, principal: Any, error: AppError,
                          **extra: Any) -> Response:
    """The account page again with the error."""
    return await form_failed(db, request, "app/account.html", error,
                             labels={"display_name": "Name"}, user=principal.user,
                             values=_account_values(principal, extra), **extra)


@router.get("/app/account", response_class=HTMLResponse)
async def account_page(request: Request, principal: CurrentPrincipal) -> Response:
    return _account(request, principal, notice=request.query_params.get("done"))


@router.post("/app/account/profile")
async def account_profile(request: Request, principal: CurrentPrincipal, db: SessionDep,
                          display_name: Field, time_zone: Field) -> Response:
    try:
        data = parse_form(schemas.ProfileUpdate,
                          {"display_name": display_name, "time_zone": time_zone},
                          labels={"display_name": "Name", "time_zone": "Time zone"})
        await service.update_profile(db, principal.user, display_name=data.display_name,
                                     time_zone=data.time_zone, locale=None)
    except AppError as error:
        return await _account_failed(db, request, principal, error,
                                     values={"display_name": display_name, "time_zone": time_zone})
    return RedirectResponse("/app/account?done=profile", status_code=303)


@router.post("/app/account/email")
async def account_email(request: Request, principal: CurrentPrincipal, db: SessionDep,
                        settings: SettingsDep, new_email: Field, current_password: Field) -> Response:
    try:
        await sessions.check_current_password(principal.user, current_password)
        await service.request_email_change(db, settings, principal.user, new_email)
    except AppError as error:
        return await _account_failed(db, request, principal, error)
    return RedirectResponse("/app/account?done=email", status_code=303)


@router.post("/app/account/password")
async def account_password(request: Request, principal: CurrentPrincipal, db: SessionDep,
                           settings: SettingsDep, current_password: Field,
                           new_password: Field) -> Response:
    try:
        await sessions.check_current_password(principal.user, current_password)
        client = client_of(request)
        await sessions.set_password(db, principal.user, new_password, client=client)
        tokens = await sessions.reauthenticated(db, settings, principal.user, principal.session,
                                                client=client, sign_out_others=True)
    except AppError as error:
        return await _account_failed(db, request, principal, error)
    response = RedirectResponse("/app/account?done=password", status_code=303)
    set_session_cookie(response, settings, tokens)
    return response


@router.get("/app/account/export")
async def account_export(principal: CurrentPrincipal, db: SessionDep) -> Response:
    import orjson

    data = await service.export(db, principal.user)
    return Response(orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2),
                    media_type="application/json",
                    headers={"Content-Disposition": 'attachment; filename="tutorapp-export.json"'})


@router.get("/app/account/delete")
async def account_delete_page(request: Request, principal: CurrentPrincipal) -> Response:
    return render(request, "app/account_delete.html", user=principal.user)


@router.post("/app/account/delete")
async def account_delete(request: Request, principal: CurrentPrincipal, db: SessionDep,
                         settings: SettingsDep, current_password: Field) -> Response:
    try:
        await sessions.check_current_password(principal.user, current_password)
        await service.delete_account(db, principal.user, ip=client_of(request).ip)
    except AppError as error:
        return await form_failed(db, request, "app/account_delete.html", error,
                                 user=principal.user)
    response = render(request, "auth/done.html", title="Account deleted",
                      message="Your personal data was erased. Lessons and payments are kept "
                      "anonymised, as the law on accounting requires.", link="/",
                      link_text="Home")
    response.delete_cookie(settings.session_cookie_name, path="/",
                           secure=settings.secure_cookies, httponly=True, samesite="lax")
    return response


# --- a parent's children --------------------------------------------------------------


@router.get("/app/children", response_class=HTMLResponse)
async def children_page(request: Request, principal: ParentPrincipal, db: SessionDep) -> Response:
    return render(request, "app/children.html", children=await service.children_of(db, principal.user),
                  zone=principal.user.time_zone)


@router.post("/app/children")
async def children_add(request: Request, principal: ParentPrincipal, db: SessionDep,
                       display_name: Field, time_zone: Annotated[str, Form()] = "") -> Response:
    try:
        data = parse_form(schemas.ChildIn, {"display_name": display_name,
                                            "time_zone": time_zone.strip() or None},
                          labels={"display_name": "Child's name"})
        await service.add_child(db, principal.user, display_name=data.display_name,
                                time_zone=data.time_zone, email=None)
    except AppError as error:
        return await form_failed(db, request, "app/children.html", error,
                                 children=await service.children_of(db, principal.user),
                                 zone=principal.user.time_zone)
    return RedirectResponse("/app/children?added=1", status_code=303)
