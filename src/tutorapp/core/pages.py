"""Helpers every domain's pages share: rendering with the CSRF token, and forms that
fail without keeping half-done writes.

Forms are protected against CSRF: signed-in forms carry a token bound to the
session (checked by the access rule); anonymous forms (sign in, sign up, reset) use
a double-submit token: a random cookie repeated in the form.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.config import Settings
from tutorapp.core.errors import AppError, CSRFFailed, validation_errors
from tutorapp.core.fields import time_zones
from tutorapp.core.security import csrf_token, new_token

FORM_COOKIE = "tutorapp_form"
Model = TypeVar("Model", bound=BaseModel)


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


def form_message(error: AppError, labels: Mapping[str, str] | None = None) -> str:
    """The error as the page says it: field names become the form's labels
    ("hourly_rate: a number" -> "Hourly rate: a number.")."""
    errors = error.extra.get("errors")
    if isinstance(error, FormInvalid) or not errors:
        return error.detail
    if error.detail != "; ".join(f"{e['field']}: {e['message']}" for e in errors):
        return error.detail  # a sentence written for people already
    return " ".join(sentence(label_of(e["field"], labels or {}), e["message"]) for e in errors)


def sentence(label: str, message: str) -> str:
    """"Name" + "must be at most 100 characters" -> "Name must be at most 100 characters."
    and "Hourly rate" + "a number, e.g. 35" -> "Hourly rate: a number, e.g. 35."."""
    message = message.rstrip(".")
    joiner = " " if message.startswith(("must ", "is ", "may ", "needs ")) else ": "
    return f"{label}{joiner}{message}."


async def form_failed(db: AsyncSession, request: Request, template: str, error: AppError,
                      *, labels: Mapping[str, str] | None = None, **context: Any) -> Response:
    """Show the form again with the error in words; keep no half-done writes.

    The page is rendered before the rollback, which expires every loaded object."""
    response = render(request, template, status_code=error.status,
                      error=form_message(error, labels), **context)
    response.headers.update(error.headers)
    if not error.keep_changes:
        await db.rollback()
    return response


class FormInvalid(AppError):
    """A form's fields failed the schema the API uses too; `detail` says it in words."""

    status, type, title = 422, "/problems/validation-error", "Invalid input"

    def __init__(self, errors: list[dict[str, Any]], labels: Mapping[str, str]) -> None:
        sentences = [sentence(label_of(e["field"], labels), e["message"]) for e in errors]
        super().__init__(" ".join(sentences), errors=errors)


class FormProblem(AppError):
    """A form that cannot be read as the user meant (a half-filled row): its detail
    is already a sentence for the page."""

    status, type, title = 422, "/problems/validation-error", "Invalid input"


def label_of(field: str, labels: Mapping[str, str]) -> str:
    """The form's words for a field path: "overrides[2].day" is labelled by
    "overrides[2]" if given, else by "overrides" plus the row number ("Date 3"); then
    the sub-field by "overrides.day" or "day" (an empty label omits it)."""
    if field in labels:
        return labels[field]
    head, _, rest = field.partition("[")
    index, _, sub = rest.partition("]")
    row = f"{head}[{index}]"
    if row in labels:
        label = labels[row]
    else:
        label = labels.get(head) or head.replace("_", " ").capitalize()
        if index.isdigit():
            label += f" {int(index) + 1}"
    sub = sub.lstrip(".")
    if sub:
        sub_label = labels.get(f"{head}.{sub}", labels.get(sub, sub.replace("_", " ")))
        if sub_label:
            label += f", {sub_label}"
    return label


def parse_form(model: type[Model], data: Mapping[str, Any], *,
               labels: Mapping[str, str] | None = None) -> Model:
    """Validate a form with the API's schema (same limits, same rules), or raise
    `FormInvalid` whose sentence names each field by its label on the page."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise FormInvalid(validation_errors(exc), labels or {}) from None


def template_context(request: Request) -> dict[str, Any]:
    """Every page knows its caller (`viewer`: plain values, safe on an error page
    rendered after the rollback) and the CSRF token its forms send back."""
    return {"viewer": getattr(request.state, "viewer", None),
            "csrf_token": page_csrf_token(request),
            "time_zones": time_zones()}
