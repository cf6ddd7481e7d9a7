"""The pure slot maths: weekly rules in a zone -> UTC intervals -> slot starts."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutorapp.core.zones import zone
from tutorapp.scheduling.timeslots import (
    DateOverride,
    OverrideKind,
    WeeklyRule,
    availability,
    resolve_wall_time,
    slot_starts,
    subtract,
    weekly_occurrences,
)

NY, LONDON, KOLKATA, SYDNEY = (zone(z) for z in (
    "America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Sydney"))
SUNDAY = 6


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def starts(rules, tz, lo, hi, *, length=60, step=30, overrides=()):
    free = availability(rules, list(overrides), tz, lo, hi + timedelta(days=1))
    return [s for s in slot_starts(free, tz, length=length, step=step, earliest=lo) if s < hi]


def local(instants, tz) -> list[str]:
    return [i.astimezone(tz).isoformat() for i in instants]


def test_new_york_spring_gap_is_skipped_not_shifted() -> None:
    rules = [WeeklyRule(SUNDAY, 0, 4 * 60)]  # 00:00-04:00 on 2026-03-08, clocks 02:00 -> 03:00
    assert availability(rules, [], NY, utc(2026, 3, 8), utc(2026, 3, 9)) == [
        (utc(2026, 3, 8, 5), utc(2026, 3, 8, 8))]  # 3 real hours
    assert local(starts(rules, NY, utc(2026, 3, 8), utc(2026, 3, 9)), NY) == [
        "2026-03-08T00:00:00-05:00", "2026-03-08T00:30:00-05:00", "2026-03-08T01:00:00-05:00",
        "2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00",
    ]


def test_new_york_autumn_repeated_hour_is_offered_twice() -> None:
    rules = [WeeklyRule(SUNDAY, 0, 4 * 60)]  # 2026-11-01, clocks 02:00 -> 01:00
    assert availability(rules, [], NY, utc(2026, 11, 1), utc(2026, 11, 2)) == [
        (utc(2026, 11, 1, 4), utc(2026, 11, 1, 9))]  # 5 real hours
    assert local(starts(rules, NY, utc(2026, 11, 1), utc(2026, 11, 2)), NY) == [
        "2026-11-01T00:00:00-04:00", "2026-11-01T00:30:00-04:00", "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:30:00-05:00",
        "2026-11-01T02:00:00-05:00", "2026-11-01T02:30:00-05:00", "2026-11-01T03:00:00-05:00",
    ]


def test_window_ending_inside_the_repeated_hour_covers_both_occurrences() -> None:
    rules = [WeeklyRule(SUNDAY, 0, 90)]  # 00:00-01:30 on the autumn day
    assert availability(rules, [], NY, utc(2026, 11, 1), utc(2026, 11, 2)) == [
        (utc(2026, 11, 1, 4), utc(2026, 11, 1, 5, 30)),  # 00:00-01:30 EDT
        (utc(2026, 11, 1, 6), utc(2026, 11, 1, 6, 30)),  # 01:00-01:30 EST
    ]


def test_london_spring_and_autumn() -> None:
    rules = [WeeklyRule(SUNDAY, 0, 3 * 60)]
    assert local(starts(rules, LONDON, utc(2026, 3, 29), utc(2026, 3, 30)), LONDON) == [
        "2026-03-29T00:00:00+00:00", "2026-03-29T00:30:00+00:00", "2026-03-29T02:00:00+01:00",
    ]
    assert local(starts(rules, LONDON, utc(2026, 10, 24, 22), utc(2026, 10, 26)), LONDON) == [
        "2026-10-25T00:00:00+01:00", "2026-10-25T00:30:00+01:00", "2026-10-25T01:00:00+01:00",
        "2026-10-25T01:30:00+01:00", "2026-10-25T01:00:00+00:00", "2026-10-25T01:30:00+00:00",
        "2026-10-25T02:00:00+00:00",
    ]


def test_half_hour_zone_seen_from_london() -> None:
    rules = [WeeklyRule(0, 9 * 60, 11 * 60)]  # Monday 09:00-11:00 in Kolkata (+05:30)
    got = starts(rules, KOLKATA, utc(2026, 6, 1), utc(2026, 6, 2))
    assert local(got, LONDON) == [
        "2026-06-01T04:30:00+01:00", "2026-06-01T05:00:00+01:00", "2026-06-01T05:30:00+01:00",
    ]
    assert local(got, KOLKATA)[0] == "2026-06-01T09:00:00+05:30"


def test_tutor_in_sydney_student_in_new_york_across_both_changes() -> None:
    """Sydney leaves DST on 2026-04-05; New York enters it on 2026-03-08. A Monday
    18:00 Sydney lesson keeps its Sydney time; the student sees it move twice."""
    rules = [WeeklyRule(0, 18 * 60, 19 * 60)]
    got = starts(rules, SYDNEY, utc(2026, 3, 1), utc(2026, 4, 14))
    assert local(got, SYDNEY) == [f"2026-{d}T18:00:00{o}" for d, o in [
        ("03-02", "+11:00"), ("03-09", "+11:00"), ("03-16", "+11:00"), ("03-23", "+11:00"),
        ("03-30", "+11:00"), ("04-06", "+10:00"), ("04-13", "+10:00")]]
    assert local(got, NY) == [
        "2026-03-02T02:00:00-05:00", "2026-03-09T03:00:00-04:00", "2026-03-16T03:00:00-04:00",
        "2026-03-23T03:00:00-04:00", "2026-03-30T03:00:00-04:00", "2026-04-06T04:00:00-04:00",
        "2026-04-13T04:00:00-04:00",
    ]


def test_overrides_day_off_and_extra_hours() -> None:
    rules = [WeeklyRule(0, 9 * 60, 11 * 60)]
    overrides = [
        DateOverride(date(2026, 6, 1), OverrideKind.off),
        DateOverride(date(2026, 6, 8), OverrideKind.off, 9 * 60, 10 * 60),
        DateOverride(date(2026, 6, 9), OverrideKind.extra, 14 * 60, 15 * 60),
    ]
    got = starts(rules, LONDON, utc(2026, 6, 1), utc(2026, 6, 10), overrides=overrides)
    assert local(got, LONDON) == [
        "2026-06-08T10:00:00+01:00", "2026-06-09T14:00:00+01:00",
    ]


def test_lessons_cross_midnight_between_adjacent_windows() -> None:
    rules = [WeeklyRule(0, 23 * 60, 24 * 60), WeeklyRule(1, 0, 60)]
    assert local(starts(rules, LONDON, utc(2026, 1, 5), utc(2026, 1, 7), length=90), LONDON) == [
        "2026-01-05T23:00:00+00:00", "2026-01-05T23:30:00+00:00"]


def test_busy_time_is_subtracted() -> None:
    free = [(utc(2026, 1, 5, 9), utc(2026, 1, 5, 12))]
    assert subtract(free, [(utc(2026, 1, 5, 10), utc(2026, 1, 5, 10, 30))]) == [
        (utc(2026, 1, 5, 9), utc(2026, 1, 5, 10)), (utc(2026, 1, 5, 10, 30), utc(2026, 1, 5, 12))]


def test_weekly_series_keeps_wall_clock_time() -> None:
    spring = weekly_occurrences(datetime(2026, 3, 1, 1, 30, tzinfo=NY), NY, 2)
    assert [o.start for o in spring] == [utc(2026, 3, 1, 6, 30), utc(2026, 3, 8, 6, 30)]
    # 02:30 does not exist on 2026-03-08 (02:00 -> 03:00): no lesson that week
    gap = weekly_occurrences(datetime(2026, 3, 1, 2, 30, tzinfo=NY), NY, 3)
    assert [o.start for o in gap] == [utc(2026, 3, 1, 7, 30), None, utc(2026, 3, 15, 6, 30)]
    autumn = weekly_occurrences(datetime(2026, 10, 25, 1, 30, tzinfo=NY), NY, 2)
    assert [o.start for o in autumn] == [utc(2026, 10, 25, 5, 30), utc(2026, 11, 1, 5, 30)]
    assert resolve_wall_time(date(2026, 11, 1), time(1, 30), NY) == utc(2026, 11, 1, 5, 30)


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("Mars/Olympus")
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("../etc/passwd")


ZONES = ["America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Sydney",
         "Australia/Lord_Howe", "America/Santiago", "Asia/Kathmandu", "UTC"]


@settings(max_examples=40, derandomize=True, deadline=None)
@given(
    tz_name=st.sampled_from(ZONES),
    rules=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 47), st.integers(1, 48)),
                   min_size=1, max_size=6),
    split_hours=st.integers(1, 24 * 13),
    length=st.sampled_from([30, 45, 60, 90]),
    year_day=st.integers(0, 364),
)
def test_no_slot_lost_duplicated_or_shifted(tz_name, rules, split_hours, length, year_day) -> None:
    tz = zone(tz_name)
    weekly = [WeeklyRule(d, a * 30, min(48, a + n) * 30) for d, a, n in rules if a + n > a and a < 48]
    lo = utc(2026, 1, 1) + timedelta(days=year_day)
    mid, hi = lo + timedelta(hours=split_hours), lo + timedelta(days=14)
    whole = starts(weekly, tz, lo, hi, length=length)
    # no slot lost or duplicated at an arbitrary split of the range
    assert whole == starts(weekly, tz, lo, mid, length=length) + starts(weekly, tz, mid, hi, length=length)
    assert len(set(whole)) == len(whole) and whole == sorted(whole)
    for s in whole:
        wall = s.astimezone(tz)
        assert (wall.hour * 60 + wall.minute) % 30 == 0 and wall.second == 0  # on the local grid
        # the start's wall-clock reading lies inside a rule of its weekday (not shifted)
        minute = wall.hour * 60 + wall.minute
        assert any(r.weekday == wall.weekday() and r.start_minute <= minute < r.end_minute
                   for r in weekly)
