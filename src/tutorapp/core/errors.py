"""Expected failures as typed errors, rendered as RFC 9457 problem details.

API callers get `application/problem+json` (`type`, `title`, `status`, `detail`,
plus `errors` for validation: one entry per failing field). Browsers asking for a
page get the HTML error page. Anything not raised as an `AppError` or HTTP error is
a bug: `middleware.RequestContextMiddleware` logs it and answers 500.
"""

from __future__ import annotations

from http import HTTPStatus
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"
API_PREFIXES = ("/api/", "/webhooks/", "/health/")


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
    request: Request, status: int, *, headers: dict[str, str] | None = None, **fields: Any
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


def human_message(error: Mapping[str, Any]) -> str:
    """Pydantic's message without its developer prefix ("Value error, ...")."""
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
    detail = exc.detail if isinstance(exc.detail, str) else None
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
