"""Availability as typed by a clinician: parsing, clear errors with line numbers, and round trips."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medweave.telehealth import hours_text
from medweave.telehealth.availability import AvailabilityError, Hours, VisitType


def test_weekly_and_dated_hours() -> None:
    hours = hours_text.parse_hours("# my week\nMon 09:00-12:30\n\nsat 10:00 - 11:00\n2026-12-19 10:00-13:00")
    assert hours == (
        Hours(time(9), time(12, 30), weekday=0),
        Hours(time(10), time(11), weekday=5),
        Hours(time(10), time(13), day=date(2026, 12, 19)),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Mon 09:00-12:30\nFunday 09:00-10:00", "line 2: write 'Mon 09:00-12:30'"),
        ("Mon 12:00-09:00", "line 1: opening hours end after they start"),
        ("Mon 24:00-25:00", "line 1"),
        ("2026-02-30 09:00-10:00", "line 1: '2026-02-30' is not a date"),
    ],
)
def test_hour_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(AvailabilityError, match=message):
        hours_text.parse_hours(text)


def test_closures_in_the_clinicians_zone() -> None:
    closures = hours_text.parse_closures(
        "2026-12-24 to 2026-12-27 annual leave\n2026-07-01 13:00-17:00 training", "Europe/London"
    )
    assert closures[0].start == datetime(2026, 12, 24, tzinfo=UTC) and closures[0].end == datetime(
        2026, 12, 28, tzinfo=UTC
    )
    assert closures[0].reason == "annual leave"
    assert closures[1].start == datetime(2026, 7, 1, 12, tzinfo=UTC)  # 13:00 BST
    with pytest.raises(AvailabilityError, match="line 1: dates run from 1900 to 2200"):
        hours_text.parse_closures("9999-12-31 leave", "UTC")
    with pytest.raises(AvailabilityError, match="line 1: the last day comes before the first"):
        hours_text.parse_closures("2026-12-27 to 2026-12-24", "UTC")


def test_visit_types() -> None:
    assert hours_text.parse_visit_types("standard 20 min +10 video\nfirst 40 min in-person") == (
        VisitType("standard", 20, 10, "video"),
        VisitType("first", 40, 0, "in-person"),
    )
    for bad, message in [
        ("", "at least one"),
        (
            "standard 20 min video\nstandard 30 min video",
            "line 2: the visit type 'standard' is already listed",
        ),
        ("long 999 min video", "line 1: a visit lasts 5 to 480 minutes"),
        ("Standard 20 minutes by phone", "line 1: write 'standard 20 min"),
    ]:
        with pytest.raises(AvailabilityError, match=message):
            hours_text.parse_visit_types(bad)


def test_too_many_lines() -> None:
    with pytest.raises(AvailabilityError, match="at most"):
        hours_text.parse_hours("Mon 09:00-10:00\n" * 201)


times = st.times().map(lambda t: t.replace(second=0, microsecond=0, tzinfo=None))
spans = st.tuples(times, times).filter(lambda ab: ab[0] != ab[1]).map(sorted)
weekly = st.builds(lambda ab, d: Hours(ab[0], ab[1], weekday=d), spans, st.integers(0, 6))
dated = st.builds(
    lambda ab, day: Hours(ab[0], ab[1], day=day), spans, st.dates(date(1900, 1, 1), date(2200, 12, 31))
)
kinds = st.builds(
    VisitType,
    st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True),
    st.integers(5, 480),
    st.integers(0, 120),
    st.sampled_from(["video", "in-person"]),
)


@given(st.lists(st.one_of(weekly, dated), max_size=20))
def test_hours_round_trip(hours: list[Hours]) -> None:
    assert hours_text.parse_hours(hours_text.format_hours(tuple(hours))) == tuple(hours)


@given(st.lists(kinds, min_size=1, max_size=8, unique_by=lambda k: k.code))
def test_visit_types_round_trip(found: list[VisitType]) -> None:
    assert hours_text.parse_visit_types(hours_text.format_visit_types(tuple(found))) == tuple(found)


@given(st.text(max_size=200))
def test_any_text_parses_or_says_why(text: str) -> None:
    for parse in (hours_text.parse_hours, hours_text.parse_visit_types):
        with contextlib.suppress(AvailabilityError):
            parse(text)
    with contextlib.suppress(AvailabilityError):
        hours_text.parse_closures(text, "Europe/London")
