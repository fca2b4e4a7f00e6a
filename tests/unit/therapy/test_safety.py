"""Crisis lines, the disclosure schedule and asking for a person."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from medweave.therapy.safety import (
    DEFAULT_LINES,
    DISCLOSURE_EVERY,
    InvalidCrisisLines,
    disclosure_due,
    locale_for,
    parse_lines,
    safety_message,
    wants_human,
)

NOW = datetime(2027, 1, 1, 12, tzinfo=UTC)


def test_the_default_lines_are_the_issues() -> None:
    us, uk = safety_message(DEFAULT_LINES["en-US"]), safety_message(DEFAULT_LINES["en-GB"])
    assert "988" in us and "call 911 now" in us
    assert "111" in uk and "116 123" in uk and "call 999 now" in uk
    assert "not a person" in us and "(yes or no)" in us
    assert "(yes or no)" not in safety_message(DEFAULT_LINES["en-US"], offer_screen=False)


def test_a_clinics_own_lines() -> None:
    lines = parse_lines(
        '{"en-IE": {"emergency": "112", "lines": [{"name": "Samaritans", "contact": "call 116 123"}]}}'
    )
    assert "call 112 now" in safety_message(locale_for(lines, "en-IE"))
    assert locale_for(lines, "en-GB").emergency == "112"  # same language, else the first
    assert locale_for(DEFAULT_LINES, "fr-FR").emergency == "911"  # the default locale


@pytest.mark.parametrize(
    "text",
    ["not json", "[]", "{}", '{"x": {"lines": [{"name": "a", "contact": "b"}]}}', '{"x": {"emergency": "1"}}',
     '{"x": {"emergency": "1", "lines": [{"name": "a"}]}}'],
)  # fmt: skip
def test_bad_lines_files_are_refused(text: str) -> None:
    with pytest.raises(InvalidCrisisLines):
        parse_lines(text)


def test_the_disclosure_is_due_at_the_start_and_every_three_hours() -> None:
    assert disclosure_due(None, NOW)
    assert not disclosure_due(NOW, NOW + DISCLOSURE_EVERY - timedelta(seconds=1))
    assert disclosure_due(NOW, NOW + DISCLOSURE_EVERY)
    assert timedelta(hours=3) == DISCLOSURE_EVERY  # New York GBL Article 47


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("human", True),
        ("Human!", True),
        ("can I talk to a real person", True),
        ("I need to speak to my therapist", True),
        ("put me through to a nurse please", True),
        ("I want to talk to someone", True),
        ("my doctor changed my tablets", False),
        ("I'm a person who likes walking", False),
        ("humanities essay due tomorrow", False),
    ],
)
def test_asking_for_a_person(text: str, asks: bool) -> None:
    assert wants_human(text) is asks
