"""Catalogue (subjects, levels, teaching languages) and tutor profiles."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tutorapp.core.models import Entity, JSONDocument, enum_column


def _search_rowid() -> int:
    import secrets

    return secrets.randbits(62) + 1



class Level(enum.StrEnum):
    primary = "primary"
    secondary = "secondary"
    university = "university"
    adult = "adult"


class ProfileStatus(enum.StrEnum):
    draft = "draft"
    submitted = "submitted"
    approved = "approved"
    rejected = "rejected"


class Subject(Entity):
    """A node of the subject tree; `path` is the slugs from the root ("mathematics/algebra"),
    so "a subject and its descendants" is `path = p OR path LIKE 'p/%'`."""

    __tablename__ = "subjects"

    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("subjects.id"), index=True
    )
    path: Mapped[str] = mapped_column(String(400), unique=True)


class Language(Entity):
    __tablename__ = "languages"

    code: Mapped[str] = mapped_column(String(16), unique=True)  # BCP 47, e.g. "en", "pt-BR"
    name: Mapped[str] = mapped_column(String(100))


class TutorProfile(Entity):
    __tablename__ = "tutor_profiles"
    __table_args__ = (
        CheckConstraint("hourly_rate_minor >= 0", name="rate_not_negative"),
        Index("ix_tutor_profiles_status_rating", "status", "rating_avg", "id"),
        Index("ix_tutor_profiles_status_rate", "status", "hourly_rate_minor", "id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    display_name: Mapped[str] = mapped_column(String(100))
    headline: Mapped[str] = mapped_column(String(200), default="")
    bio_markdown: Mapped[str] = mapped_column(Text, default="")
    bio_html: Mapped[str] = mapped_column(Text, default="")
    # Unused since a lesson costs one credit with any tutor (docs/billing.md); kept
    # while older app versions may still run (rolling deploys), dropped by a later
    # release's migration together with their index and check.
    hourly_rate_minor: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    time_zone: Mapped[str] = mapped_column(String(64))
    meeting_link: Mapped[str | None] = mapped_column(String(500))
    photo_ref: Mapped[str | None] = mapped_column(String(300))
    lesson_lengths: Mapped[list[int]] = mapped_column(JSONDocument, default=lambda: [60])
    status: Mapped[ProfileStatus] = mapped_column(enum_column(ProfileStatus, 16), default=ProfileStatus.draft)
    rejection_reason: Mapped[str | None] = mapped_column(String(1000))
    submitted_at: Mapped[datetime | None]
    reviewed_at: Mapped[datetime | None]
    # booking policy
    requires_approval: Mapped[bool] = mapped_column(default=False)
    buffer_minutes: Mapped[int] = mapped_column(Integer, default=0)
    min_notice_minutes: Mapped[int] = mapped_column(Integer, default=0)
    horizon_days: Mapped[int] = mapped_column(Integer, default=60)
    free_cancellation_hours: Mapped[int] = mapped_column(Integer, default=24)
    # kept by the reviews service through `tutors.service.apply_rating`
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    rating_avg: Mapped[float] = mapped_column(Float, default=0.0)
    # headline + bio + subject names: what full-text search indexes (FTS5 / tsvector)
    search_text: Mapped[str] = mapped_column(Text, default="")
    # SQLite: the rowid of this profile's row in the FTS5 table `tutor_search` (a random
    # 62-bit integer, stable across VACUUM unlike the table's own rowid).
    search_rowid: Mapped[int] = mapped_column(BigInteger, unique=True, default=_search_rowid)


class TutorSubject(Entity):
    __tablename__ = "tutor_subjects"
    __table_args__ = (
        UniqueConstraint("tutor_id", "subject_id", "level"),
        Index("ix_tutor_subjects_subject_level", "subject_id", "level", "tutor_id"),
    )

    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tutor_profiles.id", ondelete="CASCADE"))
    subject_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subjects.id"))
    level: Mapped[Level] = mapped_column(enum_column(Level, 16))


class TutorLanguage(Entity):
    __tablename__ = "tutor_languages"
    __table_args__ = (
        UniqueConstraint("tutor_id", "language_id"),
        Index("ix_tutor_languages_language", "language_id", "tutor_id"),
    )

    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tutor_profiles.id", ondelete="CASCADE"))
    language_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("languages.id"))


