"""The C-SSRS screener: six questions with their skip logic, and the risk they indicate. Pure.

Source: Posner K, Brown GK, Stanley B, et al. The Columbia-Suicide Severity Rating Scale: initial
validity and internal consistency findings from three multisite studies with adolescents and
adults. Am J Psychiatry 2011;168(12):1266-1277; and the Columbia Lighthouse Project's "C-SSRS
Screen Version - Recent" with triage points (cssrs.columbia.edu). Questions 1-5 ask about the past
month; question 6 about suicidal behaviour ever, then whether it was within the past 3 months.

Skip logic: question 2 "yes" leads to questions 3, 4 and 5; "no" goes straight to question 6.

Risk, by the screener's triage points:

- **high**: yes to question 4 (intent) or 5 (intent with a plan) in the past month, or suicidal
  behaviour (question 6) in the past 3 months. This needs an immediate referral and safety
  precautions (issue 6, after the screener's triage).
- **moderate**: yes to question 3 (thinking about a method), or suicidal behaviour more than 3
  months ago.
- **low**: yes to question 1 (wish to be dead) or 2 (thoughts of killing oneself) only.
- **none**: no to every question.

The screener gives a level and the answers behind it; what to do below "high" is the clinician's
decision, not the software's.
"""

from __future__ import annotations

from dataclasses import dataclass

QUESTIONS = {
    "q1": "In the past month, have you wished you were dead or wished you could go to sleep and not wake up?",
    "q2": "In the past month, have you actually had any thoughts of killing yourself?",
    "q3": "In the past month, have you been thinking about how you might do this?",
    "q4": "In the past month, have you had these thoughts and had some intention of acting on them?",
    "q5": (
        "In the past month, have you started to work out or worked out the details of how to kill "
        "yourself? Do you intend to carry out this plan?"
    ),
    "q6": "Have you ever done anything, started to do anything, or prepared to do anything to end your life?",
    "q6_recent": "Was that within the past 3 months?",
}
ORDER = ("q1", "q2", "q3", "q4", "q5", "q6", "q6_recent")
HIGH_ACTIONS = ("immediate referral", "safety precautions")


class InvalidScreen(ValueError):
    """Answers that break the skip logic or leave a required question unanswered."""


@dataclass(frozen=True)
class Screen:
    level: str  # none, low, moderate, high
    reasons: tuple[str, ...]  # the questions answered yes that set the level
    actions: tuple[str, ...]  # only for high


def next_question(answers: dict[str, bool]) -> str | None:
    """The next question to ask, following the skip logic; None when the screen is complete."""
    for key in ORDER:
        if key in answers:
            continue
        if key in ("q3", "q4", "q5") and answers.get("q2") is not True:
            continue
        if key == "q6_recent" and answers.get("q6") is not True:
            continue
        return key
    return None


def assess(answers: dict[str, bool]) -> Screen:
    """The risk level of a completed screen; InvalidScreen if the answers break the skip logic."""
    unknown = set(answers) - set(ORDER)
    if unknown:
        raise InvalidScreen(f"unknown questions: {', '.join(sorted(unknown))}")
    if any(not isinstance(v, bool) for v in answers.values()):
        raise InvalidScreen("each answer is yes (true) or no (false)")
    if answers.get("q2") is not True and any(k in answers for k in ("q3", "q4", "q5")):
        raise InvalidScreen("questions 3 to 5 are asked only after yes to question 2")
    if answers.get("q6") is not True and "q6_recent" in answers:
        raise InvalidScreen("the 3-month question follows only yes to question 6")
    if next_question(answers) is not None:
        raise InvalidScreen(f"question {next_question(answers)} is not answered yet")
    yes = tuple(k for k in ORDER if answers.get(k) is True)
    if answers.get("q4") or answers.get("q5") or (answers.get("q6") and answers.get("q6_recent")):
        reasons = tuple(k for k in ("q4", "q5", "q6", "q6_recent") if k in yes)
        return Screen("high", reasons, HIGH_ACTIONS)
    if answers.get("q3") or answers.get("q6"):
        return Screen("moderate", tuple(k for k in ("q3", "q6") if k in yes), ())
    if answers.get("q1") or answers.get("q2"):
        return Screen("low", tuple(k for k in ("q1", "q2") if k in yes), ())
    return Screen("none", (), ())
