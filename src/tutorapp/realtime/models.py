"""The realtime event log, used by the PostgreSQL broker (LISTEN/NOTIFY without Redis):
every fanned-out message is a row; domain events carry their topic's sequence number
and are replayed from here. Rows past the replay bounds are pruned on write."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tutorapp.core.models import Base, UTCDateTime
from tutorapp.core.time import utcnow


class RealtimeEvent(Base):
    __tablename__ = "realtime_events"

    # internal order of the log, never shown to clients
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(255))
    seq: Mapped[int | None] = mapped_column(BigInteger)  # None: not replayed (broadcasts)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_realtime_events_topic_seq", "topic", "seq", unique=True),)
