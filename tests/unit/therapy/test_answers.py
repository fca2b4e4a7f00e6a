"""Free-text answers to PHQ/GAD items, mapped onto the 0-3 scale: a table of cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medweave.therapy.answers import LABELS, Parsed, days_to_value, parse_answer
from medweave.therapy.questionnaires import ANSWERS

SURE, GUESS = True, False

CASES = [
    # digits and number words
    ("0", 0, SURE),
    ("1", 1, SURE),
    ("2", 2, SURE),
    ("3", 3, SURE),
    (" 2 ", 2, SURE),
    ("zero", 0, SURE),
    ("Three", 3, SURE),
    ("I'd say 2", 2, SURE),
    ("the answer is 3", 3, SURE),
    ("probably 2", 2, GUESS),
    # the labels, in any case, with typos, curly quotes, run together
    ("Not at all", 0, SURE),
    ("several days", 1, SURE),
    ("MORE THAN HALF THE DAYS", 2, SURE),
    ("Nearly every day", 3, SURE),
    ("\u201cNearly every day\u201d", 3, SURE),
    ("\u2018several days\u2019", 1, SURE),
    ("nearly everyday", 3, SURE),
    ("Nearly every day!!!", 3, SURE),
    ("sevral days", 1, SURE),
    ("several dyas", 1, SURE),
    ("mor than half the days", 2, SURE),
    ("more then half of the days", 2, SURE),
    ("nearly evry day", 3, SURE),
    ("not at al", 0, SURE),
    ("notatall", 0, SURE),
    ("nearlyeveryday", 3, SURE),
    # 0
    ("never", 0, SURE),
    ("not once", 0, SURE),
    ("no days", 0, SURE),
    ("0 days", 0, SURE),
    ("not really", 0, GUESS),
    ("no", 0, GUESS),
    ("nope", 0, GUESS),
    ("none", 0, GUESS),
    ("no, not really", 0, GUESS),
    ("No, not at all", 0, SURE),
    ("I don\u2019t really", 0, GUESS),
    ("not bothered at all", 0, GUESS),
    # 1
    ("a few days", 1, SURE),
    ("some days", 1, SURE),
    ("a couple of days", 1, SURE),
    ("one or two days", 1, SURE),
    ("once or twice", 1, SURE),
    ("a couple of times", 1, SURE),
    ("once", 1, SURE),
    ("less than half the days", 1, SURE),
    ("sometimes", 1, GUESS),
    ("occasionally", 1, GUESS),
    ("now and then", 1, GUESS),
    ("rarely", 1, GUESS),
    ("not often", 1, GUESS),
    ("not very often", 1, GUESS),
    ("not much", 1, GUESS),
    ("half the time", 1, GUESS),  # "more than half" excludes half
    ("every other day", 1, GUESS),
    ("once a week", 1, GUESS),
    ("a week", 1, GUESS),
    # 2
    ("most days", 2, SURE),
    ("more than half", 2, SURE),
    ("over half the time", 2, SURE),
    ("more days than not", 2, SURE),
    ("often", 2, GUESS),
    ("a lot", 2, GUESS),
    ("alot", 2, GUESS),
    ("most of the time", 2, GUESS),
    ("4 days a week", 2, GUESS),
    ("a week and a half", 2, GUESS),
    # 3
    ("every day", 3, SURE),
    ("every single day", 3, SURE),
    ("almost every day", 3, SURE),
    ("daily", 3, SURE),
    ("every night", 3, SURE),
    ("all the time", 3, GUESS),
    ("always", 3, GUESS),
    ("constantly", 3, GUESS),
    ("24/7", 3, GUESS),
    ("the whole two weeks", 3, GUESS),
    ("hmm, every single day honestly", 3, SURE),
    ("every day for the last two weeks", 3, SURE),
    # day counts: 1-7 several, 8-11 more than half, 12-14 nearly every day; 7, 11 and 12 unsure
    ("1 day", 1, SURE),
    ("3 days", 1, SURE),
    ("six days", 1, SURE),
    ("7 days", 1, GUESS),
    ("8 days", 2, SURE),
    ("10 days", 2, SURE),
    ("ten of the 14 days", 2, SURE),
    ("10 out of 14", 2, SURE),
    ("11 days", 2, GUESS),
    ("12 days", 3, GUESS),
    ("13 days", 3, SURE),
    ("14 days", 3, SURE),
    ("13", 3, GUESS),  # not a scale value, so a day count
    ("about 10", 2, GUESS),
    ("3 or 4 days", 1, SURE),
    ("over the last two weeks, a few days", 1, SURE),
    # negation and mixed answers
    ("not every day but most days", 2, GUESS),
    ("Most days, work has been awful", 2, GUESS),
    ("Every day. I want to die.", 3, GUESS),  # the answer is its own clause; risk is read elsewhere
]

NOTHING = [
    "",
    "   ",
    "yes",
    "I don't know",
    "not sure",
    "I want to die",
    "I want to kill myself",
    "every day I want to die",
    "I never want to live again",
    "I always feel like a failure",
    "no one cares",
    "I have 2 kids",
    "5 kids",
    "not every day",
    "not nearly every day",
    "NOT EVERY DAY",
    "isn't every day",
    "not always",
    "not all the time",
    "not really every day",
    "2 or 3",
    "a few days, maybe every day",
    "6 or 8 days",
    "20 days",
    "3 times a day",
    "the last two weeks",
    "what do you mean?",
    "\u0663",  # a non-ASCII digit is not an answer
    "banana",
]


@pytest.mark.parametrize(("text", "value", "confident"), CASES)
def test_answers(text: str, value: int, confident: bool) -> None:
    assert parse_answer(text) == Parsed(value, LABELS[value], confident)


@pytest.mark.parametrize("text", NOTHING)
def test_no_answer(text: str) -> None:
    assert parse_answer(text) is None


def test_not_every_day_is_never_nearly_every_day() -> None:
    for text in (
        "not every day",
        "Not every day, no",
        "not every day, but some days",
        "don't feel it every day",
    ):
        result = parse_answer(text)
        assert result is None or result.value != 3, text


def test_labels_are_the_instrument_answer_list() -> None:
    assert [label for _, label, _ in ANSWERS] == list(LABELS)
    assert [value for _, _, value in ANSWERS] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("days", "value"),
    [(0, 0), (1, 1), (6, 1), (7, 1), (8, 2), (11, 2), (12, 3), (14, 3), (-1, None), (15, None)],
)
def test_day_cut_points(days: int, value: int | None) -> None:
    assert days_to_value(days) == value


@given(st.text())
def test_never_raises_and_values_are_on_the_scale(text: str) -> None:
    result = parse_answer(text)
    if result is not None:
        assert 0 <= result.value <= 3
        assert result.label == LABELS[result.value]


@given(st.integers(0, 3), st.text(" \t\n", max_size=3), st.text(" \t\n", max_size=3))
def test_digits_map_exactly(value: int, before: str, after: str) -> None:
    assert parse_answer(f"{before}{value}{after}") == Parsed(value, LABELS[value], True)


@st.composite
def label_variants(draw: st.DrawFn) -> tuple[int, str]:
    value = draw(st.integers(0, 3))
    cased = [
        "".join(c.upper() if draw(st.booleans()) else c.lower() for c in word)
        for word in LABELS[value].split()
    ]
    gaps = [draw(st.text(" \t\n\u00a0", min_size=1, max_size=3)) for _ in cased[1:]]
    text = cased[0] + "".join(gap + word for gap, word in zip(gaps, cased[1:], strict=True))
    edge = st.text(" \t\n", max_size=3)
    return value, draw(edge) + text + draw(edge)


@given(label_variants())
def test_every_label_in_any_case_and_spacing_maps_to_its_value(case: tuple[int, str]) -> None:
    value, text = case
    assert parse_answer(text) == Parsed(value, LABELS[value], True)


@given(
    st.sampled_from(["not", "don't", "didn\u2019t", "isn't", "hasn't"]),
    st.lists(
        st.sampled_from(["quite", "really", "feel it", "get it", "have", "been", "", "nearly"]), max_size=2
    ),
    st.sampled_from(["every day", "nearly every day", "every single day", "all the time", "always", "daily"]),
)
def test_a_negated_every_day_is_never_nearly_every_day(negator: str, middle: list[str], phrase: str) -> None:
    result = parse_answer(" ".join([negator, *middle, phrase]))
    assert result is None or result.value != 3
