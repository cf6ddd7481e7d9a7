"""`create_app(settings)`: the one place the web application is assembled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from tutorapp import __version__, openapi
from tutorapp.accounts import api as accounts_api
from tutorapp.accounts import pages as accounts_pages
from tutorapp.admin import pages as admin_pages
from tutorapp.billing import api as billing_api
from tutorapp.billing import pages as billing_pages
from tutorapp.config import Settings, get_settings
from tutorapp.core import pages as core_pages
from tutorapp.core.db import Database, install_database_errors
from tutorapp.core.errors import install_error_handlers
from tutorapp.core.logging import configure_logging
from tutorapp.core.middleware import (
    BodySizeLimitMiddleware,
    HTTPSRedirectMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from tutorapp.core.ratelimit import RateLimiter
from tutorapp.core.security import configure_password_hashing
from tutorapp.core.templating import STATIC_DIR, create_templates
from tutorapp.files import LARGE_BODY_PREFIXES
from tutorapp.files import api as files_api
from tutorapp.files import install as install_files
from tutorapp.files import pages as files_pages
from tutorapp.gotrue import install as install_gotrue
from tutorapp.jobs import api as jobs_api
from tutorapp.jobs import pages as jobs_pages
from tutorapp.jobs import worker as jobs_worker
from tutorapp.notifications import api as notifications_api
from tutorapp.notifications import pages as notifications_pages
from tutorapp.ops import api as ops_api
from tutorapp.ops import pages as ops_pages
from tutorapp.realtime import api as realtime_api
from tutorapp.realtime import install as install_realtime
from tutorapp.realtime.hub import Hub
from tutorapp.reviews import api as reviews_api
from tutorapp.scheduling import api as scheduling_api
from tutorapp.site import api as site_api
from tutorapp.site import app_pages
from tutorapp.site import pages as site_pages
from tutorapp.tutors import api as tutors_api
from tutorapp.tutors import pages as tutors_pages
from tutorapp.webhooks import api as webhooks_api


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.database = Database(settings)
        app.state.rate_limiter = RateLimiter.from_settings(settings)
        app.state.realtime = Hub(settings, app.state.database)
        await app.state.realtime.start()
        await jobs_worker.start_embedded(settings)
        try:
            yield
        finally:
            await jobs_worker.stop_embedded()
            await app.state.realtime.stop()
            await app.state.database.dispose()

    app = FastAPI(
        title="TutorApp API",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        debug=False,  # tracebacks are rendered by our middleware, only in dev
    )
    app.state.settings = settings
    app.state.templates = create_templates(settings)
    install_error_handlers(app)
    install_database_errors(app)
    configure_password_hashing(settings.password_hash_threads,
                               test_profile=settings.profile == "test")

    routers = [
        ops_api.health, ops_api.router, tutors_api.router, scheduling_api.search_router,
        scheduling_api.router,
        reviews_api.router, *accounts_api.routers, ops_pages.router, site_api.router,
        site_pages.router, app_pages.router, tutors_pages.router, admin_pages.router,
        *billing_api.routers, notifications_api.router, jobs_api.router,
        jobs_pages.router, accounts_pages.router, webhooks_api.router, files_api.router,
        files_pages.router, realtime_api.router,
    ]
    if settings.payments_provider == "sandbox":  # refused in staging/prod
        routers.append(billing_pages.router)  # its checkout page and customer portal
    if settings.profile in ("dev", "test") and settings.email_provider == "outbox":
        routers.append(notifications_pages.router)  # the dev mailbox
    for router in routers:
        app.include_router(router)
    install_files(app, settings)  # /storage/v1: Supabase Storage's API, and the backend
    install_realtime(app)  # /realtime/v1/websocket
    install_gotrue(app)  # /auth/v1: Supabase Auth's API, after the error handlers above
    openapi.install(app, routers)  # every error status of each operation, as problem+json
    app.state.templates.context_processors.append(core_pages.template_context)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # Added last = runs first. Order, outermost first: request context, trusted
    # host, HTTPS redirect, security headers, CORS, body limit.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes,
                       exempt_prefixes=LARGE_BODY_PREFIXES)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            # credentials are never combined with a wildcard origin
            allow_credentials="*" not in settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-CSRF-Token",
                           "X-Request-ID",
                           # what Supabase's clients send to /auth/v1
                           "apikey", "X-Client-Info", "X-Supabase-Api-Version",
                           # ... and to /storage/v1 (TUS resumable uploads among them)
                           "x-upsert", "Cache-Control", "Tus-Resumable", "Upload-Length",
                           "Upload-Offset", "Upload-Metadata", "Range", "If-None-Match"],
            expose_headers=["X-Request-ID", "Retry-After", "X-Supabase-Api-Version",
                            "x-sb-error-code", "ETag", "Content-Range", "Content-Disposition",
                            "Location", "Tus-Resumable", "Upload-Offset", "Upload-Length"],
        )
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    if settings.https_only:
        app.add_middleware(HTTPSRedirectMiddleware)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(RequestContextMiddleware, settings=settings)
    return app
