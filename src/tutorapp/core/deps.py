"""Request dependencies for the process-wide objects every domain's routes use."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from tutorapp.config import Settings
from tutorapp.core.ratelimit import RateLimiter
from tutorapp.core.time import utcnow


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def clock(request: Request) -> datetime:
    """Now; tests pin it with `app.state.clock`."""
    return getattr(request.app.state, "clock", utcnow)()


def limiter_of(request: Request) -> RateLimiter:
    return request.app.state.rate_limiter


SettingsDep = Annotated[Settings, Depends(settings_of)]
LimiterDep = Annotated[RateLimiter, Depends(limiter_of)]
