"""Jinja2 templates shared by every domain's pages and emails."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi.templating import Jinja2Templates
from starlette.requests import Request

from tutorapp import __version__
from tutorapp.config import Settings
from tutorapp.core.money import display

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def _page_context(request: Request) -> dict[str, object]:
    return {
        "csp_nonce": getattr(request.state, "csp_nonce", ""),
        "settings": request.app.state.settings,
        "version": __version__,
    }


def money(amount_minor: int, currency: str) -> str:
    """Integer minor units as people read them, with the currency's own decimals:
    `2600, "EUR"` -> `€26.00`, `1500, "JPY"` -> `¥1,500`, `1234, "KWD"` -> `KWD1.234`."""
    return display(int(amount_minor), currency)


def in_zone(moment: datetime | None, zone: str, fmt: str = "%a %d %b %Y, %H:%M") -> str:
    """A UTC instant shown as wall time in an IANA zone."""
    if moment is None:
        return ""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz).strftime(fmt)


def create_templates(settings: Settings) -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES_DIR, context_processors=[_page_context])
    templates.env.globals["site_name"] = "TutorApp"
    templates.env.filters["money"] = money
    templates.env.filters["in_zone"] = in_zone
    return templates
