"""Email messages: the transactional outbox every email passes through."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tutorapp.core.models import Entity


class EmailStatus(enum.StrEnum):
    queued = "queued"        # stored with the transaction that caused it
    sending = "sending"      # claimed by one delivery run, handed to the provider next
    sent = "sent"            # handed to the provider (the outbox provider keeps it here)
    failed = "failed"        # the provider refused it for good, or retries ran out
    suppressed = "suppressed"  # the address bounced or complained earlier


class EmailMessage(Entity):
    __tablename__ = "email_messages"
    __table_args__ = (
        Index("ix_email_messages_to_address", "to_address", "created_at"),
        Index("ix_email_messages_status", "status", "send_after"),
    )

    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    template: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[uuid.UUID | None]
    status: Mapped[EmailStatus] = mapped_column(
        Enum(EmailStatus, native_enum=False, length=16,
             values_callable=lambda e: [m.value for m in e]),
        default=EmailStatus.queued,
    )
    # Files to attach, e.g. [{"filename": "lesson.ics", "content_type": "text/calendar",
    # "content": "..."}]; text content only.
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    send_after: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    provider: Mapped[str | None] = mapped_column(String(20))
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The delivery run (DBOS workflow id) that claimed it: only that run sends it.
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None]


class SuppressionReason(enum.StrEnum):
    bounced = "bounced"
    complained = "complained"
    manual = "manual"


class EmailSuppression(Entity):
    """An address we must not mail again (it bounced, or its owner complained)."""

    __tablename__ = "email_suppressions"

    address: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[SuppressionReason] = mapped_column(
        Enum(SuppressionReason, native_enum=False, length=16,
             values_callable=lambda e: [m.value for m in e]),
    )
    source_event_id: Mapped[str | None] = mapped_column(String(200))
