"""Pure-ASGI middleware: request context, security headers, HTTPS, body limit."""

from __future__ import annotations

import re
import secrets
import time
import traceback
import uuid

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tutorapp.config import Settings
from tutorapp.core.db import unavailable
from tutorapp.core.errors import render_problem
from tutorapp.core.logging import get_logger

log = get_logger("tutorapp.request")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    """Request id, one access-log line per request, and the last-resort 500.

    The id comes from `X-Request-ID` when the caller sent a sane one, else a new
    UUID; it is bound to the log context and echoed back in the response.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        scope["state"]["csp_nonce"] = secrets.token_urlsafe(16)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            problem = unavailable(exc)
            if problem is not None and not response_started:
                # Raised outside a route (a middleware, a dependency's cleanup): still 503.
                log.warning("dependency unavailable", path=scope["path"],
                            cause=problem.extra["cause"], error=str(exc)[:300])
                response = render_problem(
                    Request(scope), problem.status, headers=problem.headers, type=problem.type,
                    title=problem.title, detail=problem.detail, **problem.extra,
                )
                await response(scope, receive, send_with_id)
                return
            log.exception("unhandled error", path=scope["path"])
            if response_started:
                raise
            request = Request(scope)
            detail = (
                "".join(traceback.format_exception(exc)) if self.settings.show_tracebacks
                else f"An unexpected error occurred. Quote request id {request_id}."
            )
            response = render_problem(request, 500, detail=detail, request_id=request_id)
            await response(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")


class SecurityHeadersMiddleware:
    """Hardening headers on every response; the CSP allows scripts only by nonce,
    and forms to post to us or to send the browser on to the payment provider's
    checkout (a redirect after a form post is checked against form-action too)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hsts = settings.profile in ("staging", "prod")
        self.form_action = " ".join(["'self'", *dict.fromkeys(
            [settings.public_origin, *settings.checkout_origins])])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = scope.get("state", {}).get("csp_nonce", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault(
                    "Content-Security-Policy",
                    "default-src 'self'; "
                    f"script-src 'self' 'nonce-{nonce}'; "
                    "style-src 'self'; img-src 'self' data:; font-src 'self'; "
                    f"connect-src 'self'; form-action {self.form_action}; base-uri 'self'; "
                    "object-src 'none'; frame-ancestors 'none'",
                )
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault(
                    "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"
                )
                if self.hsts:
                    headers.setdefault(
                        "Strict-Transport-Security", "max-age=63072000; includeSubDomains"
                    )
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HTTPSRedirectMiddleware:
    """Behind a trusted proxy (uvicorn's proxy headers set the scheme), send
    plain-HTTP requests to HTTPS. Health probes stay reachable over HTTP."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["scheme"] == "http" and not scope[
            "path"
        ].startswith("/health/"):
            url = Request(scope).url.replace(scheme="https")
            await RedirectResponse(str(url), status_code=308)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodySizeLimitMiddleware:
    """Refuse request bodies over the limit, whether declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt_prefixes: tuple[str, ...] = ()
                 ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Routes that bound their bodies themselves (file uploads, by bucket limits).
        self.exempt_prefixes = exempt_prefixes

    def _too_large(self) -> HTTPException:
        return HTTPException(413, f"The request body exceeds {self.max_bytes} bytes.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            response = render_problem(
                Request(scope), 413, detail=f"The request body exceeds {self.max_bytes} bytes."
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises HTTPException from body reading; the
                    # error handlers render it as a 413 problem.
                    raise self._too_large()
            return message

        await self.app(scope, counting_receive, send)
