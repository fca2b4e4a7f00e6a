"""The exercise scripts and their ranking: the catalogue's shape, a table of cases, and properties."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medweave.therapy.exercises import (
    BEHAVIOURAL_ACTIVATION,
    BREATHING,
    BY_CODE,
    EXERCISES,
    GROUNDING,
    THOUGHT_RECORD,
    Engagement,
    Exercise,
    suggest,
)

CODES = [e.code for e in EXERCISES]
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def texts(exercise: Exercise) -> list[str]:
    return [exercise.title, exercise.summary, *(s.prompt for s in exercise.steps)]


def order(
    *, phq9: int | None, gad7: int | None, goals: Sequence[str], history: Mapping[str, Engagement]
) -> list[str]:
    return [s.exercise.code for s in suggest(phq9=phq9, gad7=gad7, goals=goals, history=history)]


# --- the catalogue ------------------------------------------------------------------------------


def test_codes_are_unique_and_indexed() -> None:
    assert len(set(CODES)) == len(CODES) == 8
    assert {c: e.code for c, e in BY_CODE.items()} == {c: c for c in CODES}


@pytest.mark.parametrize("exercise", EXERCISES, ids=CODES)
def test_every_exercise_is_a_script_with_a_source(exercise: Exercise) -> None:
    assert exercise.steps and exercise.source.strip() and exercise.keywords
    assert len(set(exercise.slots)) == len(exercise.slots)
    for step in exercise.steps:
        assert step.prompt.strip()
        assert step.informational == (step.slot is None)
        if step.scale is not None:
            assert step.slot is not None and step.scale[0] < step.scale[1]
    if exercise.kind == "psychoeducation":
        assert all(s.informational for s in exercise.steps)
    else:
        assert exercise.kind == "skill" and exercise.slots


def test_thought_record_has_the_seven_columns_in_order() -> None:
    assert THOUGHT_RECORD.slots == (
        "situation",
        "emotion",
        "emotion_rating",
        "automatic_thought",
        "evidence_for",
        "evidence_against",
        "balanced_thought",
        "emotion_rerating",
    )
    scales = {s.slot: s.scale for s in THOUGHT_RECORD.steps if s.scale}
    assert scales == {"emotion_rating": (0, 100), "emotion_rerating": (0, 100)}
    assert "Beck JS" in THOUGHT_RECORD.source and "Mind Over Mood" in THOUGHT_RECORD.source


def test_behavioural_activation_plans_an_activity() -> None:
    assert BEHAVIOURAL_ACTIVATION.slots == (
        "life_area",
        "activity",
        "when",
        "predicted_enjoyment",
        "predicted_achievement",
    )
    scales = {s.slot: s.scale for s in BEHAVIOURAL_ACTIVATION.steps if s.scale}
    assert scales == {"predicted_enjoyment": (0, 10), "predicted_achievement": (0, 10)}
    assert "Martell" in BEHAVIOURAL_ACTIVATION.source and "NG222" in BEHAVIOURAL_ACTIVATION.source


def test_breathing_gives_only_the_counts_the_nhs_page_gives() -> None:
    numbers = set(re.findall(r"\d+", " ".join(texts(BREATHING))))
    assert numbers == {"1", "3", "5"}  # count 1 to 5; keep going 3 to 5 minutes
    text = " ".join(texts(BREATHING)).casefold()
    assert "hold" not in text.replace("without pausing or holding", "")
    assert "nhs.uk" in BREATHING.source


def test_grounding_counts_down_the_senses() -> None:
    assert GROUNDING.slots == ("see", "touch", "hear", "smell", "taste", "afterwards")
    prompts = {s.slot: s.prompt for s in GROUNDING.steps}
    assert [prompts[k][:6] for k in ("see", "touch", "hear", "smell", "taste")] == [
        "Name 5",
        "Name 4",
        "Name 3",
        "Name 2",
        "Name 1",
    ]


FORBIDDEN = re.compile(
    r"\b(medic\w*|antidepress\w*|tablet\w*|pills?|dos(e|es|age)|drugs?|ssri\w*|prescri\w*|diet\w*|"
    r"weight|calori\w*|eat\w*|food\w*|meals?|snack\w*|fasting|bmi|caffeine|alcohol|nicotine)\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize("exercise", EXERCISES, ids=CODES)
def test_no_medication_diet_or_weight_advice(exercise: Exercise) -> None:
    for text in texts(exercise):
        assert not FORBIDDEN.search(text), text


@pytest.mark.parametrize(
    "exercise", [e for e in EXERCISES if e.kind == "psychoeducation"], ids=lambda e: e.code
)
def test_psychoeducation_is_short_and_cites_the_nhs(exercise: Exercise) -> None:
    assert "NHS" in exercise.source and "https://" in exercise.source
    assert sum(len(s.prompt.split()) for s in exercise.steps) <= 120


# --- ranking: a table ---------------------------------------------------------------------------


def test_nothing_known_keeps_catalogue_order_with_a_reason_each() -> None:
    result = suggest(phq9=None, gad7=None, goals=[], history={})
    assert [s.exercise.code for s in result] == CODES
    assert all(s.reasons and s.score == 0 for s in result)


def test_high_anxiety_puts_breathing_and_grounding_first() -> None:
    result = suggest(phq9=None, gad7=15, goals=[], history={})
    assert [s.exercise.code for s in result[:2]] == ["breathing", "grounding"]
    assert "GAD-7 score of 15 suggests anxiety is high" in result[0].reason
    assert "in the moment" in result[0].reason and "in the moment" in result[1].reason


def test_depression_puts_behavioural_activation_first_citing_ng222() -> None:
    result = suggest(phq9=16, gad7=None, goals=[], history={})
    assert [s.exercise.code for s in result[:2]] == ["behavioural-activation", "thought-record"]
    assert "NG222" in result[0].reason and "PHQ-9 score of 16" in result[0].reason


def test_mild_scores_still_count() -> None:
    assert order(phq9=6, gad7=None, goals=[], history={})[0] == "behavioural-activation"
    assert suggest(phq9=6, gad7=None, goals=[], history={})[0].reason.count("mildly low") == 1
    assert order(phq9=4, gad7=4, goals=[], history={}) == CODES  # minimal: no clinical weight


@pytest.mark.parametrize(
    ("goal", "first"),
    [
        ("I want to sleep better", "about-sleep"),
        ("Feel more relaxed", "breathing"),
        ("feel less overwhelmed", "grounding"),
        ("get out of bed and see friends", "behavioural-activation"),
        ("be less self-critical", "thought-record"),
        ("Understand what CBT is", "about-cbt"),
    ],
)
def test_goals_lift_the_exercises_they_name(goal: str, first: str) -> None:
    result = suggest(phq9=None, gad7=None, goals=["", goal], history={})
    assert result[0].exercise.code == first
    assert f'It fits your goal "{goal}".' in result[0].reasons


def test_completed_and_helpful_rises_with_its_reason() -> None:
    history = {"behavioural-activation": Engagement(started=2, completed=2, helpfulness=8.0)}
    result = suggest(phq9=None, gad7=15, goals=[], history=history)
    ba = next(s for s in result if s.exercise.code == "behavioural-activation")
    assert "You completed behavioural activation twice and rated it helpful (8/10 on average)." in ba.reasons
    assert order(phq9=None, gad7=None, goals=[], history=history)[0] == "behavioural-activation"


def test_unhelpful_and_abandoned_sink() -> None:
    history = {
        "breathing": Engagement(started=1, completed=1, helpfulness=2.0),
        "grounding": Engagement(started=4, completed=1),
    }
    before = {s.exercise.code: s.score for s in suggest(phq9=None, gad7=15, goals=[], history={})}
    result = suggest(phq9=None, gad7=15, goals=[], history=history)
    after = {s.exercise.code: s for s in result}
    assert after["breathing"].score == before["breathing"] - 3
    assert after["grounding"].score == before["grounding"] - 2
    assert [s.exercise.code for s in result].index("breathing") >= 2  # first without the history
    assert (
        "You started grounding 4 times but finished it only once, so it is lower down."
        in after["grounding"].reasons
    )
    assert (
        "You rated the breathing exercise as not very helpful (2/10), so it is lower down."
        in after["breathing"].reasons
    )
    # with nothing else to go on, both fall below the exercises not yet tried
    assert order(phq9=None, gad7=None, goals=[], history=history)[-2:] == ["grounding", "breathing"]


def test_psychoeducation_already_read_sinks() -> None:
    history = {"about-sleep": Engagement(started=1, completed=1)}
    codes = order(phq9=None, gad7=None, goals=["sleep"], history=history)
    assert codes[-1] == "about-sleep"


def test_the_most_recent_exercise_gives_way() -> None:
    history = {
        "behavioural-activation": Engagement(2, 2, 9.0, last_done=T0),
        "thought-record": Engagement(1, 1, 7.0, last_done=T0 - timedelta(days=2)),
    }
    result = suggest(phq9=16, gad7=None, goals=[], history=history)
    assert [s.exercise.code for s in result[:2]] == ["thought-record", "behavioural-activation"]
    assert "most recently" in result[1].reason
    # the next time, after the thought record, behavioural activation is first again
    history["thought-record"] = Engagement(2, 2, 7.0, last_done=T0 + timedelta(days=1))
    assert order(phq9=16, gad7=None, goals=[], history=history)[0] == "behavioural-activation"


def test_naive_and_aware_times_compare() -> None:
    history = {
        "breathing": Engagement(1, 1, 8.0, last_done=datetime(2026, 3, 2, 9, 0)),
        "grounding": Engagement(1, 1, 8.0, last_done=T0),
    }
    assert order(phq9=None, gad7=15, goals=[], history=history)[0] == "grounding"


@pytest.mark.parametrize(("phq9", "gad7"), [(-1, None), (28, None), (None, -1), (None, 22)])
def test_scores_out_of_range_are_refused(phq9: int | None, gad7: int | None) -> None:
    with pytest.raises(ValueError, match="total"):
        suggest(phq9=phq9, gad7=gad7, goals=[], history={})


@pytest.mark.parametrize(
    "kwargs", [{"started": -1}, {"completed": -1}, {"helpfulness": 10.5}, {"helpfulness": -0.1}]
)
def test_engagement_is_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Engagement(**kwargs)  # type: ignore[arg-type]  # floats for counts: checked at run time too


def test_unknown_history_codes_are_ignored() -> None:
    history = {"retired-exercise": Engagement(1, 1, 9.0, last_done=T0)}
    assert order(phq9=None, gad7=None, goals=[], history=history) == CODES


# --- ranking: properties ------------------------------------------------------------------------

times = st.one_of(st.none(), st.integers(0, 60).map(lambda d: T0 + timedelta(days=d)))
engagements = st.builds(
    Engagement,
    started=st.integers(0, 20),
    completed=st.integers(0, 20),
    helpfulness=st.one_of(st.none(), st.floats(0, 10)),
    last_done=times,
)
Inputs = tuple[int | None, int | None, list[str], dict[str, Engagement]]
inputs = st.tuples(
    st.one_of(st.none(), st.integers(0, 27)),
    st.one_of(st.none(), st.integers(0, 21)),
    st.lists(st.text(max_size=80), max_size=4),
    st.dictionaries(st.sampled_from(CODES), engagements),
)


@given(inputs)
def test_deterministic_complete_and_explained(case: Inputs) -> None:
    phq9, gad7, goals, history = case
    first = suggest(phq9=phq9, gad7=gad7, goals=goals, history=history)
    assert first == suggest(phq9=phq9, gad7=gad7, goals=goals, history=history)
    assert sorted(s.exercise.code for s in first) == sorted(CODES)
    for s in first:
        assert s.reasons and all(r.strip() for r in s.reasons)


@given(inputs)
def test_the_most_recent_is_never_first(case: Inputs) -> None:
    phq9, gad7, goals, history = case
    done = {c: e.last_done for c, e in history.items() if e.last_done is not None}
    result = suggest(phq9=phq9, gad7=gad7, goals=goals, history=history)
    if done:
        latest = max(done.values())
        if len([c for c, t in done.items() if t == latest]) < len(CODES):
            assert done.get(result[0].exercise.code) != latest
