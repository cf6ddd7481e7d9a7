"""The webhook inbox table."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tutorapp.core.models import Entity, enum_column


class InboxStatus(enum.StrEnum):
    pending = "pending"  # waiting for its (next) attempt at `next_attempt_at`
    processed = "processed"  # applied (or deliberately ignored): `outcome` says how
    dead = "dead"  # attempts ran out, or it can never be applied: an admin decides


class InboxEvent(Entity):
    """One verified delivery, stored once per (provider, dedupe key)."""

    __tablename__ = "webhook_inbox"
    __table_args__ = (
        UniqueConstraint("provider", "dedupe_key"),
        Index("ix_webhook_inbox_due", "status", "next_attempt_at"),
    )

    provider: Mapped[str] = mapped_column(String(24))  # "lemonsqueezy" | "resend"
    dedupe_key: Mapped[str] = mapped_column(String(300))
    event_name: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    status: Mapped[InboxStatus] = mapped_column(enum_column(InboxStatus, 16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(1000))
    processed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(200))
