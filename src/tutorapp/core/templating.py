"""Jinja2 templates shared by every domain's pages and emails."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates
from starlette.requests import Request

from tutorapp import __version__
from tutorapp.config import Settings

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def _page_context(request: Request) -> dict[str, object]:
    return {
        "csp_nonce": getattr(request.state, "csp_nonce", ""),
        "settings": request.app.state.settings,
        "version": __version__,
    }


def create_templates(settings: Settings) -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES_DIR, context_processors=[_page_context])
    templates.env.globals["site_name"] = "TutorApp"
    return templates
