"""Errors on /auth/v1 in Supabase Auth's shape, from our typed errors.

GoTrue answers `{"code": <status>, "error_code": "...", "msg": "..."}`, or, when the
client sends `X-Supabase-Api-Version: 2024-01-01` (supabase-js and supabase-py do),
`{"code": "...", "message": "..."}` with that header echoed; both carry the
`x-sb-error-code` header (internal/api/errors.go). The services raise the same
errors as for /api/v1; only the rendering differs, and only under /auth/v1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from tutorapp.accounts.mfa import InvalidCode
from tutorapp.accounts.service import InvalidToken
from tutorapp.accounts.sessions import (
    EmailNotConfirmed,
    InvalidCredentials,
    InvalidGrant,
    RefreshTokenNotFound,
    RefreshTokenReused,
)
from tutorapp.auth.deps import (
    InvalidAccessToken,
    MFAEnrolmentRequired,
    MFARequired,
    SessionEnded,
)
from tutorapp.core.errors import (
    AppError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthorized,
    validation_errors,
)

PREFIX = "/auth/v1"
API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION_2024 = date(2024, 1, 1)


class GoTrueError(AppError):
    """An error only GoTrue's API has (a Supabase error code of its own)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.gotrue = (status, code, message)


class RedirectTo(AppError):
    """A failed emailed link: back to the app with the error in the URL fragment, as
    GoTrue's GET /verify does (the transaction still rolls back)."""

    def __init__(self, url: str, error: GoTrueError) -> None:
        super().__init__(error.detail)
        self.url, self.error = url, error


# (status, error_code, message or None to keep ours), most specific class first.
_BY_CLASS: list[tuple[type[AppError], int, str, str | None]] = [
    (InvalidCredentials, 400, "invalid_credentials", "Invalid login credentials"),
    (EmailNotConfirmed, 400, "email_not_confirmed", "Email not confirmed"),
    (RefreshTokenNotFound, 400, "refresh_token_not_found",
     "Invalid Refresh Token: Refresh Token Not Found"),
    (RefreshTokenReused, 400, "refresh_token_already_used",
     "Invalid Refresh Token: Already Used"),
    (InvalidGrant, 400, "session_expired", "Invalid Refresh Token: Session Expired"),
    (InvalidToken, 403, "otp_expired", "Token has expired or is invalid"),
    (InvalidCode, 422, "mfa_verification_failed", "Invalid TOTP code entered"),
    (MFARequired, 403, "insufficient_aal", None),
    (MFAEnrolmentRequired, 403, "insufficient_aal", None),
    (InvalidAccessToken, 401, "bad_jwt", None),
    (SessionEnded, 401, "session_not_found", None),
    (Unauthorized, 401, "no_authorization", "This endpoint requires a valid Bearer token"),
    (Forbidden, 403, "not_admin", None),
    (NotFound, 404, "not_found", None),
    (Conflict, 422, "user_already_exists", None),
    (InvalidInput, 400, "validation_failed", None),
]


def _weak_password_reasons(message: str) -> list[str]:
    return ["pwned"] if "common" in message else ["length"]


def _describe(request: Request, exc: AppError) -> tuple[int, str, str, dict[str, Any]]:
    """(status, error_code, message, extra body fields)."""
    if isinstance(exc, GoTrueError):
        return (*exc.gotrue, {})
    if isinstance(exc, TooManyRequests):
        sends_email = request.url.path.endswith(("/otp", "/recover", "/signup"))
        code = "over_email_send_rate_limit" if sends_email else "over_request_rate_limit"
        seconds = exc.extra.get("retry_after", 60)
        return 429, code, (
            f"For security purposes, you can only request this after {seconds} seconds."
        ), {}
    if isinstance(exc, InvalidInput):
        error = exc.extra["errors"][0]
        if error["field"] in ("password", "new_password"):
            message = f"Password {error['message']}."
            return 422, "weak_password", message, {
                "weak_password": {"reasons": _weak_password_reasons(error["message"]),
                                  "message": message}}
    for cls, status, code, fixed in _BY_CLASS:
        if isinstance(exc, cls):
            return status, code, fixed or exc.detail, {}
    return exc.status, "unexpected_failure" if exc.status >= 500 else "unknown", exc.detail, {}


def _api_version(request: Request) -> date | None:
    try:
        return date.fromisoformat(request.headers.get(API_VERSION_HEADER, ""))
    except ValueError:
        return None


def render(
    request: Request, status: int, code: str, message: str,
    headers: Mapping[str, str] | None = None, extra: dict[str, Any] | None = None,
) -> Response:
    headers = dict(headers or {})
    headers["x-sb-error-code"] = code
    version = _api_version(request)
    if version is not None and version >= API_VERSION_2024:
        body: dict[str, Any] = {"code": code, "message": message}
        headers[API_VERSION_HEADER] = API_VERSION_2024.isoformat()
    else:
        body = {"code": status, "error_code": code, "msg": message}
    body.update(extra or {})
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers=headers)


async def _app_error(request: Request, exc: AppError) -> Response:
    if isinstance(exc, RedirectTo):
        status, code, message = exc.error.gotrue
        fragment = urlencode({"error": "access_denied" if status == 403 else "invalid_request",
                              "error_code": code, "error_description": message})
        return RedirectResponse(f"{exc.url}#{fragment}", status_code=303)
    status, code, message, extra = _describe(request, exc)
    return render(request, status, code, message, exc.headers, extra)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors = validation_errors(exc)
    if any(e["type"] == "json_invalid" for e in errors):
        return render(request, 400, "bad_json", "Could not parse request body as JSON")
    described = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return render(request, 400, "validation_failed", f"Invalid input: {described}")


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    code = {404: "not_found", 405: "validation_failed"}.get(exc.status_code, "unknown")
    return render(request, exc.status_code, code, str(exc.detail), exc.headers)


Handler = Callable[[Request, Any], Awaitable[Response]]


def install(app: FastAPI) -> None:
    """Route errors under /auth/v1 to GoTrue's shape; every other path keeps the
    handler it had (problem+json or the HTML error page)."""
    ours: dict[type[Exception], Handler] = {
        AppError: _app_error, RequestValidationError: _validation_error,
        StarletteHTTPException: _http_error,
    }
    for exc_class, handler in ours.items():
        previous: Any = app.exception_handlers[exc_class]

        async def dispatch(request: Request, exc: Any, handler: Handler = handler,
                           previous: Any = previous) -> Response:
            if request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/"):
                return await handler(request, exc)
            return await previous(request, exc)

        app.add_exception_handler(exc_class, dispatch)
