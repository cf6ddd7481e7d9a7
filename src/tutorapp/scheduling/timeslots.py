"""Pure time logic: weekly rules in a tutor's zone -> UTC intervals -> free slot starts.

No database here; everything is unit-tested directly (tests/scheduling/test_timeslots.py).

The rules, in one place (docs/api-marketplace.md repeats them):

* A window such as "Monday 09:00-12:00" in the tutor's zone covers every instant
  whose local wall-clock reading lies in [09:00, 12:00) on that date. It is
  converted to UTC piece by piece between the zone's offset transitions, so:
  - spring forward: wall-clock times inside the gap do not exist, so they are not
    covered (02:00-04:00 on the New York spring day is one real hour, 03:00-04:00 EDT);
  - fall back: wall-clock times of the repeated hour happen twice, and both
    occurrences are covered (01:00-02:00 on the New York autumn day is two real
    hours: 01:00-02:00 EDT and 01:00-02:00 EST).
* Adjacent windows (Monday 20:00-24:00 and Tuesday 00:00-02:00) merge, so a lesson
  may cross midnight.
* A slot start is an instant whose wall-clock minute in the tutor's zone is a
  multiple of the step (e.g. :00 and :30), and the whole lesson (its length in real
  elapsed minutes) fits inside free time. Each slot is one UTC instant: it is never
  offered twice, and shown in the viewer's zone it reads whatever that zone says.
* Recurring series keep the same wall-clock time in the series' zone; see
  `weekly_occurrences` for the nonexistent / ambiguous rule.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Interval = tuple[datetime, datetime]  # [start, end) in UTC, aware
MINUTES_PER_DAY = 24 * 60


class OverrideKind(enum.StrEnum):
    off = "off"  # the day (or the given hours) off
    extra = "extra"  # extra hours on top of the weekly rules


@dataclass(frozen=True)
class WeeklyRule:
    weekday: int  # 0 = Monday ... 6 = Sunday (date.weekday())
    start_minute: int  # minutes after local midnight, 0..1439
    end_minute: int  # exclusive, start+1..1440


@dataclass(frozen=True)
class DateOverride:
    day: date
    kind: OverrideKind
    start_minute: int | None = None  # None with kind=off: the whole day
    end_minute: int | None = None


# --- offsets and transitions -------------------------------------------------------


def _offset(tz: ZoneInfo, instant: datetime) -> timedelta:
    return instant.astimezone(tz).utcoffset() or timedelta(0)


def _constant_pieces(tz: ZoneInfo, lo: datetime, hi: datetime) -> list[tuple[datetime, datetime, timedelta]]:
    """Split [lo, hi) (UTC) into pieces with a constant UTC offset in `tz`.

    Transitions are found by probing every hour and bisecting to the second;
    real zones never change offset twice within an hour.
    """
    pieces: list[tuple[datetime, datetime, timedelta]] = []
    start = lo
    current = _offset(tz, lo)
    probe = lo
    step = timedelta(hours=1)
    while probe < hi:
        nxt = min(probe + step, hi)
        offset = _offset(tz, nxt) if nxt < hi else current
        if offset != current:
            a, b = probe, nxt  # offset(a) == current, offset(b) != current
            while b - a > timedelta(seconds=1):
                mid = a + (b - a) / 2
                mid = mid.replace(microsecond=0)
                if mid <= a:
                    break
                if _offset(tz, mid) == current:
                    a = mid
                else:
                    b = mid
            pieces.append((start, b, current))
            start, current = b, _offset(tz, b)
        probe = nxt
    pieces.append((start, hi, current))
    return [p for p in pieces if p[0] < p[1]]


# --- weekly rules -> UTC intervals --------------------------------------------------


def _day_minutes(day: date, rules: Sequence[WeeklyRule], overrides: Sequence[DateOverride]) -> list[tuple[int, int]]:
    """The day's available [start, end) minute ranges in local wall-clock time."""
    todays = [o for o in overrides if o.day == day]
    ranges: list[tuple[int, int]] = []
    if not any(o.kind == OverrideKind.off and o.start_minute is None for o in todays):
        ranges = [(r.start_minute, r.end_minute) for r in rules if r.weekday == day.weekday()]
    ranges += [
        (o.start_minute, o.end_minute) for o in todays
        if o.kind == OverrideKind.extra and o.start_minute is not None and o.end_minute is not None
    ]
    ranges = _merge_minutes(ranges)
    for o in todays:
        if o.kind == OverrideKind.off and o.start_minute is not None and o.end_minute is not None:
            ranges = _subtract_minutes(ranges, (o.start_minute, o.end_minute))
    return ranges


