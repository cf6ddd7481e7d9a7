"""The webhook inbox in the admin API: list events, retry a dead one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from tutorapp.auth.deps import AdminPrincipal
from tutorapp.core.db import SessionDep
from tutorapp.webhooks import service
from tutorapp.webhooks.models import InboxEvent, InboxStatus

router = APIRouter(prefix="/api/v1/admin/webhooks", tags=["admin"])


class InboxEventOut(BaseModel):
    id: uuid.UUID
    provider: str
    event_name: str
    resource: str
    status: Literal["pending", "processed", "dead"]
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    outcome: str | None
    received_at: datetime


def event_out(event: InboxEvent) -> InboxEventOut:
    return InboxEventOut(
        id=event.id, provider=event.provider, event_name=event.event_name,
        resource=f"{event.resource_type}/{event.resource_id}",
        status=event.status.value,
        attempts=event.attempts, next_attempt_at=event.next_attempt_at,
        last_error=event.last_error, outcome=event.outcome, received_at=event.created_at,
    )


@router.get("")
async def list_events(session: SessionDep, _admin: AdminPrincipal,
                      status: Literal["pending", "processed", "dead"] | None = None,
                      failing: bool = False) -> list[InboxEventOut]:
    """Events of every provider, newest first; `failing`: dead or erroring."""
    rows = await service.listing(session, status=InboxStatus(status) if status else None,
                                 failing=failing)
    return [event_out(e) for e in rows]


@router.post("/{event_id}/retry")
async def retry_event(event_id: uuid.UUID, session: SessionDep,
                      caller: AdminPrincipal) -> InboxEventOut:
    """Send a dead (or waiting) event round again with a fresh set of attempts
    (404 unknown, 409 applied already)."""
    return event_out(await service.retry(session, event_id, actor_id=caller.id))
