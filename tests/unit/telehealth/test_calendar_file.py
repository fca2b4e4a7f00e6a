"""The .ics of an appointment, read back by an independent parser (icalendar)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import icalendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from medweave.telehealth.calendar_file import appointment_ics

START = datetime(2026, 12, 7, 9, tzinfo=UTC)


def event_of(text: str) -> icalendar.Event:
    cal = icalendar.Calendar.from_ical(text)
    events = list(cal.walk("VEVENT"))
    assert len(events) == 1
    return events[0]


def test_an_appointment_reads_back_in_utc() -> None:
    ics = appointment_ics(
        uid="appt-1@clinic.example",
        start=START.astimezone(timezone(timedelta(hours=1))),  # any zone in, UTC out
        end=START + timedelta(minutes=30),
        summary="Video visit with Dr. Grey",
        sequence=2,
        url="https://clinic.example/visits/appt-1",
        now=START - timedelta(days=1),
    )
    assert ics.endswith("\r\n") and "\r\n" in ics and "\n" not in ics.replace("\r\n", "")
    event = event_of(ics)
    assert event.decoded("dtstart") == START and event.decoded("dtend") == START + timedelta(minutes=30)
    assert str(event["uid"]) == "appt-1@clinic.example" and int(event["sequence"]) == 2
    assert str(event["status"]) == "CONFIRMED" and "DTSTART:20261207T090000Z" in ics
    cancelled = event_of(
        appointment_ics(uid="u", start=START, end=START + timedelta(hours=1), summary="x", cancelled=True)
    )
    assert str(cancelled["status"]) == "CANCELLED"


@given(st.text(min_size=1, max_size=300).filter(lambda s: "\r" not in s))
def test_any_text_is_escaped_and_folded(text: str) -> None:
    ics = appointment_ics(
        uid="u@x", start=START, end=START + timedelta(minutes=5), summary=text, description=text
    )
    assert all(len(line.encode("utf-8")) <= 75 for line in ics.split("\r\n"))
    event = event_of(ics)
    assert str(event["summary"]) == text and str(event["description"]) == text


def test_bad_times_are_refused() -> None:
    with pytest.raises(ValueError):
        appointment_ics(uid="u", start=START, end=START, summary="x")
    with pytest.raises(ValueError):
        appointment_ics(uid="u", start=datetime(2026, 1, 1), end=datetime(2026, 1, 2), summary="x")
