"""Health probes and service metadata."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tutorapp import __version__
from tutorapp.auth.deps import PUBLIC
from tutorapp.core.db import DatabaseDep
from tutorapp.core.errors import PROBLEM_JSON, problem_body
from tutorapp.integrations import capabilities
from tutorapp.ops.schemas import Meta, Readiness
from tutorapp.ops.service import readiness

health = APIRouter(prefix="/health", tags=["health"], dependencies=[PUBLIC])
router = APIRouter(prefix="/api/v1", tags=["meta"], dependencies=[PUBLIC])


@health.get("/live")
async def live() -> dict[str, str]:
    """The process answers; nothing else is checked."""
    return {"status": "ok"}


@health.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(database: DatabaseDep) -> JSONResponse:
    """The database is reachable and its schema is at the code's migration head."""
    checks = [asdict(c) for c in await readiness(database)]
    failing = [c["component"] for c in checks if not c["ok"]]
    if failing:
        body = problem_body(
            503, type="/problems/not-ready", title="Not ready",
            detail=f"Failing: {', '.join(failing)}.", checks=checks,
        )
        return JSONResponse(body, status_code=503, media_type=PROBLEM_JSON)
    return JSONResponse({"status": "ok", "checks": checks})


@router.get("/meta", response_model=Meta)
async def meta(request: Request) -> Meta:
    settings = request.app.state.settings
    return Meta(
        name="TutorApp", version=__version__, profile=settings.profile,
        capabilities=capabilities(settings),
    )
