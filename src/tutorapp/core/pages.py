"""Helpers every domain's pages share: rendering with the CSRF token, and forms that
fail without keeping half-done writes.

Forms are protected against CSRF: signed-in forms carry a token bound to the
session (checked by the access rule); anonymous forms (sign in, sign up, reset) use
a double-submit token: a random cookie repeated in the form.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.config import Settings
from tutorapp.core.errors import AppError, CSRFFailed
from tutorapp.core.security import csrf_token, new_token

FORM_COOKIE = "tutorapp_form"


def form_cookie_name(settings: Settings) -> str:
    return f"__Host-{FORM_COOKIE}" if settings.secure_cookies else FORM_COOKIE


def page_csrf_token(request: Request) -> str:
    """The token forms on this page must send back."""
    viewer = getattr(request.state, "viewer", None)
    if viewer is not None and viewer.via == "cookie":
        return csrf_token(request.app.state.settings, viewer.session_id)
    token = request.cookies.get(form_cookie_name(request.app.state.settings))
    if not token:
        token = getattr(request.state, "new_form_token", None) or new_token(16)
        request.state.new_form_token = token
    return token


async def check_form_csrf(request: Request) -> None:
    """Double-submit check for forms posted without a session. A signed-in browser's
    forms carry the session-bound token instead, checked by the access rule already."""
    viewer = getattr(request.state, "viewer", None)
    if viewer is not None and viewer.via == "cookie":
        return
    form = await request.form()
    cookie = request.cookies.get(form_cookie_name(request.app.state.settings), "")
    sent = form.get("csrf_token", "")
    if not cookie or not isinstance(sent, str) or not hmac.compare_digest(sent, cookie):
        raise CSRFFailed("The form expired; reload the page and try again.")


FormCSRF = Depends(check_form_csrf)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    response = request.app.state.templates.TemplateResponse(
        request, template, context, status_code=status_code
    )
    if token := getattr(request.state, "new_form_token", None):
        settings = request.app.state.settings
        response.set_cookie(form_cookie_name(settings), token, httponly=True, samesite="lax",
                            secure=settings.secure_cookies, path="/")
    return response


async def form_failed(db: AsyncSession, request: Request, template: str, error: AppError,
                      **context: Any) -> Response:
    """Show the form again with the error; keep no half-done writes.

    The page is rendered before the rollback, which expires every loaded object."""
    response = render(request, template, status_code=error.status, error=error.detail,
                      **context)
    response.headers.update(error.headers)
    if not error.keep_changes:
        await db.rollback()
    return response


def template_context(request: Request) -> dict[str, Any]:
    """Every page knows its caller (`viewer`: plain values, safe on an error page
    rendered after the rollback) and the CSRF token its forms send back."""
    return {"viewer": getattr(request.state, "viewer", None),
            "csrf_token": page_csrf_token(request)}
