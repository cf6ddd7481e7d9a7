"""Admin JSON API over job runs and usage."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from tutorapp.auth.deps import AdminPrincipal
from tutorapp.core.db import ReadSessionDep
from tutorapp.core.fields import Text
from tutorapp.jobs import service
from tutorapp.metering import service as usage

router = APIRouter(prefix="/api/v1/admin/jobs", tags=["admin"])


@router.get("")
async def list_runs(
    request: Request, principal: AdminPrincipal, session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: Annotated[str | None, Query(pattern="^[A-Za-z_]+$")] = None,
    function: Annotated[Annotated[str, Text(100)] | None, Query()] = None,
) -> dict[str, Any]:
    """Recent runs, newest first: status, attempts, last error, duration."""
    runs = await service.list_runs(limit=limit, status=status, function=function)
    return {
        "runs": [run.as_dict() for run in runs],
        "usage": await usage.report(session, request.app.state.settings),
    }


@router.get("/{run_id}")
async def show_run(run_id: str, principal: AdminPrincipal) -> dict[str, Any]:
    run, steps = await service.get_run(run_id)
    return run.as_dict() | {"steps": steps}


@router.post("/{run_id}/retry")
async def retry_run(run_id: str, principal: AdminPrincipal) -> dict[str, Any]:
    return (await service.retry_run(run_id)).as_dict()


@router.post("/{run_id}/cancel")
async def cancel_run(run_id: str, principal: AdminPrincipal) -> dict[str, Any]:
    return (await service.cancel_run(run_id)).as_dict()
