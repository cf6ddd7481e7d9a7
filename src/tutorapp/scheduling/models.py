"""Availability, bookings, recurring series, idempotency keys and calendar feeds."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tutorapp.core.models import Entity, enum_column
from tutorapp.scheduling.timeslots import OverrideKind


class BookingStatus(enum.StrEnum):
    held = "held"  # waiting for payment until hold_expires_at
    requested = "requested"  # waiting for the tutor's approval
    confirmed = "confirmed"
    completed = "completed"
    cancelled = "cancelled"
    no_show = "no_show"
    expired = "expired"  # a hold that was not paid in time


# Statuses whose interval is taken: the exclusion constraint's WHERE clause.
ACTIVE_STATUSES = (
    BookingStatus.held, BookingStatus.requested, BookingStatus.confirmed,
    BookingStatus.completed, BookingStatus.no_show,
)
ACTIVE_SQL = "status IN ('held', 'requested', 'confirmed', 'completed', 'no_show')"


class AvailabilityRule(Entity):
    __tablename__ = "availability_rules"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        CheckConstraint("start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute",
                        name="minutes"),
    )

    tutor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tutor_profiles.id", ondelete="CASCADE"), index=True
    )
    weekday: Mapped[int] = mapped_column(SmallInteger)
    start_minute: Mapped[int] = mapped_column(SmallInteger)
    end_minute: Mapped[int] = mapped_column(SmallInteger)


class AvailabilityOverride(Entity):
    __tablename__ = "availability_overrides"
    __table_args__ = (Index("ix_availability_overrides_tutor_day", "tutor_id", "day"),)

    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tutor_profiles.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    kind: Mapped[OverrideKind] = mapped_column(enum_column(OverrideKind, 8))
    start_minute: Mapped[int | None] = mapped_column(SmallInteger)
    end_minute: Mapped[int | None] = mapped_column(SmallInteger)


class Series(Entity):
    """A weekly series: N lessons at the same wall-clock time in `time_zone`."""

    __tablename__ = "booking_series"

    tutor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tutor_profiles.id", ondelete="CASCADE"), index=True
    )
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    booked_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    time_zone: Mapped[str] = mapped_column(String(64))
    local_time: Mapped[str] = mapped_column(String(5))  # "HH:MM"
    length: Mapped[int] = mapped_column(SmallInteger)
    count: Mapped[int] = mapped_column(SmallInteger)


class Booking(Entity):
    """One lesson. [start_at, blocked_until) — the lesson plus the tutor's buffer — never
    overlaps another active booking of the same tutor: an exclusion constraint on
    PostgreSQL (migration 0004), the serialized write transaction on SQLite."""

    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("start_at < end_at AND end_at <= blocked_until", name="interval"),
        Index("ix_bookings_tutor_start", "tutor_id", "start_at"),
        Index("ix_bookings_student_start", "student_id", "start_at"),
        Index("ix_bookings_hold_expires_at", "hold_expires_at"),
        Index("ix_bookings_series_id", "series_id"),
    )

    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tutor_profiles.id", ondelete="CASCADE"))
    tutor_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                                     index=True)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    booked_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    series_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("booking_series.id", ondelete="SET NULL")
    )
    series_index: Mapped[int | None] = mapped_column(SmallInteger)
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    blocked_until: Mapped[datetime]
    length: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[BookingStatus] = mapped_column(enum_column(BookingStatus, 16))
    hold_expires_at: Mapped[datetime | None]
    # Unused since a lesson costs one credit (docs/billing.md): what a lesson was worth
    # is its credit's value, booked with its earning. Kept for rolling deploys, dropped
    # by a later release's migration.
    price_minor: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="XXX")
    # lifecycle details
    cancelled_at: Mapped[datetime | None]
    cancelled_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    refund: Mapped[bool | None]  # on cancellation: refunded (True) or forfeited (False)
    rescheduled_from_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("bookings.id", ondelete="SET NULL")
    )
    tutor_notes: Mapped[str | None] = mapped_column(Text)
    sequence: Mapped[int] = mapped_column(Integer, default=0)  # ICS SEQUENCE


class IdempotencyKey(Entity):
    """The first answer to a request with an `Idempotency-Key`, replayed on retries."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    response: Mapped[dict[str, Any] | None]


class CalendarFeed(Entity):
    """A per-user secret ICS feed; only the token's hash is stored."""

    __tablename__ = "calendar_feeds"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                               unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
