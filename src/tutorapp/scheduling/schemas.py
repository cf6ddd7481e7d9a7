"""Request and response bodies of availability, slots, bookings, series and calendars."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tutorapp.core.fields import Day, LessonLength, Moment, Text, TimeZone
from tutorapp.scheduling.models import BookingStatus
from tutorapp.scheduling.timeslots import OverrideKind

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleIn(Strict):
    weekday: int = Field(ge=0, le=6, description="0 = Monday")
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM, tutor's zone")
    end: str = Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")

    @model_validator(mode="after")
    def _ordered(self) -> RuleIn:
        if minutes(self.end) <= minutes(self.start):
            raise ValueError("end must be after start")
        return self


class OverrideIn(Strict):
    day: Day
    kind: OverrideKind
    start: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str | None = Field(default=None, pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")

    @model_validator(mode="after")
    def _hours(self) -> OverrideIn:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither (a whole day off)")
        if self.start is None and self.kind == OverrideKind.extra:
            raise ValueError("extra hours need start and end")
        if self.start is not None and minutes(self.end or "") <= minutes(self.start):
            raise ValueError("end must be after start")
        return self


def minutes(hhmm: str) -> int:
    hours, mins = hhmm.split(":")
    return int(hours) * 60 + int(mins)


def hhmm(value: int) -> str:
    return f"{value // 60:02d}:{value % 60:02d}"


class AvailabilityIn(Strict):
    rules: list[RuleIn] = Field(max_length=100)
    overrides: list[OverrideIn] = Field(default_factory=list, max_length=500)

    @field_validator("rules")
    @classmethod
    def _rules_apart(cls, rules: list[RuleIn]) -> list[RuleIn]:
        """Ranges of one weekday must not overlap (a tutor meant something else)."""
        ranges = sorted((r.weekday, minutes(r.start), minutes(r.end)) for r in rules)
        for (day, start, end), (next_day, next_start, next_end) in pairwise(ranges):
            if day == next_day and next_start < end:
                raise ValueError(f"{WEEKDAY_NAMES[day]}: {hhmm(start)}-{hhmm(end)} and "
                                 f"{hhmm(next_start)}-{hhmm(next_end)} overlap")
        return rules

    @field_validator("overrides")
    @classmethod
    def _overrides_apart(cls, overrides: list[OverrideIn]) -> list[OverrideIn]:
        """One date: either a whole day off, or hour ranges that do not overlap."""
        by_day: dict[date, list[OverrideIn]] = {}
        for o in overrides:
            by_day.setdefault(o.day, []).append(o)
        for day, items in by_day.items():
            if len(items) > 1 and any(o.start is None for o in items):
                raise ValueError(f"{day.isoformat()}: a whole day off cannot have other hours")
            ranges = sorted((minutes(o.start), minutes(o.end)) for o in items
                            if o.start is not None and o.end is not None)
            for (start, end), (next_start, next_end) in pairwise(ranges):
                if next_start < end:
                    raise ValueError(f"{day.isoformat()}: {hhmm(start)}-{hhmm(end)} and "
                                     f"{hhmm(next_start)}-{hhmm(next_end)} overlap")
        return overrides


class AvailabilityOut(BaseModel):
    time_zone: str
    rules: list[RuleIn]
    overrides: list[OverrideIn]


class SlotsOut(BaseModel):
    tutor_id: uuid.UUID
    tz: str
    length: int
    slots: list[datetime]


class BookingIn(Strict):
    tutor_id: uuid.UUID
    start: Moment
    length: LessonLength
    student_id: uuid.UUID | None = Field(default=None, description="a parent books for a child")


class SeriesIn(BookingIn):
    count: int = Field(ge=2, le=52)
    mode: Literal["all_or_nothing", "available"] = "all_or_nothing"
    time_zone: TimeZone | None = Field(
        default=None, description="zone whose wall-clock time is kept; default: the caller's"
    )


class BookingOut(BaseModel):
    id: uuid.UUID
    tutor_id: uuid.UUID
    student_id: uuid.UUID
    booked_by_id: uuid.UUID
    start: datetime
    end: datetime
    length: int
    status: BookingStatus
    hold_expires_at: datetime | None
    credits: int = Field(description="lesson credits the lesson costs: one, with any tutor")
    series_id: uuid.UUID | None
    series_index: int | None
    cancelled_at: datetime | None
    refund: bool | None
    tutor_notes: str | None
    sequence: int
    meeting_link: str | None = None


class Conflict(BaseModel):
    index: int
    date: date
    start: datetime | None
    reason: str


class SeriesOut(BaseModel):
    id: uuid.UUID
    bookings: list[BookingOut]
    conflicts: list[Conflict]


class CancelIn(Strict):
    reason: Annotated[str, Text(500, multiline=True)] | None = None
    scope: Literal["this", "following"] = "this"


class RescheduleIn(Strict):
    start: Moment


class NotesIn(Strict):
    notes: Annotated[str, Text(20_000, multiline=True)]


class FeedOut(BaseModel):
    url: str
