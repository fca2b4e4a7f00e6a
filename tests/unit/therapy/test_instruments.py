"""Questionnaire scoring, checked exhaustively against a reference written here from the papers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medweave.therapy.instruments import (
    GAD2,
    GAD7,
    INSTRUMENTS,
    PHQ2,
    PHQ9,
    InvalidAnswers,
    parse_answers,
    score,
)


def phq9_reference(answers: tuple[int, ...]) -> tuple[int, str, list[str]]:
    """Kroenke 2001, Table 3; item 9 >= 1 needs a risk review."""
    total = sum(answers)
    if total >= 20:
        band = "severe"
    elif total >= 15:
        band = "moderately severe"
    elif total >= 10:
        band = "moderate"
    elif total >= 5:
        band = "mild"
    else:
        band = "minimal"
    return total, band, (["risk-review"] if answers[8] > 0 else [])


def gad7_reference(answers: tuple[int, ...]) -> tuple[int, str, list[str]]:
    """Spitzer 2006: 5, 10 and 15 are the cut-points for mild, moderate and severe."""
    total = sum(answers)
    band = "severe" if total >= 15 else "moderate" if total >= 10 else "mild" if total >= 5 else "minimal"
    return total, band, []


def test_every_phq9_answer_vector() -> None:
    checked = 0
    for answers in itertools.product(range(4), repeat=9):
        result = score(PHQ9, answers)
        assert (result.total, result.severity, list(result.flags)) == phq9_reference(answers), answers
        checked += 1
    assert checked == 4**9


def test_every_gad7_answer_vector() -> None:
    checked = 0
    for answers in itertools.product(range(4), repeat=7):
        result = score(GAD7, answers)
        assert (result.total, result.severity, list(result.flags)) == gad7_reference(answers), answers
        checked += 1
    assert checked == 4**7


@pytest.mark.parametrize(("instrument", "full"), [(PHQ2, "phq9"), (GAD2, "gad7")])
def test_screeners_are_positive_at_three_and_point_to_the_full_instrument(instrument, full) -> None:  # type: ignore[no-untyped-def]
    for answers in itertools.product(range(4), repeat=2):
        result = score(instrument, answers)
        positive = sum(answers) >= 3
        assert result.severity == ("positive" if positive else "negative")
        assert list(result.flags) == ([f"positive-screen:{full}"] if positive else [])


def test_loinc_codes() -> None:
    assert (PHQ9.panel_loinc, PHQ9.total_loinc) == ("44249-1", "44261-6")
    assert (GAD7.panel_loinc, GAD7.total_loinc) == ("69737-5", "70274-6")
    assert (PHQ2.panel_loinc, PHQ2.total_loinc) == ("55757-9", "55758-7")


@pytest.mark.parametrize(
    ("code", "answers", "message"),
    [
        ("phq9", [0] * 8, "9 items; got 8"),
        ("gad7", [0] * 8, "7 items; got 8"),
        ("phq9", [0] * 8 + [4], "item 9"),
        ("gad7", [0, -1, 0, 0, 0, 0, 0], "item 2"),
        ("phq2", [True, 0], "item 1"),
    ],
)
def test_invalid_answers(code: str, answers: list[int], message: str) -> None:
    with pytest.raises(InvalidAnswers, match=message):
        score(INSTRUMENTS[code], answers)


@given(st.text(max_size=40))
def test_parse_answers_reads_digits_or_refuses(text: str) -> None:
    try:
        values = parse_answers(text)
    except InvalidAnswers:
        return
    assert ",".join(str(v) for v in values) == ",".join(p.strip() for p in text.split(","))


def test_parse_answers() -> None:
    assert parse_answers("0, 1,2 ,3") == [0, 1, 2, 3]
    for bad in ("", "1,,2", "1;2", "a,b", "\uff11,2", "-1,2"):
        with pytest.raises(InvalidAnswers):
            parse_answers(bad)
