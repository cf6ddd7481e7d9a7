"""`GET /api/v1/mobile/config`: what native clients check at start-up."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from tutorapp.auth.deps import PUBLIC

router = APIRouter(prefix="/api/v1/mobile", tags=["mobile"])


class MobileConfigOut(BaseModel):
    min_supported_version: str = Field(
        description="older apps must update before they can be used (force update)")
    latest_version: str = Field(description="apps older than this may suggest an update")
    api_base: str = Field(description="the base URL of the JSON API")
    web_url: str = Field(description="the public web site")


@router.get("/config", dependencies=[PUBLIC])
async def mobile_config(request: Request) -> MobileConfigOut:
    """Compare the app's own version with these (semantic versions, e.g. `1.4.0`):
    below `min_supported_version`, block and send the user to the store; below
    `latest_version`, offer the update."""
    settings = request.app.state.settings
    base = settings.public_url.rstrip("/")
    return MobileConfigOut(min_supported_version=settings.mobile_min_version,
                           latest_version=settings.mobile_latest_version,
                           api_base=f"{base}/api/v1", web_url=base)
