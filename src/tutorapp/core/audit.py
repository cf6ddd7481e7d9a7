"""The audit trail: every state change that matters writes one row here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Index, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from tutorapp.core.models import Entity


class AuditEvent(Entity):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_subject", "subject_type", "subject_id"),
        Index("ix_audit_events_created_at", "created_at"),
    )

    action: Mapped[str]  # domain.verb, e.g. "booking.cancelled", "user.role_changed"
    actor_id: Mapped[uuid.UUID | None]
    subject_type: Mapped[str]
    subject_id: Mapped[str]
    ip: Mapped[str | None]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


async def record(
    session: AsyncSession,
    action: str,
    *,
    subject_type: str,
    subject_id: object,
    actor_id: uuid.UUID | None = None,
    ip: str | None = None,
    **data: Any,
) -> AuditEvent:
    event = AuditEvent(
        action=action, actor_id=actor_id, subject_type=subject_type,
        subject_id=str(subject_id), ip=ip, data=data,
    )
    session.add(event)
    await session.flush()
    return event


async def listing(session: AsyncSession, *, action_prefix: str = "", limit: int,
                  offset: int = 0) -> Sequence[AuditEvent]:
    """The newest audit rows, optionally those whose action starts with `action_prefix`."""
    query = select(AuditEvent)
    if action_prefix:
        query = query.where(AuditEvent.action.startswith(action_prefix, autoescape=True))
    return (await session.scalars(
        query.order_by(AuditEvent.created_at.desc(), AuditEvent.id).limit(limit).offset(offset)
    )).all()
