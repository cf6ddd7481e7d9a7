"""Expected failures as typed errors, rendered as RFC 9457 problem details.

API callers get `application/problem+json` (`type`, `title`, `status`, `detail`,
plus `errors` for validation: one entry per failing field). Browsers asking for a
page get the HTML error page. Anything not raised as an `AppError` or HTTP error is
a bug: `middleware.RequestContextMiddleware` logs it and answers 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"
API_PREFIXES = ("/api/", "/webhooks/", "/health/")


class PermanentFailure(Exception):
    """Raised by an outbound call (a job step) when retrying cannot help: a vendor's
    4xx, a refused address. Job steps stop retrying on it."""


class AppError(Exception):
    """Base of expected failures: carries its HTTP status and problem type."""

    status: ClassVar[int] = 400
    type: ClassVar[str] = "about:blank"
    title: ClassVar[str] = "Bad request"
    # Where a browser asking for a page is sent instead of an error page.
    page_redirect: ClassVar[str | None] = None

    def __init__(
        self, detail: str | None = None, *, headers: dict[str, str] | None = None,
        keep_changes: bool = False, **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        # Commit the unit of work's writes although the request fails (see core/db.py).
        self.keep_changes = keep_changes
        self.extra = extra


class NotFound(AppError):
    status, type, title = 404, "/problems/not-found", "Not found"


class Conflict(AppError):
    status, type, title = 409, "/problems/conflict", "Conflict"


class Unauthorized(AppError):
    status, type, title = 401, "/problems/unauthorized", "Authentication required"
    page_redirect = "/app/login"


class Forbidden(AppError):
    status, type, title = 403, "/problems/forbidden", "Forbidden"


class InvalidInput(AppError):
    """A rule on a field failed in the service layer (not in schema validation)."""

    status, type, title = 422, "/problems/validation-error", "Invalid input"

    def __init__(self, field: str, message: str, *, location: str = "body") -> None:
        super().__init__(
            f"{field}: {message}",
            errors=[{"field": field, "location": location, "message": message}],
        )


class CSRFFailed(AppError):
    status, type, title = 403, "/problems/csrf", "CSRF check failed"


class TooManyRequests(AppError):
    status, type, title = 429, "/problems/rate-limited", "Too many requests"

    def __init__(
        self, retry_after: int, detail: str | None = None, *, keep_changes: bool = False
    ) -> None:
        super().__init__(
            detail or f"Try again in {retry_after} seconds.",
            headers={"Retry-After": str(retry_after)},
            keep_changes=keep_changes,
            retry_after=retry_after,
        )


class ServiceUnavailable(AppError):
    """A dependency (the database, its disk) cannot serve this request right now: the
    same request may succeed after `Retry-After` seconds. `core.db` maps driver errors
    onto these."""

    status, type, title = 503, "/problems/unavailable", "Service unavailable"

    def __init__(self, detail: str, *, retry_after: int, cause: str) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, cause=cause)


def wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(API_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "")


def problem_body(
    status: int, *, title: str | None = None, detail: str | None = None, type: str = "about:blank",
    instance: str | None = None, **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": type,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or HTTPStatus(status).description or HTTPStatus(status).phrase,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def render_problem(
    request: Request, status: int, *, headers: Mapping[str, str] | None = None, **fields: Any
) -> Response:
    body = problem_body(status, instance=request.url.path, **fields)
    if wants_html(request):
        templates = request.app.state.templates
        return templates.TemplateResponse(
            request, "error.html", {"problem": body}, status_code=status, headers=headers
        )
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _field_path(location: tuple[Any, ...]) -> tuple[str, str]:
    """("body", "user", "email") -> ("body", "user.email"); indexes become [n]."""
    where, *rest = location or ("body",)
    path = ""
    for part in rest:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return str(where), path or str(where)


_MESSAGES: dict[str, str] = {
    "missing": "is required",
    "string_too_long": "must be at most {max_length} characters",
    "too_long": "must have at most {max_length} items",
    "too_short": "must have at least {min_length} items",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "greater_than": "must be more than {gt}",
    "less_than": "must be less than {lt}",
    "uuid_parsing": "is not one of the choices offered",
    "uuid_type": "is not one of the choices offered",
    "literal_error": "must be one of: {expected}",
    "enum": "must be one of: {expected}",
    "date_parsing": "must be a date such as 2026-05-31",
    "date_from_datetime_parsing": "must be a date such as 2026-05-31",
    "datetime_parsing": "must be a date and time such as 2026-05-31T14:30:00+02:00",
    "datetime_from_date_parsing": "must be a date and time such as 2026-05-31T14:30:00+02:00",
    "timezone_aware": "needs an offset, e.g. +02:00 or Z",
    "bool_parsing": "must be yes or no",
    "string_type": "must be text",
    "extra_forbidden": "is not a field of this form",
    "json_invalid": "is not valid JSON",
}


# What a pattern of our schemas asks for, in words (keyed by a piece of the pattern).
_PATTERNS = {
    "[0-5]\\d": "must be a time such as 09:30, from 00:00 to 23:59",
    "\\d{6}": "must be the 6 digits of the code",
    "[a-z]{2,3}": "must be a language code such as en or pt-BR",
    "[a-z0-9]+(?:-": "may hold only lowercase letters, digits and single hyphens",
    "https://": "must be an https:// link",
    "[A-Za-z_]+": "may hold only letters and underscores",
}


def human_message(error: Mapping[str, Any]) -> str:
    """One sentence a person can act on, for the API's `errors[].message` and the
    pages alike: never pydantic's "1 validation error for SeriesIn" or a regex."""
    kind, context = str(error.get("type", "")), dict(error.get("ctx") or {})
    if kind == "string_too_short":
        return ("is required" if context.get("min_length") == 1
                else "must be at least {min_length} characters".format(**context))
    if kind == "string_pattern_mismatch":
        pattern = str(context.get("pattern", ""))
        for needle, sentence in _PATTERNS.items():
            if needle in pattern:
                return sentence
        return "is not in the expected format"
    if kind in ("literal_error", "enum"):
        expected = str(context.get("expected", "")).replace("'", "")
        if expected.count(",") >= 6:  # a long list: the form offers it as a choice
            return "is not one of the choices offered"
        return f"must be one of: {expected}"
    if kind == "value_error" and "email" in str(error["msg"]):
        return "is not a valid email address"
    template = _MESSAGES.get(kind)
    if template:
        try:
            return template.format(**context)
        except (KeyError, IndexError):
            pass
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def validation_errors(exc: RequestValidationError | ValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        location, field = _field_path(tuple(error.get("loc", ())))
        if isinstance(exc, ValidationError):  # a model validated by hand: the loc is the field
            location, field = "body", _field_path(("body", *error.get("loc", ())))[1]
        errors.append({"field": field, "location": location, "message": human_message(error),
                       "type": error["type"]})
    return errors


def safe_next(path: str | None, default: str = "/app") -> str:
    """A same-site path to return to after signing in (never another host)."""
    if path and path.startswith("/") and not path.startswith(("//", "/\\")):
        return path
    return default


async def _app_error(request: Request, exc: AppError) -> Response:
    if exc.page_redirect and wants_html(request):
        from urllib.parse import urlencode

        from starlette.responses import RedirectResponse

        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = urlencode({"next": safe_next(target)})
        return RedirectResponse(f"{exc.page_redirect}?{query}", status_code=303)
    return render_problem(
        request, exc.status, headers=exc.headers, type=exc.type, title=exc.title,
        detail=exc.detail, **exc.extra,
    )


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    raw: object = exc.detail  # FastAPI's HTTPException may carry any JSON as its detail
    detail = raw if isinstance(raw, str) else None
    return render_problem(request, exc.status_code, headers=exc.headers, detail=detail)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors = validation_errors(exc)
    if any(e["type"] == "json_invalid" for e in errors):
        return render_problem(
            request, 400, type="/problems/malformed-json", title="Malformed JSON",
            detail="The request body is not valid JSON.", errors=errors,
        )
    fields = ", ".join(e["field"] for e in errors)
    return render_problem(
        request, 422, type="/problems/validation-error", title="Invalid input",
        detail=f"Check these fields: {fields}.", errors=errors,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
