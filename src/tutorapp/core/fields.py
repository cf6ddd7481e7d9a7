"""Field types shared by every request schema, query parameter and web form.

One definition per kind of input, so the API and the pages accept exactly the same
values and refuse the rest with the same sentence (a 422 naming the field, never a
500 from the database):

- `Annotated[str, Text(...)]` refuses control characters (PostgreSQL cannot store NUL; the others
  are never meant and break logs, emails and headers). `multiline=True` keeps tab,
  line feed and carriage return for notes, bios and reasons.
- `Moment`, `Day`: dates between 2000-01-01 and 2099-12-31. Anything beyond cannot
  be a lesson (the booking horizon is at most two years) and year 9999 overflows the
  moment a duration is added to it.
- `TimeZone`: a value of the list the forms offer as a choice.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import AfterValidator, AwareDatetime, EmailStr, Field, StringConstraints

# C0 controls, DEL and C1 controls; tab, LF and CR only where text may span lines.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
LINE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
MULTILINE_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"


def _single_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters or line breaks")
    return value


def _multiline(value: str) -> str:
    if _CONTROL_MULTILINE.search(value):
        raise ValueError("must not contain control characters")
    return value


@dataclass(frozen=True)
class Text(annotated_types.GroupedMetadata):
    """A string of at most `max_length` characters without control characters, as
    `Annotated[str, Text(200)]` (pydantic unpacks grouped metadata; mypy sees a str).

    Surrounding whitespace is stripped first, so `min_length=1` refuses "   "."""

    max_length: int
    min_length: int = 0
    multiline: bool = False
    strip: bool = True

    def __iter__(self) -> Iterator[object]:
        yield StringConstraints(strip_whitespace=self.strip, min_length=self.min_length or None,
                                max_length=self.max_length)
        yield AfterValidator(_multiline if self.multiline else _single_line)
        yield Field(json_schema_extra={
            "pattern": MULTILINE_PATTERN if self.multiline else LINE_PATTERN})


Name = Annotated[str, Text(100, min_length=1)]
Token = Annotated[str, Text(200, min_length=1)]
Email = Annotated[EmailStr, Field(max_length=254)]
# The policy (10..128 characters, not a common password) is the service's; the schema
# refuses what no account can have, before it is hashed.
PASSWORD_MAX = 128
Password = Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX)]


def _https(value: str) -> str:
    if not re.fullmatch(r"https://[^\s/]+\S*", value):
        raise ValueError("must be an https:// link, e.g. https://meet.example.com/your-room")
    return value


HttpsUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=500),
    AfterValidator(_single_line), AfterValidator(_https),
    Field(json_schema_extra={"format": "uri", "pattern": r"^https://[^\s/]+\S*$"}),
]


def storable(value: str, max_length: int) -> str:
    """Text from outside that we must keep whatever it holds (a signed webhook): no
    NUL (PostgreSQL refuses it) and cut to its column."""
    return value.replace("\x00", "\ufffd")[:max_length]


def storable_json(value: Any) -> Any:
    """A JSON document PostgreSQL's jsonb accepts: every NUL in keys and strings
    replaced (jsonb refuses \\u0000); numbers, booleans and nulls unchanged."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [storable_json(v) for v in value]
    if isinstance(value, dict):
        return {storable_json(k): storable_json(v) for k, v in value.items()}
    return value


# --- dates -------------------------------------------------------------------------

DAY_MIN, DAY_MAX = date(2000, 1, 1), date(2099, 12, 31)
MOMENT_MIN = datetime(2000, 1, 1, tzinfo=UTC)
MOMENT_MAX = datetime(2100, 1, 1, tzinfo=UTC)
DATE_RANGE = f"between {DAY_MIN.isoformat()} and {DAY_MAX.isoformat()}"


def browse_day(value: str | None, default: date) -> date:
    """A page's `?week=` to browse from: the date, or `default` when it is missing,
    malformed or so far out that a week after it leaves the window."""
    try:
        day = date.fromisoformat(value) if value else default
    except ValueError:
        return default
    return day if DAY_MIN <= day <= DAY_MAX - timedelta(days=31) else default


def _day_in_range(value: date) -> date:
    if not DAY_MIN <= value <= DAY_MAX:
        raise ValueError(f"must be {DATE_RANGE}")
    return value


def _moment_in_range(value: datetime) -> datetime:
    if not MOMENT_MIN <= value < MOMENT_MAX:
        raise ValueError(f"must be {DATE_RANGE}")
    return value


def check_moment(value: datetime) -> datetime:
    """For moments parsed outside a schema (query strings in the tutor's zone):
    ValueError unless aware and within the window."""
    if value.tzinfo is None:
        raise ValueError("needs an offset, e.g. +02:00 or Z")
    return _moment_in_range(value)


def cursor_moment(value: object) -> datetime:
    """A moment read back from a pagination cursor: strictly an aware ISO 8601 string
    within the window (ValueError otherwise), so a crafted cursor is a 422."""
    if not isinstance(value, str):
        raise ValueError("not a moment")
    return check_moment(datetime.fromisoformat(value))


def cursor_float(value: object, *, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a number")
    number = float(value)
    if not lo <= number <= hi:  # also refuses NaN
        raise ValueError("not a number in range")
    return number


Day = Annotated[date, AfterValidator(_day_in_range), Field(description=f"a date {DATE_RANGE}")]
Moment = Annotated[
    AwareDatetime, AfterValidator(_moment_in_range),
    Field(description=f"ISO 8601 with an offset, {DATE_RANGE}"),
]


# --- numbers -----------------------------------------------------------------------

LessonLength = Literal[30, 45, 60, 90]
# For query strings, where a Literal of integers would refuse "60": the tutor's own
# lengths are checked by the route.
LessonMinutes = Annotated[int, Field(ge=15, le=240, description="minutes, e.g. 60")]


# --- choices -----------------------------------------------------------------------


@cache
def time_zones() -> tuple[str, ...]:
    """The IANA zones a form offers: regions and cities, plus UTC."""
    names = {z for z in zoneinfo.available_timezones()
             if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/"))}
    return ("UTC", *sorted(names))


def _known_zone(value: str) -> str:
    if value not in _zone_set():
        raise ValueError("is not a known IANA time zone, e.g. Europe/London")
    return value


@cache
def _zone_set() -> frozenset[str]:
    # Every name zoneinfo knows is accepted (older rows may hold Etc/GMT+5); the
    # forms offer `time_zones()`.
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


TimeZone = Annotated[
    str, Field(max_length=64, examples=["Europe/London"],
               description="an IANA time zone, e.g. Europe/London"),
    AfterValidator(_known_zone),
]

