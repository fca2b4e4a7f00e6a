"""Availability to slots: weekly hours on the wall clock, buffers, closures, and DST done right."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medweave.telehealth.availability import (
    Availability,
    AvailabilityError,
    Closure,
    Hours,
    VisitType,
    local,
    slots,
)

LONDON = "Europe/London"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def starts(found: list) -> list[datetime]:  # type: ignore[type-arg]
    return [s.start for s in found]


def test_weekly_hours_follow_the_wall_clock_through_the_year() -> None:
    monday = Availability(LONDON, (Hours(time(9), time(12), weekday=0),))
    visit = VisitType("consult", 30)
    winter = slots(monday, visit, start=utc(2026, 1, 5), end=utc(2026, 1, 6))  # GMT
    summer = slots(monday, visit, start=utc(2026, 7, 6), end=utc(2026, 7, 7))  # BST
    assert starts(winter)[:2] == [utc(2026, 1, 5, 9), utc(2026, 1, 5, 9, 30)] and len(winter) == 6
    assert starts(summer)[:2] == [utc(2026, 7, 6, 8), utc(2026, 7, 6, 8, 30)] and len(summer) == 6
    assert all(s.end - s.start == timedelta(minutes=30) for s in winter + summer)


def test_buffers_and_closing_time() -> None:
    hours = Availability(LONDON, (Hours(time(9), time(10), weekday=0),))
    found = slots(
        hours, VisitType("short", 20, buffer_minutes=10), start=utc(2026, 1, 5), end=utc(2026, 1, 6)
    )
    assert starts(found) == [utc(2026, 1, 5, 9), utc(2026, 1, 5, 9, 30)]  # 09:30 ends 09:50, before 10:00
    long = slots(hours, VisitType("long", 45, buffer_minutes=10), start=utc(2026, 1, 5), end=utc(2026, 1, 6))
    assert starts(long) == [utc(2026, 1, 5, 9)]  # 09:55 would end after closing


def test_the_hour_skipped_in_spring_has_no_slot() -> None:
    """Europe/London, Sunday 29 March 2026: 01:00 GMT jumps to 02:00 BST."""
    sunday = Availability(LONDON, (Hours(time(0), time(4), weekday=6),))
    found = slots(sunday, VisitType("hour", 60), start=utc(2026, 3, 28, 12), end=utc(2026, 3, 30))
    assert starts(found) == [utc(2026, 3, 29, 0), utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)]
    assert [local(s, LONDON).strftime("%H:%M") for s in starts(found)] == ["00:00", "02:00", "03:00"]


def test_the_hour_repeated_in_autumn_is_booked_once() -> None:
    """Europe/London, Sunday 25 October 2026: 02:00 BST falls back to 01:00 GMT."""
    sunday = Availability(LONDON, (Hours(time(0), time(3), weekday=6),))
    found = slots(sunday, VisitType("hour", 60), start=utc(2026, 10, 24, 12), end=utc(2026, 10, 26))
    assert starts(found) == [utc(2026, 10, 24, 23), utc(2026, 10, 25, 0), utc(2026, 10, 25, 2)]
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))


def test_new_york_and_a_viewer_elsewhere() -> None:
    clinic = Availability("America/New_York", (Hours(time(8), time(9), weekday=1),))  # Tuesdays
    found = slots(clinic, VisitType("consult", 60), start=utc(2026, 11, 3), end=utc(2026, 11, 4))
    assert starts(found) == [utc(2026, 11, 3, 13)]  # 08:00 EST
    assert local(found[0].start, "Asia/Kolkata").strftime("%H:%M %z") == "18:30 +0530"


def test_extra_openings_and_closures() -> None:
    clinic = Availability(
        LONDON,
        (Hours(time(9), time(11), weekday=0), Hours(time(10), time(11), day=date(2026, 1, 10))),
        closures=(Closure(utc(2026, 1, 5, 9, 30), utc(2026, 1, 5, 10, 15), "training"),),
    )
    found = slots(clinic, VisitType("consult", 30), start=utc(2026, 1, 5), end=utc(2026, 1, 12))
    assert starts(found) == [
        utc(2026, 1, 5, 9),
        utc(2026, 1, 5, 10, 30),  # 09:30, 10:00 overlap the training
        utc(2026, 1, 10, 10),
        utc(2026, 1, 10, 10, 30),  # the Saturday clinic
    ]


def test_bad_availability_is_refused() -> None:
    with pytest.raises(AvailabilityError, match="time zone"):
        Availability("Mars/Olympus_Mons", ())
    with pytest.raises(AvailabilityError):
        Hours(time(12), time(9), weekday=0)
    with pytest.raises(AvailabilityError):
        Hours(time(9), time(12))
    with pytest.raises(AvailabilityError):
        VisitType("x", 2)
    with pytest.raises(AvailabilityError):
        slots(Availability(LONDON, ()), VisitType("x", 30), start=datetime(2026, 1, 1), end=utc(2026, 1, 2))


ZONES = [
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Santiago",
    "UTC",
]


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    day=st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
    open_minute=st.integers(0, 23 * 60),
    span=st.integers(15, 12 * 60),
    minutes=st.integers(5, 120),
    buffer=st.integers(0, 30),
)
def test_slots_are_real_lengths_inside_the_wall_clock_hours(
    zone: str, day: date, open_minute: int, span: int, minutes: int, buffer: int
) -> None:
    close_minute = min(open_minute + span, 24 * 60 - 1)
    opening = time(open_minute // 60, open_minute % 60)
    closing = time(close_minute // 60, close_minute % 60)
    if not opening < closing:
        return
    clinic = Availability(zone, (Hours(opening, closing, day=day),))
    start = datetime.combine(day, time(0), ZoneInfo(zone)).astimezone(UTC) - timedelta(days=1)
    found = slots(
        clinic, VisitType("v", minutes, buffer_minutes=buffer), start=start, end=start + timedelta(days=3)
    )
    assert found == sorted(set(found))
    for slot in found:
        assert slot.start.tzinfo is UTC and slot.end - slot.start == timedelta(minutes=minutes)
        wall_start = local(slot.start, zone)
        assert wall_start.date() == day and opening <= wall_start.time()
        assert slot.end <= datetime.combine(day, closing, ZoneInfo(zone)).astimezone(UTC) + timedelta(hours=1)
    for a, b in itertools.pairwise(found):
        assert a.end + timedelta(minutes=buffer) <= b.start  # one clinician, one visit at a time


def test_a_visit_before_the_spring_gap_does_not_overlap_the_one_after() -> None:
    """45-minute visits from 00:00 GMT: 00:45 GMT runs to 01:30 UTC, and the next wall-clock start,
    02:15 BST, is 01:15 UTC: it would overlap, so it is not offered."""
    sunday = Availability(LONDON, (Hours(time(0), time(4), weekday=6),))
    found = slots(sunday, VisitType("v", 45), start=utc(2026, 3, 28, 12), end=utc(2026, 3, 30))
    assert utc(2026, 3, 29, 1, 15) not in starts(found)
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))
