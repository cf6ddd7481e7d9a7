"""Request and response bodies of the catalogue and tutor profiles."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tutorapp.core.fields import HttpsUrl, LessonLength, Name, Text, TimeZone
from tutorapp.tutors.models import Level, ProfileStatus

LanguageCode = Annotated[str, Field(pattern=r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$", max_length=16,
                                    examples=["en", "pt-BR"])]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubjectIn(Strict):
    name: Name
    slug: str = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=64)
    parent_id: uuid.UUID | None = None


class SubjectOut(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    parent_id: uuid.UUID | None
    path: str


class LanguageIn(Strict):
    code: LanguageCode
    name: Name


class LanguageOut(BaseModel):
    code: str
    name: str


class TutorSubjectIn(Strict):
    subject_id: uuid.UUID
    level: Level


class TutorSubjectOut(BaseModel):
    subject_id: uuid.UUID
    slug: str
    name: str
    path: str
    level: Level


class ProfileIn(Strict):
    display_name: Name | None = None
    headline: Annotated[str, Text(200)] = ""
    bio_markdown: Annotated[str, Text(20_000, multiline=True)] = ""
    subjects: list[TutorSubjectIn] = Field(default_factory=list, max_length=50)
    languages: list[LanguageCode] = Field(default_factory=list, max_length=20)
    time_zone: TimeZone
    meeting_link: HttpsUrl | None = None
    photo_ref: Annotated[str, Text(300)] | None = None
    lesson_lengths: list[LessonLength] = Field(min_length=1, max_length=4)
    requires_approval: bool = False
    buffer_minutes: int | None = Field(default=None, ge=0, le=240)
    min_notice_minutes: int | None = Field(default=None, ge=0, le=60 * 24 * 30)
    horizon_days: int | None = Field(default=None, ge=1, le=730)
    free_cancellation_hours: int | None = Field(default=None, ge=0, le=24 * 30)

    @field_validator("lesson_lengths")
    @classmethod
    def _unique(cls, value: list[int]) -> list[int]:
        return sorted(set(value))


class Rating(BaseModel):
    average: float
    count: int


class ProfileOut(BaseModel):
    id: uuid.UUID
    display_name: str
    headline: str
    bio_html: str
    subjects: list[TutorSubjectOut]
    languages: list[LanguageOut]
    time_zone: str
    photo_ref: str | None
    lesson_lengths: list[int]
    rating: Rating
    requires_approval: bool
    free_cancellation_hours: int


class OwnProfileOut(ProfileOut):
    """What the tutor (and admins) see: the workflow state and private fields too."""

    bio_markdown: str
    meeting_link: str | None
    status: ProfileStatus
    rejection_reason: str | None
    submitted_at: datetime | None
    reviewed_at: datetime | None
    buffer_minutes: int
    min_notice_minutes: int
    horizon_days: int


class RejectIn(Strict):
    reason: Annotated[str, Text(1000, min_length=1, multiline=True)]


class SearchItem(BaseModel):
    id: uuid.UUID
    display_name: str
    headline: str
    rating: Rating
    photo_ref: str | None
    time_zone: str
    subjects: list[TutorSubjectOut]
    languages: list[str]
    next_free_slot: datetime | None = None


class SearchPage(BaseModel):
    items: list[SearchItem]
    next_cursor: str | None
