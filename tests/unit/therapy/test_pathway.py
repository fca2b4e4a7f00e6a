"""NICE stepped care: one case per rule with its step and source, properties over all inputs, overrides."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medweave.therapy.pathway import (
    CSSRS_LEVELS,
    DEPRESSION_LESS_SEVERE,
    DEPRESSION_MORE_SEVERE,
    GAD_HIGH_INTENSITY,
    GAD_LOW_INTENSITY,
    PREFERENCES,
    RULES,
    STEP_INTERVENTIONS,
    STEP_LABELS,
    TEXT_RISK_LEVELS,
    InvalidDecision,
    InvalidPathwayInput,
    PathwayInput,
    Recommendation,
    confirm,
    override,
    recommend,
)

AT = datetime(2025, 3, 4, 10, 30, tzinfo=UTC)

# (inputs, expected step, the rule that must fire, words its source must cite)
CASES: list[tuple[PathwayInput, int, str, str]] = [
    (PathwayInput(phq9=4, gad7=3, cssrs="high"), 4, "RISK-HIGH", "NG222 1.2.9"),
    (PathwayInput(phq9=2, text_risk="high"), 4, "RISK-HIGH", "C-SSRS"),
    (PathwayInput(phq9=3, gad7=2, cssrs="moderate"), 3, "RISK-MODERATE", "NG222 1.2.8"),
    (PathwayInput(gad7=4, text_risk="ideation"), 3, "RISK-MODERATE", "Medweave service choice"),
    (PathwayInput(phq9=6, phq9_item9=1), 1, "RISK-REVIEW", "Kroenke 2001"),
    (PathwayInput(phq9=12, cssrs="low"), 2, "RISK-REVIEW", "NG222 1.2.8"),
    (PathwayInput(gad7=3, text_risk="concern"), 1, "RISK-REVIEW", "NG225"),
    (PathwayInput(), 1, "NO-SCORES", "CG123 step 1"),
    (PathwayInput(phq9=4), 1, "PHQ9-MINIMAL", "Kroenke 2001"),
    (PathwayInput(phq9=7), 1, "PHQ9-SUBTHRESHOLD-NEW", "NG222 1.5.1"),
    (
        PathwayInput(phq9=7, current_step=1, sessions_at_step=1),
        2,
        "PHQ9-SUBTHRESHOLD-PERSISTENT",
        "CG123 step 2",
    ),
    (PathwayInput(phq9=10), 2, "PHQ9-LESS-SEVERE", "NG222 1.5.2 / Table 1"),
    (PathwayInput(phq9=15, gad7=4), 2, "PHQ9-LESS-SEVERE", "below 16"),
    (PathwayInput(phq9=16), 3, "PHQ9-MORE-SEVERE", "NG222 1.6.1 / Table 2"),
    (PathwayInput(phq9=27), 3, "PHQ9-MORE-SEVERE", "16 or more"),
    (PathwayInput(gad7=9), 1, "GAD7-BELOW-CUTPOINT", "Spitzer 2006"),
    (PathwayInput(gad7=12), 1, "GAD7-PROBABLE-NEW", "CG113 step 1"),
    (PathwayInput(gad7=12, current_step=1), 2, "GAD7-PROBABLE-PERSISTENT", "CG113 1.2.11"),
    (PathwayInput(gad7=15), 3, "GAD7-SEVERE-OR-IMPAIRED", "CG113 step 3"),
    (PathwayInput(gad7=10, marked_functional_impairment=True), 3, "GAD7-SEVERE-OR-IMPAIRED", "CG113"),
    (PathwayInput(phq9=12, gad7=11), 2, "COMORBID", "CG113 step 1"),
    (
        PathwayInput(phq9=14, current_step=2, sessions_at_step=6),
        2,
        "STEP-UP-REVIEW",
        "NG222 1.9.1",
    ),
    (PathwayInput(phq9=3, current_step=3), 3, "NO-STEP-DOWN", "Medweave pathway policy"),
    (PathwayInput(phq9=12, preferences=("prefers_group",)), 2, "PREFERENCES", "NG222 1.5.2"),
]


@pytest.mark.parametrize(
    ("data", "step", "rule_id", "cited"), CASES, ids=[f"{c[2]}-{i}" for i, c in enumerate(CASES)]
)
def test_each_rule(data: PathwayInput, step: int, rule_id: str, cited: str) -> None:
    rec = recommend(data)
    assert rec.step == step
    assert rec.label == STEP_LABELS[step]
    fired = {r["id"]: r for r in json.loads(json.dumps(rec.as_json()))["rules"]}
    assert rule_id in fired
    assert fired[rule_id]["source"] == RULES[rule_id].source
    assert cited in fired[rule_id]["source"]
    assert fired[rule_id]["text"] == RULES[rule_id].text


def test_every_rule_has_a_case_and_a_source() -> None:
    assert {c[2] for c in CASES} == set(RULES)
    for rule in RULES.values():
        assert rule.id and rule.text.strip() and rule.source.strip()


def test_high_risk_actions_and_crisis_interventions() -> None:
    rec = recommend(PathwayInput(phq9=20, gad7=18, cssrs="high", text_risk="ideation"))
    assert rec.step == 4
    assert any("same-day" in a for a in rec.actions)
    assert any("safety" in a for a in rec.actions)
    assert "crisis resolution and home treatment" in rec.interventions
    assert [r.id for r in rec.rules].count("RISK-MODERATE") == 0  # the highest risk rule speaks


def test_moderate_risk_needs_an_urgent_review_and_never_lowers_a_higher_step() -> None:
    rec = recommend(PathwayInput(phq9=5, cssrs="moderate"))
    assert rec.step == 3
    assert any("urgent clinician risk review" in a for a in rec.actions)
    assert rec.interventions == STEP_INTERVENTIONS[3]  # no severity rule at step 3: the defaults
    assert recommend(PathwayInput(phq9=5, cssrs="moderate", current_step=4)).step == 4


def test_low_risk_signals_add_a_review_but_no_step() -> None:
    base = recommend(PathwayInput(phq9=8, gad7=6))
    for signal in (
        PathwayInput(phq9=8, gad7=6, phq9_item9=2),
        PathwayInput(phq9=8, gad7=6, cssrs="low"),
        PathwayInput(phq9=8, gad7=6, text_risk="concern"),
    ):
        rec = recommend(signal)
        assert rec.step == base.step
        assert "RISK-REVIEW" in {r.id for r in rec.rules}
        assert any("risk review" in a for a in rec.actions)
    for quiet in (PathwayInput(phq9=8, gad7=6, cssrs="none", text_risk="none", phq9_item9=0),):
        assert "RISK-REVIEW" not in {r.id for r in recommend(quiet).rules}


def test_interventions_follow_the_condition() -> None:
    assert recommend(PathwayInput(phq9=12)).interventions == DEPRESSION_LESS_SEVERE
    assert recommend(PathwayInput(phq9=19)).interventions == DEPRESSION_MORE_SEVERE
    assert recommend(PathwayInput(gad7=12, current_step=1)).interventions == GAD_LOW_INTENSITY
    assert recommend(PathwayInput(gad7=17)).interventions == GAD_HIGH_INTENSITY
    both = recommend(PathwayInput(phq9=18, gad7=17)).interventions
    assert set(both) == set(DEPRESSION_MORE_SEVERE) | set(GAD_HIGH_INTENSITY)
    assert len(both) == len(set(both))
    # The step is set by the anxiety rule, so only its interventions are offered.
    assert recommend(PathwayInput(phq9=12, gad7=16)).interventions == GAD_HIGH_INTENSITY
    assert recommend(PathwayInput()).interventions == STEP_INTERVENTIONS[1]
    assert "complete a PHQ-9 and a GAD-7" in recommend(PathwayInput()).actions


def test_preferences_shape_options_not_the_step() -> None:
    plain = recommend(PathwayInput(phq9=18))
    no_meds = recommend(PathwayInput(phq9=18, preferences=("declines_medication",)))
    assert no_meds.step == plain.step == 3
    assert not any("antidepressant" in i or "medication" in i for i in no_meds.interventions)
    assert (
        "drug treatment"
        not in recommend(PathwayInput(gad7=16, preferences=("declines_medication",))).interventions
    )
    group = recommend(PathwayInput(phq9=11, preferences=("prefers_group",))).interventions
    assert all("group" in i for i in group[:4]) and "group" not in group[-1]
    individual = recommend(PathwayInput(phq9=18, preferences=("prefers_individual",))).interventions
    assert individual[0].startswith("individual")
    declines = recommend(PathwayInput(phq9=8, preferences=("declines_treatment",)))
    assert declines.step == 1 and any("2 to 4 weeks" in a for a in declines.actions)
    severe = recommend(PathwayInput(phq9=22, preferences=("declines_treatment",)))
    assert severe.step == 3 and not any("2 to 4 weeks" in a for a in severe.actions)


def test_step_up_review() -> None:
    due = recommend(PathwayInput(phq9=14, gad7=9, current_step=2, sessions_at_step=6))
    assert due.step_up_review and due.step == 2  # flagged, never raised automatically
    assert any("consider step 3" in a for a in due.actions)
    at3 = recommend(PathwayInput(phq9=18, current_step=3, sessions_at_step=8))
    assert at3.step_up_review and any("consider step 4" in a for a in at3.actions)
    not_yet = PathwayInput(phq9=14, current_step=2, sessions_at_step=5)
    assert not recommend(not_yet).step_up_review
    assert recommend(not_yet, review_after_sessions=4).step_up_review  # service-configurable
    improved = PathwayInput(phq9=14, current_step=2, sessions_at_step=9, reliable_improvement=True)
    assert not recommend(improved).step_up_review
    recovered = PathwayInput(phq9=7, gad7=5, current_step=3, sessions_at_step=9)
    assert not recommend(recovered).step_up_review  # below both caseness cut-offs
    assert recommend(PathwayInput(current_step=2, sessions_at_step=6)).step_up_review  # no scores: unknown
    stepped = recommend(PathwayInput(phq9=17, current_step=2, sessions_at_step=8))
    assert stepped.step == 3 and not stepped.step_up_review
    for step in (1, 4):
        assert not recommend(PathwayInput(phq9=20, current_step=step, sessions_at_step=12)).step_up_review
    with pytest.raises(InvalidPathwayInput):
        recommend(not_yet, review_after_sessions=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"phq9": 28},
        {"phq9": -1},
        {"gad7": 22},
        {"phq9": True},
        {"phq9": 5.0},
        {"phq9_item9": 4},
        {"phq9": 1, "phq9_item9": 2},
        {"cssrs": "severe"},
        {"text_risk": "moderate"},
        {"current_step": 0},
        {"current_step": 5},
        {"sessions_at_step": -1},
        {"sessions_at_step": 3},
        {"reliable_improvement": 1},
        {"preferences": ("wants_pills",)},
        {"preferences": ["prefers_group"]},
        {"preferences": ("prefers_group", "prefers_individual")},
    ],
)
def test_invalid_input(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidPathwayInput):
        PathwayInput(**kwargs)  # type: ignore[arg-type]


def test_as_json() -> None:
    rec = recommend(PathwayInput(phq9=17, gad7=12, phq9_item9=1, current_step=2, sessions_at_step=7))
    got = json.loads(json.dumps(rec.as_json()))
    assert got["step"] == 3 and got["step_up_review"] is False  # the scores already step up
    assert set(got) == {"step", "label", "interventions", "rules", "actions", "step_up_review"}
    assert all(set(r) == {"id", "text", "source"} for r in got["rules"])


def test_override_validation_and_record() -> None:
    rec = recommend(PathwayInput(phq9=18))
    decision = override(
        rec, chosen_step=2, reason="Prefers group CBT; agreed review in 4 weeks.", clinician="dr-a", at=AT
    )
    assert (decision.recommended_step, decision.chosen_step, decision.overridden) == (3, 2, True)
    assert decision.reason.startswith("Prefers group") and decision.clinician == "dr-a"
    assert decision.decided_at == AT and "PHQ9-MORE-SEVERE" in decision.rule_ids
    assert not decision.below_risk_floor
    assert decision.as_json()["decided_at"] == "2025-03-04T10:30:00+00:00"
    for bad in (
        {"chosen_step": 3, "reason": "same step"},
        {"chosen_step": 2, "reason": "   "},
        {"chosen_step": 2, "reason": ""},
        {"chosen_step": 5, "reason": "out of range"},
        {"chosen_step": 0, "reason": "out of range"},
    ):
        with pytest.raises(InvalidDecision):
            override(rec, clinician="dr-a", at=AT, **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidDecision):
        override(rec, chosen_step=2, reason="ok", clinician=" ", at=AT)
    with pytest.raises(InvalidDecision):
        override(rec, chosen_step=2, reason="ok", clinician="dr-a", at=datetime(2025, 3, 4))  # naive


def test_override_below_a_risk_floor_is_marked() -> None:
    high = recommend(PathwayInput(phq9=9, cssrs="high"))
    assert override(
        high, chosen_step=3, reason="Seen today by crisis team.", clinician="dr-b", at=AT
    ).below_risk_floor
    moderate = recommend(PathwayInput(phq9=9, text_risk="ideation"))
    assert override(
        moderate, chosen_step=2, reason="Reviewed; passive thoughts.", clinician="dr-b", at=AT
    ).below_risk_floor
    assert not override(moderate, chosen_step=4, reason="Escalate.", clinician="dr-b", at=AT).below_risk_floor


def test_confirm() -> None:
    rec = recommend(PathwayInput(gad7=16))
    decision = confirm(rec, clinician="dr-c", at=AT)
    assert (decision.recommended_step, decision.chosen_step, decision.overridden, decision.reason) == (
        3,
        3,
        False,
        "",
    )
    with pytest.raises(InvalidDecision):
        confirm(rec, clinician="", at=AT)


# Property tests over every kind of input.

levels = st.none() | st.sampled_from(CSSRS_LEVELS)
text_levels = st.none() | st.sampled_from(TEXT_RISK_LEVELS)
steps = st.none() | st.integers(1, 4)
prefs = st.sampled_from(
    [(), ("declines_medication",), ("prefers_group",), ("prefers_individual", "declines_treatment")]
)


@st.composite
def inputs(draw: st.DrawFn) -> PathwayInput:
    phq9 = draw(st.none() | st.integers(0, 27))
    item9 = draw(st.none() | st.integers(0, min(3, phq9 if phq9 is not None else 3)))
    current = draw(steps)
    return PathwayInput(
        phq9=phq9,
        gad7=draw(st.none() | st.integers(0, 21)),
        phq9_item9=item9,
        cssrs=draw(levels),
        text_risk=draw(text_levels),
        current_step=current,
        sessions_at_step=0 if current is None else draw(st.integers(0, 30)),
        reliable_improvement=draw(st.booleans()),
        marked_functional_impairment=draw(st.booleans()),
        preferences=draw(prefs),
    )


def _with(data: PathwayInput, **changes: object) -> PathwayInput:
    values = {name: getattr(data, name) for name in PathwayInput.__dataclass_fields__}
    values.update(changes)
    return PathwayInput(**values)


def _well_formed(rec: Recommendation) -> None:
    assert rec.step in (1, 2, 3, 4) and rec.label == STEP_LABELS[rec.step]
    assert rec.rules and all(r.source.strip() and r.text.strip() for r in rec.rules)
    assert all(r == RULES[r.id] for r in rec.rules)
    assert rec.interventions and len(set(rec.interventions)) == len(rec.interventions)
    assert rec.step_up_review == ("STEP-UP-REVIEW" in {r.id for r in rec.rules})


@settings(max_examples=400, deadline=None)
@given(inputs(), st.sampled_from(["cssrs", "text_risk"]))
def test_high_risk_always_gives_step_4(data: PathwayInput, field: str) -> None:
    rec = recommend(_with(data, **{field: "high"}))
    assert rec.step == 4 and "RISK-HIGH" in {r.id for r in rec.rules}
    _well_formed(rec)


@settings(max_examples=300, deadline=None)
@given(inputs())
def test_step_is_monotone_in_phq9(data: PathwayInput) -> None:
    low = data.phq9_item9 or 0
    got = [recommend(_with(data, phq9=total)).step for total in range(low, 28)]
    assert got == sorted(got)


@settings(max_examples=300, deadline=None)
@given(inputs())
def test_step_is_monotone_in_gad7(data: PathwayInput) -> None:
    got = [recommend(_with(data, gad7=total)).step for total in range(22)]
    assert got == sorted(got)


@settings(max_examples=500, deadline=None)
@given(inputs())
def test_never_below_the_current_step_and_always_explained(data: PathwayInput) -> None:
    rec = recommend(data)
    assert data.current_step is None or rec.step >= data.current_step
    _well_formed(rec)


@settings(max_examples=300, deadline=None)
@given(inputs(), st.sampled_from(["low", "moderate", "high"]))
def test_risk_never_lowers_the_step(data: PathwayInput, level: str) -> None:
    quiet = recommend(_with(data, cssrs="none", text_risk="none", phq9_item9=None))
    assert recommend(_with(data, cssrs=level)).step >= quiet.step
    assert recommend(_with(data, cssrs=level, text_risk="none", phq9_item9=None)).step >= quiet.step
    if level != "low":
        assert recommend(_with(data, cssrs=level)).step >= 3


@settings(max_examples=200, deadline=None)
@given(inputs(), st.sampled_from(PREFERENCES))
def test_preferences_never_change_the_step(data: PathwayInput, pref: str) -> None:
    plain = recommend(_with(data, preferences=()))
    assert recommend(_with(data, preferences=(pref,))).step == plain.step


def test_persistent_symptoms_at_a_first_assessment_step_up_like_at_a_review() -> None:
    from medweave.therapy.pathway import PathwayInput, recommend

    assert recommend(PathwayInput(phq9=7)).step == 1  # subthreshold, first seen: active monitoring
    persisting = recommend(PathwayInput(phq9=7, persistent=True))
    assert persisting.step == 2 and "PHQ9-SUBTHRESHOLD-PERSISTENT" in [r.id for r in persisting.rules]
    assert recommend(PathwayInput(gad7=12, persistent=True)).step == 2