def _merge_minutes(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(r for r in ranges if r[0] < r[1]):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _subtract_minutes(ranges: list[tuple[int, int]], cut: tuple[int, int]) -> list[tuple[int, int]]:
    out = []
    for a, b in ranges:
        if cut[1] <= a or cut[0] >= b:
            out.append((a, b))
            continue
        if a < cut[0]:
            out.append((a, cut[0]))
        if cut[1] < b:
            out.append((cut[1], b))
    return out


def availability(
    rules: Sequence[WeeklyRule],
    overrides: Sequence[DateOverride],
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
) -> list[Interval]:
    """Available time within [start, end) as merged UTC intervals."""
    if end <= start:
        return []
    first = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    # Wall-clock windows as naive datetimes: [a, b) of local readings.
    windows: list[tuple[datetime, datetime]] = []
    day = first
    while day <= last:
        midnight = datetime.combine(day, time())
        for first_minute, end_minute in _day_minutes(day, rules, overrides):
            windows.append((midnight + timedelta(minutes=first_minute),
                            midnight + timedelta(minutes=end_minute)))
        day += timedelta(days=1)
    if not windows:
        return []
    windows = _merge_naive(windows)
    lo = windows[0][0].replace(tzinfo=UTC) - timedelta(hours=26)
    hi = windows[-1][1].replace(tzinfo=UTC) + timedelta(hours=26)
    pieces = _constant_pieces(tz, lo, hi)
    intervals: list[Interval] = []
    for a, b in windows:
        for p0, p1, offset in pieces:
            # Within the piece, wall(u) = u + offset: a <= wall(u) < b.
            u0 = max(p0, (a - offset).replace(tzinfo=UTC))
            u1 = min(p1, (b - offset).replace(tzinfo=UTC))
            if u0 < u1:
                intervals.append((u0, u1))
    clipped = [(max(s, start), min(e, end)) for s, e in merge(intervals)]
    return [(s, e) for s, e in clipped if s < e]


def _merge_naive(windows: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for a, b in sorted(windows):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


# --- interval algebra (UTC) ---------------------------------------------------------


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for a, b in sorted(i for i in intervals if i[0] < i[1]):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def subtract(free: Sequence[Interval], busy: Iterable[Interval]) -> list[Interval]:
    result = list(free)
    for cut in merge(busy):
        nxt: list[Interval] = []
        for a, b in result:
            if cut[1] <= a or cut[0] >= b:
                nxt.append((a, b))
                continue
            if a < cut[0]:
                nxt.append((a, cut[0]))
            if cut[1] < b:
                nxt.append((cut[1], b))
        result = nxt
    return result


# --- slots -------------------------------------------------------------------------


def slot_starts(
    free: Sequence[Interval], tz: ZoneInfo, *, length: int, step: int,
    earliest: datetime | None = None, latest: datetime | None = None,
) -> list[datetime]:
    """UTC start instants, aligned to the `step` grid of the tutor's wall clock, where a
    lesson of `length` real minutes fits inside one free interval.

    `earliest`/`latest` bound the start (minimum notice, booking horizon)."""
    duration = timedelta(minutes=length)
    starts: list[datetime] = []
    for a, b in merge(free):
        t = a if earliest is None else max(a, earliest)
        t = t.replace(second=0, microsecond=0) + (timedelta(minutes=1) if t.second or t.microsecond else timedelta(0))
        while t + duration <= b:
            local = t.astimezone(tz)
            misalignment = (local.hour * 60 + local.minute) % step
            if misalignment:
                t += timedelta(minutes=step - misalignment)
                continue
            if latest is not None and t > latest:
                break
            starts.append(t)
            t += timedelta(minutes=step)
    return starts


def fits(free: Sequence[Interval], start: datetime, length: int) -> bool:
    end = start + timedelta(minutes=length)
    return any(a <= start and end <= b for a, b in free)


def on_grid(start: datetime, tz: ZoneInfo, step: int) -> bool:
    local = start.astimezone(tz)
    return local.second == 0 and local.microsecond == 0 and (local.hour * 60 + local.minute) % step == 0


# --- recurring series ---------------------------------------------------------------


@dataclass(frozen=True)
class Occurrence:
    index: int
    local_date: date
    start: datetime | None  # UTC; None when the wall-clock time does not exist that day


def resolve_wall_time(day: date, at: time, tz: ZoneInfo) -> datetime | None:
    """The UTC instant of a wall-clock reading: None in a spring-forward gap, the
    first occurrence (fold=0) when the reading happens twice in the autumn."""
    local = datetime.combine(day, at, tzinfo=tz).replace(fold=0)
    instant = local.astimezone(UTC)
    back = instant.astimezone(tz)
    if (back.date(), back.time().replace(tzinfo=None)) != (day, at):
        return None
    return instant


def weekly_occurrences(first: datetime, tz: ZoneInfo, count: int) -> list[Occurrence]:
    """`count` weekly occurrences at the same wall-clock time in `tz` as `first`."""
    local = first.astimezone(tz)
    at = local.time().replace(tzinfo=None, fold=0)
    return [
        Occurrence(i, local.date() + timedelta(weeks=i),
                   resolve_wall_time(local.date() + timedelta(weeks=i), at, tz))
        for i in range(count)
    ]
