"""Public pages: the landing page, the tutor directory (server-rendered, indexable),
`sitemap.xml`, `robots.txt`, the web manifest, the service worker and its offline page.

Everything here is `PUBLIC`; signed-in viewers see slot times in their own zone.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from xml.sax.saxutils import escape

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from tutorapp.auth.deps import PUBLIC, OptionalPrincipal
from tutorapp.core import zones
from tutorapp.core.db import ReadSessionDep
from tutorapp.core.deps import clock
from tutorapp.core.errors import AppError
from tutorapp.core.fields import Text, browse_day
from tutorapp.core.pages import render
from tutorapp.core.templating import STATIC_DIR
from tutorapp.reviews import service as reviews
from tutorapp.scheduling import availability, search
from tutorapp.tutors import service as tutors
from tutorapp.tutors.models import Level, TutorProfile

router = APIRouter(include_in_schema=False)

SLOT_DAYS = 7


def viewer_zone(principal: Any, tz: str | None) -> str:
    """The zone slot times are shown in: the query's, else the user's, else UTC."""
    for candidate in (tz, principal.user.time_zone if principal else None):
        if candidate and zones.is_valid_zone(candidate):
            return candidate
    return "UTC"


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


# --- landing ------------------------------------------------------------------------


@router.get("/", dependencies=[PUBLIC])
async def landing(request: Request, session: ReadSessionDep) -> Response:
    settings = request.app.state.settings
    featured = await tutors.featured(session, limit=settings.featured_tutors)
    subjects_of = await tutors.subjects_of(session, [p.id for p in featured])
    top_subjects = [s for s in await tutors.list_subjects(session) if "/" not in s.path]
    return render(request, "site/landing.html", featured=featured, subjects_of=subjects_of,
                  subjects=top_subjects, plans=settings.billing_plans)


# --- directory --------------------------------------------------------------------


@router.get("/tutors", dependencies=[PUBLIC])
async def directory(
    request: Request, session: ReadSessionDep,
    q: Annotated[Annotated[str, Text(200)] | None, Query()] = None,
    subject: Annotated[Annotated[str, Text(400)] | None, Query()] = None,
    level: Annotated[Annotated[str, Text(20)] | None, Query()] = None,
    language: Annotated[Annotated[str, Text(16)] | None, Query()] = None,
    sort: Annotated[Annotated[str, Text(16)], Query()] = "relevance",
    cursor: Annotated[Annotated[str, Text(400)] | None, Query()] = None,
) -> Response:
    settings = request.app.state.settings
    filters = {"q": q or "", "subject": subject or "", "level": level or "",
               "language": language or "", "sort": sort}
    error = None
    page = None
    try:
        query = search.Query(
            q=q or None, subject=subject or None,
            level=Level(level) if level and level in Level.__members__ else None,
            language=language or None,
            sort=sort if sort in search.SORTS else "relevance", limit=12, cursor=cursor or None,
        )
        page = await search.search(session, query, settings=settings, now=clock(request),
                                   dialect=request.app.state.database.dialect)
    except AppError as exc:
        error = exc.detail
    languages = await tutors.list_languages(session)
    context: dict[str, Any] = {"page": page, "filters": filters, "error": error,
               "language_names": {lang.code: lang.name for lang in languages}}
    if is_htmx(request):
        return render(request, "site/_results.html", **context)
    return render(request, "site/directory.html",
                  subjects=await tutors.list_subjects(session), languages=languages,
                  levels=[level.value for level in Level], sorts=search.SORTS, **context)


async def slot_days(request: Request, session: ReadSessionDep, profile: TutorProfile,
                     zone: str, start_day: date, length: int) -> list[tuple[date, list[datetime]]]:
    tz = zones.zone(zone)
    start = datetime.combine(start_day, time(), tz)
    end = start + timedelta(days=SLOT_DAYS)
    starts = await availability.slots(session, profile, start, end, length=length,
                                      settings=request.app.state.settings, now=clock(request))
    days: dict[date, list[datetime]] = {start_day + timedelta(days=i): [] for i in range(SLOT_DAYS)}
    for moment in starts:
        local = moment.astimezone(tz)
        days.setdefault(local.date(), []).append(local)
    return sorted(days.items())


async def _slot_context(request: Request, session: ReadSessionDep, profile: TutorProfile,
                        principal: Any, tz: str | None, week: str | None,
                        length: int | None) -> dict[str, Any]:
    zone = viewer_zone(principal, tz)
    today = datetime.now(zones.zone(zone)).date()
    start_day = max(browse_day(week, today), today)
    lengths = sorted(profile.lesson_lengths)
    chosen = length if length in lengths else lengths[0]
    return {
        "profile": profile, "zone": zone, "length": chosen, "lengths": lengths,
        "days": await slot_days(request, session, profile, zone, start_day, chosen),
        "week": start_day, "prev_week": (start_day - timedelta(days=SLOT_DAYS)
                                         if start_day > today else None),
        "next_week": start_day + timedelta(days=SLOT_DAYS),
        "tz_given": bool(tz) or principal is not None,
    }


@router.get("/tutors/{tutor_id}")
async def tutor_page(request: Request, tutor_id: uuid.UUID, session: ReadSessionDep,
                     principal: OptionalPrincipal, tz: str | None = None,
                     week: str | None = None, length: int | None = None) -> Response:
    profile = await tutors.get_profile(session, tutor_id,
                                       viewer=principal.user if principal else None)
    shown = await tutors.present(session, profile)
    page, _ = await reviews.list_for_tutor(session, profile.id, limit=10, cursor=None)
    slots = await _slot_context(request, session, profile, principal, tz, week, length)
    return render(request, "site/tutor.html", tutor=shown, reviews=page, **slots)


@router.get("/tutors/{tutor_id}/slots")
async def tutor_slots(request: Request, tutor_id: uuid.UUID, session: ReadSessionDep,
                      principal: OptionalPrincipal, tz: str | None = None,
                      week: str | None = None, length: int | None = None) -> Response:
    """The slot picker alone (HTMX swaps it in when the week, zone or length changes)."""
    profile = await tutors.get_profile(session, tutor_id,
                                       viewer=principal.user if principal else None)
    slots = await _slot_context(request, session, profile, principal, tz, week, length)
    return render(request, "site/_slots.html", **slots)


# --- SEO files ------------------------------------------------------------------------


@router.get("/robots.txt", dependencies=[PUBLIC])
async def robots(request: Request) -> PlainTextResponse:
    base = request.app.state.settings.public_url.rstrip("/")
    return PlainTextResponse(
        "User-agent: *\nAllow: /\nDisallow: /app\nDisallow: /admin\nDisallow: /api\n"
        f"Disallow: /dev\n\nSitemap: {base}/sitemap.xml\n"
    )


@router.get("/sitemap.xml", dependencies=[PUBLIC])
async def sitemap(request: Request, session: ReadSessionDep) -> Response:
    base = request.app.state.settings.public_url.rstrip("/")
    rows = await tutors.public_profile_dates(session, limit=50_000 - 2)
    urls = [f"<url><loc>{escape(base)}/</loc></url>",
            f"<url><loc>{escape(base)}/tutors</loc></url>"]
    for profile_id, updated in rows:
        lastmod = f"<lastmod>{updated.date().isoformat()}</lastmod>" if updated else ""
        urls.append(f"<url><loc>{escape(base)}/tutors/{profile_id}</loc>{lastmod}</url>")
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
            + "\n".join(urls) + "\n</urlset>\n")
    return Response(body, media_type="application/xml")


# --- installable PWA --------------------------------------------------------------------


@router.get("/manifest.webmanifest", dependencies=[PUBLIC])
async def manifest() -> JSONResponse:
    icons = [
        {"src": "/static/img/icon-192.png", "sizes": "192x192", "type": "image/png"},
        {"src": "/static/img/icon-512.png", "sizes": "512x512", "type": "image/png"},
        {"src": "/static/img/icon-maskable-512.png", "sizes": "512x512", "type": "image/png",
         "purpose": "maskable"},
        {"src": "/static/img/icon.svg", "sizes": "any", "type": "image/svg+xml"},
    ]
    return JSONResponse({
        "name": "TutorApp", "short_name": "TutorApp", "id": "/app", "start_url": "/app",
        "scope": "/", "display": "standalone", "background_color": "#ffffff",
        "theme_color": "#1f5fbf", "description": "Find a tutor, book and manage your lessons.",
        "icons": icons,
    }, media_type="application/manifest+json")


SW_FILE = Path(STATIC_DIR) / "js" / "sw.js"


@router.get("/sw.js", dependencies=[PUBLIC])
async def service_worker() -> FileResponse:
    # Served from the root so its scope is the whole site; never cached by HTTP so a
    # new version is picked up on the next visit.
    return FileResponse(SW_FILE, media_type="application/javascript", headers={
        "Service-Worker-Allowed": "/", "Cache-Control": "no-cache"})


@router.get("/offline", dependencies=[PUBLIC])
async def offline(request: Request) -> Response:
    return render(request, "site/offline.html")
