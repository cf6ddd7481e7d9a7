"""Public pages that belong to no product domain: the landing page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tutorapp.accounts.deps import PUBLIC

router = APIRouter(include_in_schema=False, dependencies=[PUBLIC])


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(request, "home.html", {})
