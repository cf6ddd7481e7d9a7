from __future__ import annotations

from pydantic import BaseModel


class ComponentStatus(BaseModel):
    component: str
    ok: bool
    detail: str


class Readiness(BaseModel):
    status: str
    checks: list[ComponentStatus]


class Meta(BaseModel):
    name: str
    version: str
    profile: str
    capabilities: dict[str, str]
