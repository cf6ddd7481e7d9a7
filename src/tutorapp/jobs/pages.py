"""Admin page of recent job runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from tutorapp.auth.deps import AdminPrincipal
from tutorapp.core.db import ReadSessionDep
from tutorapp.jobs import service
from tutorapp.metering import service as usage

router = APIRouter(include_in_schema=False)


@router.get("/admin/jobs", response_class=HTMLResponse)
async def jobs_page(
    request: Request, principal: AdminPrincipal, session: ReadSessionDep,
    status: Annotated[str | None, Query(pattern="^[A-Za-z_]+$")] = None,
) -> HTMLResponse:
    runs = await service.list_runs(limit=100, status=status)
    report = await usage.report(session, request.app.state.settings)
    return request.app.state.templates.TemplateResponse(
        request, "admin/jobs.html", {"runs": runs, "usage": report, "status": status}
    )
