"""Errors under /storage/v1 in Supabase Storage's shape (`src/internal/errors`):
`{"statusCode": "<status>", "code": "<ErrorCode>", "error": "<legacy error>",
"message": "..."}`. Every other path keeps problem+json."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from tutorapp.core.errors import (
    AppError,
    Forbidden,
    TooManyRequests,
    Unauthorized,
    validation_errors,
)
from tutorapp.files import errors
from tutorapp.files.storage_api import PREFIX

Handler = Callable[[Request, Any], Awaitable[Response]]

# (code, legacy `error`) per error class, most specific first.
_CODES: list[tuple[type[AppError], str, str]] = [
    (errors.BucketNotFound, "NoSuchBucket", "Bucket not found"),
    (errors.ObjectNotFound, "NoSuchKey", "not_found"),
    (errors.BucketExists, "BucketAlreadyExists", "Duplicate"),
    (errors.ObjectExists, "KeyAlreadyExists", "Duplicate"),
    (errors.UploadOffsetMismatch, "InvalidRequest", "Conflict"),
    (errors.InvalidObjectName, "InvalidKey", "Invalid Input"),
    (errors.InvalidSignature, "InvalidSignature", "InvalidSignature"),
    (errors.TooLarge, "EntityTooLarge", "Payload too large"),
    (errors.UserQuotaExceeded, "EntityTooLarge", "Payload too large"),
    (errors.StorageFull, "InsufficientStorage", "Insufficient storage"),
    (errors.UnsupportedType, "InvalidMimeType", "invalid_mime_type"),
    (TooManyRequests, "SlowDown", "too_many_requests"),
    (Unauthorized, "InvalidJWT", "Unauthorized"),
    (Forbidden, "AccessDenied", "Unauthorized"),
]


def storage_error(status: int, code: str, error: str, message: str,
                  headers: dict[str, str] | None = None) -> Response:
    body = {"statusCode": str(status), "code": code, "error": error, "message": message}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers=headers)


async def _app_error(request: Request, exc: AppError) -> Response:
    code, error = next(((c, e) for kind, c, e in _CODES if isinstance(exc, kind)),
                       (type(exc).__name__, exc.title))
    if exc.status == 503:
        code, error = "SlowDown", "Service unavailable"
    return storage_error(exc.status, code, error, exc.detail, exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    problems = validation_errors(exc)
    message = "; ".join(f"{p['field']} {p['message']}" for p in problems) or "Invalid input"
    return storage_error(400, "InvalidRequest", "Invalid Input", message)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    detail = exc.detail or "Request failed"
    code = {404: "NoSuchKey", 405: "InvalidRequest", 413: "EntityTooLarge"}.get(
        exc.status_code, "InvalidRequest")
    return storage_error(exc.status_code, code, detail, detail, dict(exc.headers or {}))


def install(app: FastAPI) -> None:
    ours: dict[type[Exception], Handler] = {
        AppError: _app_error, RequestValidationError: _validation_error,
        StarletteHTTPException: _http_error,
    }
    for exc_class, handler in ours.items():
        previous: Any = app.exception_handlers[exc_class]

        async def dispatch(request: Request, exc: Any, handler: Handler = handler,
                           previous: Any = previous) -> Response:
            if request.url.path.startswith(PREFIX + "/"):
                return await handler(request, exc)
            return await previous(request, exc)

        app.add_exception_handler(exc_class, dispatch)
