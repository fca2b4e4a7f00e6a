"""The C-SSRS screener: skip logic, and the level of every complete set of answers."""

from __future__ import annotations

import itertools
import re

import pytest

from medweave.therapy.cssrs import HIGH_ACTIONS, InvalidScreen, assess, next_question


def complete_screens() -> list[dict[str, bool]]:
    """Every set of answers the skip logic allows, built by asking as a person would."""
    found: list[dict[str, bool]] = []

    def walk(answers: dict[str, bool]) -> None:
        question = next_question(answers)
        if question is None:
            found.append(answers)
            return
        for value in (False, True):
            walk({**answers, question: value})

    walk({})
    return found


def reference_level(a: dict[str, bool]) -> str:
    """The triage points, written again here: red, orange, yellow."""
    if a.get("q4") or a.get("q5") or (a.get("q6") and a.get("q6_recent")):
        return "high"
    if a.get("q3") or a.get("q6"):
        return "moderate"
    if a.get("q1") or a.get("q2"):
        return "low"
    return "none"


def test_skip_logic() -> None:
    assert next_question({}) == "q1"
    assert next_question({"q1": True, "q2": False}) == "q6"  # no to 2: straight to 6
    assert next_question({"q1": False, "q2": True}) == "q3"
    assert next_question({"q1": False, "q2": False, "q6": True}) == "q6_recent"
    assert next_question({"q1": False, "q2": False, "q6": False}) is None
    screens = complete_screens()
    # q2 no: q1 x q6 (q6 yes: recent or not) = 2 * 3; q2 yes: q1 x q3 x q4 x q5 x 3 = 2 * 8 * 3
    assert len(screens) == 2 * 3 + 2 * 8 * 3


def test_every_complete_screen_gets_the_triage_level() -> None:
    for answers in complete_screens():
        screen = assess(answers)
        assert screen.level == reference_level(answers), answers
        assert screen.actions == (HIGH_ACTIONS if screen.level == "high" else ())
        assert all(answers[k] for k in screen.reasons)


@pytest.mark.parametrize(
    ("answers", "level", "reasons"),
    [
        ({"q1": False, "q2": False, "q6": False}, "none", ()),
        ({"q1": True, "q2": False, "q6": False}, "low", ("q1",)),
        ({"q1": True, "q2": True, "q3": True, "q4": False, "q5": False, "q6": False}, "moderate", ("q3",)),
        ({"q1": False, "q2": False, "q6": True, "q6_recent": False}, "moderate", ("q6",)),
        ({"q1": True, "q2": True, "q3": False, "q4": True, "q5": False, "q6": False}, "high", ("q4",)),
        ({"q1": False, "q2": False, "q6": True, "q6_recent": True}, "high", ("q6", "q6_recent")),
    ],
)
def test_examples(answers: dict[str, bool], level: str, reasons: tuple[str, ...]) -> None:
    screen = assess(answers)
    assert (screen.level, screen.reasons) == (level, reasons)


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"q1": False, "q2": False, "q3": True, "q6": False}, "only after yes to question 2"),
        ({"q1": False, "q2": False, "q6": False, "q6_recent": True}, "follows only yes"),
        ({"q1": False, "q2": True, "q6": False}, "q3 is not answered"),
        ({"q1": False}, "q2 is not answered"),
        ({"q1": "yes", "q2": False, "q6": False}, "yes (true) or no"),
        ({"q9": True}, "unknown questions"),
    ],
)
def test_answers_that_break_the_skip_logic(answers: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidScreen, match=re.escape(message)):
        assess(answers)  # type: ignore[arg-type]


def test_no_combination_is_missed() -> None:
    """Sanity of the walk: every full assignment consistent with the skip logic is visited once."""
    keys = ("q1", "q2", "q3", "q4", "q5", "q6", "q6_recent")
    consistent = 0
    for values in itertools.product((None, False, True), repeat=len(keys)):
        answers = {k: v for k, v in zip(keys, values, strict=True) if v is not None}
        try:
            assess(answers)
        except InvalidScreen:
            continue
        consistent += 1
    assert consistent == len(complete_screens())
