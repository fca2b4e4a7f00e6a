"""NICE stepped care as a rule engine: the step of care that scores and risk point to, and why. Pure.

The engine **recommends**; a clinician confirms or overrides (``confirm``/``override`` below build
the record of that decision; storing it is elsewhere). Every rule that fires is returned with its
plain-language statement and its source, so the clinician sees why.

Sources:

- **NICE CG123** (2011), Common mental health problems: identification and pathways to care. The
  four-step model: step 1 identification, assessment, psychoeducation and active monitoring;
  step 2 low-intensity psychological care; step 3 high-intensity care, with or without medication;
  step 4 specialist or crisis services. Cited by section, not recommendation number: the numbers
  could not be checked against the published text.
- **NICE NG222** (2022), Depression in adults: treatment and management. "Less severe" depression
  (subthreshold and mild) is a PHQ-9 total below 16; "more severe" (moderate and severe) is 16 or
  more ("Definitions of depression and severity"). 1.2.8: ask directly about suicidal ideation and
  intent and arrange help appropriate to the level of need; 1.2.9: refer a person at considerable
  immediate risk urgently to specialist mental health services; 1.5.1: active monitoring, with a
  further assessment normally within 2 to 4 weeks; 1.5.2 and Table 1: treatments for less severe
  depression, least intrusive first (guided self-help); 1.5.3: no antidepressant first-line for
  less severe depression unless the person prefers it; 1.6.1 and Table 2: treatments for more
  severe depression; 1.9.1: review when there is no response after 4 to 6 weeks of psychological
  therapy; 1.16.9: specialist care for more severe depression that has not benefited from
  treatment; 1.16.11: crisis resolution and home treatment for significant risk of suicide.
- **NICE CG113** (2011), Generalised anxiety disorder and panic disorder in adults. Step 1:
  education and active monitoring, and with a comorbid disorder, treat the primary (more severe)
  one first; step 2 (1.2.11): low-intensity interventions for GAD not improved after step 1;
  step 3: a high-intensity psychological intervention (CBT or applied relaxation) or drug
  treatment for GAD with marked functional impairment or not improved after step 2; step 4:
  specialist care for treatment-refractory GAD, very marked impairment or high risk of self-harm.
- **NICE NG225** (2022), Self-harm: "Risk assessment tools and scales": a risk level must not be
  used to predict suicide or to decide who is not offered care. Here risk levels only ever raise
  the step; "none" or "low" never lowers one or withholds anything.
- Cut-points: PHQ-9 bands from Kroenke et al. 2001 (5 mild, 10 moderate); GAD-7 bands and the
  cut-point of 10 for probable GAD from Spitzer et al. 2006 (15 severe). Reliable improvement as
  NHS Talking Therapies defines it (``outcomes.py``).
- C-SSRS screener triage (``cssrs.py``): "high" needs an immediate referral and safety precautions.

How it decides: every rule whose condition holds fires (see ``RULES`` for the table). A rule may
ask for a step; the recommendation is the highest step asked for, so a risk rule can only raise
it. The interventions are those of the rules at that step (or the step's defaults), filtered and
ordered by the person's preferences, which never change the step. ``current_step`` None means a
first assessment; any other value means the person is already on the pathway and is being
reviewed, so scores that persist in the mild range step up as CG123 and CG113 describe. How long
symptoms have lasted is the clinician's judgement (``persistent``): persistent symptoms at a
first assessment are treated as at a review.

Service choices, labelled as such in the rules: "moderate" risk or free-text ideation sets step 3
as a floor (high-intensity care from a qualified therapist, with an urgent clinician risk review);
GAD-7 15 or more stands in for CG113's "marked functional impairment" (which can also be given
directly); a step-up review is due after ``REVIEW_AFTER_SESSIONS`` sessions (default 6, roughly
the upper end of NG222 1.9.1's 4 to 6 weeks of weekly therapy; a service sets its own); the step
is never below the patient's current step, because stepping down is the clinician's decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from medweave.therapy.outcomes import GAD7_CASENESS, PHQ9_CASENESS

PHQ9_MAX, GAD7_MAX, ITEM_MAX = 27, 21, 3
PHQ9_MILD, PHQ9_MODERATE, PHQ9_MORE_SEVERE = 5, 10, 16  # Kroenke 2001; NG222 "more severe" at 16
GAD7_MILD, GAD7_PROBABLE, GAD7_SEVERE = 5, 10, 15  # Spitzer 2006
REVIEW_AFTER_SESSIONS = 6  # service-configurable default; see the module docstring
STEPS = (1, 2, 3, 4)
CSSRS_LEVELS = ("none", "low", "moderate", "high")
TEXT_RISK_LEVELS = ("none", "concern", "ideation", "high")
PREFERENCES = ("declines_medication", "declines_treatment", "prefers_group", "prefers_individual")

STEP_LABELS = {
    1: "Step 1: assessment, psychoeducation and active monitoring",
    2: "Step 2: low-intensity psychological care",
    3: "Step 3: high-intensity psychological care, with or without medication",
    4: "Step 4: specialist or crisis mental health services",
}
MEDICATION = "medication, alone or with a psychological therapy"
STEP_INTERVENTIONS: dict[int, tuple[str, ...]] = {
    1: ("assessment", "psychoeducation", "active monitoring"),
    2: ("guided self-help", "computerised CBT", "group CBT", "group behavioural activation"),
    3: (
        "individual CBT",
        "individual behavioural activation",
        "interpersonal psychotherapy (IPT)",
        "counselling",
        MEDICATION,
    ),
    4: ("specialist mental health services", "crisis resolution and home treatment"),
}
# NG222 Table 1, the lower-intensity options in its order (least intrusive first, 1.5.2).
DEPRESSION_LESS_SEVERE = (
    "guided self-help (printed or digital, such as computerised CBT)",
    "group CBT",
    "group behavioural activation",
    "group exercise",
    "group mindfulness and meditation",
)
# NG222 Table 2, in its order.
DEPRESSION_MORE_SEVERE = (
    "individual CBT combined with an antidepressant",
    "individual CBT",
    "individual behavioural activation",
    "antidepressant medication",
    "individual problem solving",
    "counselling",
    "short-term psychodynamic psychotherapy",
    "interpersonal psychotherapy (IPT)",
)
GAD_LOW_INTENSITY = (
    "individual non-facilitated self-help",
    "individual guided self-help",
    "psychoeducational groups",
)
GAD_HIGH_INTENSITY = ("individual CBT", "applied relaxation", "drug treatment")
MEDICATION_OPTIONS = frozenset(
    {
        MEDICATION,
        "individual CBT combined with an antidepressant",
        "antidepressant medication",
        "drug treatment",
    }
)
CRISIS = (
    "same-day urgent referral to crisis or specialist mental health services",
    "crisis resolution and home treatment",
)

HIGH_RISK_ACTIONS = (
    "same-day urgent referral to crisis or specialist mental health services",
    "safety precautions and a safety plan",
    "ask directly about suicidal ideation and intent",
)
MODERATE_RISK_ACTIONS = ("urgent clinician risk review: ask directly about suicidal ideation and intent",)


class InvalidPathwayInput(ValueError):
    """Inputs out of range, of the wrong type, or inconsistent with each other."""


class InvalidDecision(ValueError):
    """A clinician's decision that cannot be recorded: no reason, same step, step out of range."""


@dataclass(frozen=True)
class Rule:
    id: str
    text: str  # plain language, for the clinician
    source: str  # guideline and recommendation or section

    def as_json(self) -> dict[str, str]:
        return {"id": self.id, "text": self.text, "source": self.source}


_RULE_TABLE = (
    (
        "RISK-HIGH",
        "High suicide risk (C-SSRS high, or high risk in the person's own words): step 4. Refer "
        "urgently, the same day, to crisis or specialist mental health services, with safety "
        "precautions.",
        "NICE NG222 1.2.9 and 1.16.11; NICE CG113 step 4 (high risk of self-harm); C-SSRS screener "
        "triage (Posner 2011): high needs an immediate referral",
    ),
    (
        "RISK-MODERATE",
        "Suicidal ideation (C-SSRS moderate, or ideation in the person's own words): at least step 3, "
        "and an urgent clinician risk review. The step 3 floor is a conservative Medweave service "
        "choice.",
        "NICE NG222 1.2.8 (ask directly about ideation and intent; arrange help appropriate to the "
        "level of need); C-SSRS screener triage (Posner 2011); Medweave service choice (step 3 floor)",
    ),
    (
        "RISK-REVIEW",
        "A possible risk signal (PHQ-9 item 9 answered 1 or more, C-SSRS low, or a concern in the "
        "person's own words): a clinician asks directly about suicidal ideation and intent. This "
        "never lowers the step.",
        "NICE NG222 1.2.8; PHQ-9 item 9 (Kroenke 2001); NICE NG225 'Risk assessment tools and scales'",
    ),
    (
        "NO-SCORES",
        "No PHQ-9 or GAD-7 yet: step 1. Assess, starting with the PHQ-9 and GAD-7.",
        "NICE CG123 step 1 (identification and assessment); NICE NG222 1.2 (recognition and assessment)",
    ),
    (
        "PHQ9-MINIMAL",
        "PHQ-9 below 5 (minimal symptoms): step 1. Psychoeducation and active monitoring.",
        "PHQ-9 bands (Kroenke 2001); NICE CG123 step 1",
    ),
    (
        "PHQ9-SUBTHRESHOLD-NEW",
        "PHQ-9 5 to 9 (subthreshold or mild) at a first assessment: step 1. Active monitoring, and "
        "reassess normally within 2 to 4 weeks.",
        "NICE NG222 1.5.1; NICE CG123 step 1; PHQ-9 bands (Kroenke 2001)",
    ),
    (
        "PHQ9-SUBTHRESHOLD-PERSISTENT",
        "PHQ-9 5 to 9 persisting at a review: step 2. Low-intensity care for less severe "
        "depression, guided self-help first.",
        "NICE CG123 step 2 (persistent subthreshold depressive symptoms); NICE NG222 1.5.2 / Table 1",
    ),
    (
        "PHQ9-LESS-SEVERE",
        "PHQ-9 10 to 15 (less severe depression): step 2. Low-intensity or group care, guided "
        "self-help first; no antidepressant first-line unless the person prefers it.",
        "NICE NG222 1.5.2 / Table 1 and 1.5.3 (less severe: PHQ-9 below 16); NICE CG123 step 2",
    ),
    (
        "PHQ9-MORE-SEVERE",
        "PHQ-9 16 or more (more severe depression): step 3. High-intensity care, such as individual "
        "CBT or behavioural activation, with or without an antidepressant.",
        "NICE NG222 1.6.1 / Table 2 (more severe: PHQ-9 16 or more); NICE CG123 step 3",
    ),
    (
        "GAD7-BELOW-CUTPOINT",
        "GAD-7 below 10 (below the cut-point for probable GAD): step 1. Education and active monitoring.",
        "GAD-7 cut-point 10 (Spitzer 2006); NICE CG113 step 1",
    ),
    (
        "GAD7-PROBABLE-NEW",
        "GAD-7 10 to 14 (probable GAD) at a first assessment: step 1. Education about GAD and "
        "active monitoring; low-intensity care follows if it does not improve.",
        "NICE CG113 step 1; GAD-7 cut-point 10 (Spitzer 2006)",
    ),
    (
        "GAD7-PROBABLE-PERSISTENT",
        "GAD-7 10 to 14 not improved after step 1: step 2. Self-help (guided or not) or "
        "psychoeducational groups, by the person's preference.",
        "NICE CG113 1.2.11 (step 2)",
    ),
    (
        "GAD7-SEVERE-OR-IMPAIRED",
        "GAD-7 15 or more (severe), or probable GAD with marked functional impairment: step 3. CBT "
        "or applied relaxation, or drug treatment. GAD-7 15 standing in for marked impairment is a "
        "Medweave mapping.",
        "NICE CG113 step 3 (GAD with marked functional impairment or not improved after step 2); "
        "GAD-7 severe band (Spitzer 2006)",
    ),
    (
        "COMORBID",
        "Both depression and anxiety scores are in the clinical range: the clinician decides with "
        "the person which to treat first, usually the primary (more severe) one.",
        "NICE CG113 step 1 (treat the primary disorder first); NICE CG123 research recommendation "
        "on the order of treatment",
    ),
    (
        "STEP-UP-REVIEW",
        "At step 2 or 3 (and not already stepped up by the scores), no reliable improvement after the "
        "service's review point (default 6 sessions) and still in the clinical range: a step-up "
        "review. Discuss adherence and other reasons, then consider the next step; the step is not "
        "raised automatically.",
        "NICE NG222 1.9.1 (no response after 4 to 6 weeks of psychological therapy) and 1.16.9; "
        "NICE CG113 steps 3 and 4; reliable improvement per NHS Talking Therapies; the review "
        "point is service-configurable",
    ),
    (
        "NO-STEP-DOWN",
        "The recommendation is never below the current step: stepping down is the clinician's "
        "decision, recorded as an override.",
        "Medweave pathway policy (the engine only escalates; see override)",
    ),
    (
        "PREFERENCES",
        "The person's preferences shape the options offered (medication left out if declined; group "
        "or individual formats first); they do not change the step.",
        "NICE NG222 1.5.2, 1.5.3 and 1.6.1 (shared decision; the right to decline treatment)",
    ),
)
RULES = {rule_id: Rule(rule_id, text, source) for rule_id, text, source in _RULE_TABLE}


@dataclass(frozen=True)
class PathwayInput:
    phq9: int | None = None  # latest PHQ-9 total, 0-27
    gad7: int | None = None  # latest GAD-7 total, 0-21
    phq9_item9: int | None = None  # 0-3
    cssrs: str | None = None  # none, low, moderate, high (cssrs.py)
    text_risk: str | None = None  # none, concern, ideation, high
    current_step: int | None = None  # None: not yet on the pathway (a first assessment)
    sessions_at_step: int = 0  # treatment sessions at the current step
    reliable_improvement: bool = False  # since the start of the current step (outcomes.py)
    marked_functional_impairment: bool = False  # clinician-judged (CG113 step 3)
    preferences: tuple[str, ...] = ()  # from PREFERENCES
    persistent: bool = False  # clinician-judged: symptoms have lasted (CG123 "persistent")

    def __post_init__(self) -> None:
        for name, value, top in (("phq9", self.phq9, PHQ9_MAX), ("gad7", self.gad7, GAD7_MAX)):
            if value is not None and not _whole(value, 0, top):
                raise InvalidPathwayInput(f"{name} is a total from 0 to {top}")
        if self.phq9_item9 is not None:
            if not _whole(self.phq9_item9, 0, ITEM_MAX):
                raise InvalidPathwayInput("phq9_item9 is an answer from 0 to 3")
            if self.phq9 is not None and self.phq9_item9 > self.phq9:
                raise InvalidPathwayInput("phq9_item9 cannot exceed the PHQ-9 total")
        if self.cssrs is not None and self.cssrs not in CSSRS_LEVELS:
            raise InvalidPathwayInput(f"cssrs is one of {', '.join(CSSRS_LEVELS)}")
        if self.text_risk is not None and self.text_risk not in TEXT_RISK_LEVELS:
            raise InvalidPathwayInput(f"text_risk is one of {', '.join(TEXT_RISK_LEVELS)}")
        if self.current_step is not None and not _whole(self.current_step, 1, 4):
            raise InvalidPathwayInput("current_step is 1, 2, 3 or 4")
        if not _whole(self.sessions_at_step, 0, None):
            raise InvalidPathwayInput("sessions_at_step is a whole number, 0 or more")
        if self.current_step is None and self.sessions_at_step:
            raise InvalidPathwayInput("sessions at a step need a current step")
        for name in ("reliable_improvement", "marked_functional_impairment", "persistent"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidPathwayInput(f"{name} is true or false")
        if not isinstance(self.preferences, tuple) or any(p not in PREFERENCES for p in self.preferences):
            raise InvalidPathwayInput(f"preferences are a tuple of {', '.join(PREFERENCES)}")
        if {"prefers_group", "prefers_individual"} <= set(self.preferences):
            raise InvalidPathwayInput("prefers_group and prefers_individual contradict each other")


def _whole(value: object, low: int, high: int | None) -> bool:
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return value >= low and (high is None or value <= high)


@dataclass(frozen=True)
class Recommendation:
    step: int
    label: str
    interventions: tuple[str, ...]
    rules: tuple[Rule, ...]  # every rule that fired, in evaluation order
    actions: tuple[str, ...]
    step_up_review: bool

    def as_json(self) -> dict[str, object]:
        return {
            "step": self.step,
            "label": self.label,
            "interventions": list(self.interventions),
            "rules": [r.as_json() for r in self.rules],
            "actions": list(self.actions),
            "step_up_review": self.step_up_review,
        }


@dataclass(frozen=True)
class _Fired:
    rule: Rule
    step: int | None = None  # the step this rule asks for (a floor); None: no step of its own
    interventions: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()


def _risk(data: PathwayInput) -> list[_Fired]:
    if data.cssrs == "high" or data.text_risk == "high":
        return [_Fired(RULES["RISK-HIGH"], 4, CRISIS, HIGH_RISK_ACTIONS)]
    if data.cssrs == "moderate" or data.text_risk == "ideation":
        return [_Fired(RULES["RISK-MODERATE"], 3, (), MODERATE_RISK_ACTIONS)]
    if data.cssrs == "low" or data.text_risk == "concern" or (data.phq9_item9 or 0) >= 1:
        return [
            _Fired(RULES["RISK-REVIEW"], None, (), ("clinician risk review: ask about ideation and intent",))
        ]
    return []


def _depression(phq9: int, first: bool) -> _Fired:
    if phq9 < PHQ9_MILD:
        return _Fired(RULES["PHQ9-MINIMAL"], 1, STEP_INTERVENTIONS[1])
    if phq9 < PHQ9_MODERATE and first:
        return _Fired(
            RULES["PHQ9-SUBTHRESHOLD-NEW"],
            1,
            STEP_INTERVENTIONS[1],
            ("reassess normally within 2 to 4 weeks",),
        )
    if phq9 < PHQ9_MODERATE:
        return _Fired(RULES["PHQ9-SUBTHRESHOLD-PERSISTENT"], 2, DEPRESSION_LESS_SEVERE)
    if phq9 < PHQ9_MORE_SEVERE:
        return _Fired(RULES["PHQ9-LESS-SEVERE"], 2, DEPRESSION_LESS_SEVERE)
    return _Fired(RULES["PHQ9-MORE-SEVERE"], 3, DEPRESSION_MORE_SEVERE)


def _anxiety(gad7: int, first: bool, impaired: bool) -> _Fired:
    if gad7 >= GAD7_SEVERE or (gad7 >= GAD7_PROBABLE and impaired):
        return _Fired(RULES["GAD7-SEVERE-OR-IMPAIRED"], 3, GAD_HIGH_INTENSITY)
    if gad7 < GAD7_PROBABLE:
        return _Fired(RULES["GAD7-BELOW-CUTPOINT"], 1, STEP_INTERVENTIONS[1])
    if first:
        actions = ("education about GAD; reassess, and offer low-intensity care if it has not improved",)
        return _Fired(RULES["GAD7-PROBABLE-NEW"], 1, STEP_INTERVENTIONS[1], actions)
    return _Fired(RULES["GAD7-PROBABLE-PERSISTENT"], 2, GAD_LOW_INTENSITY)


def _still_a_case(data: PathwayInput) -> bool:
    """Whether the latest scores keep the person in the clinical range; unknown counts as yes."""
    if data.phq9 is None and data.gad7 is None:
        return True
    return (data.phq9 is not None and data.phq9 >= PHQ9_CASENESS) or (
        data.gad7 is not None and data.gad7 >= GAD7_CASENESS
    )


def _ordered(options: tuple[str, ...], preferences: tuple[str, ...]) -> tuple[str, ...]:
    if "declines_medication" in preferences:
        options = tuple(o for o in options if o not in MEDICATION_OPTIONS)
    if "prefers_group" in preferences:
        options = _first(options, "group")
    if "prefers_individual" in preferences:
        options = _first(options, "individual")
    return options


def _first(options: tuple[str, ...], word: str) -> tuple[str, ...]:
    """The options naming ``word`` first, each group keeping its order."""
    return tuple(o for o in options if word in o) + tuple(o for o in options if word not in o)


def recommend(data: PathwayInput, *, review_after_sessions: int = REVIEW_AFTER_SESSIONS) -> Recommendation:
    """The recommended step, its interventions, the rules that fired and the actions they call for."""
    if not _whole(review_after_sessions, 1, None):
        raise InvalidPathwayInput("review_after_sessions is a whole number, 1 or more")
    first = data.current_step is None and not data.persistent
    fired = _risk(data)
    if data.phq9 is None and data.gad7 is None:
        fired.append(_Fired(RULES["NO-SCORES"], 1, STEP_INTERVENTIONS[1], ("complete a PHQ-9 and a GAD-7",)))
    if data.phq9 is not None:
        fired.append(_depression(data.phq9, first))
    if data.gad7 is not None:
        fired.append(_anxiety(data.gad7, first, data.marked_functional_impairment))
    if (data.phq9 or 0) >= PHQ9_CASENESS and (data.gad7 or 0) >= GAD7_PROBABLE:
        fired.append(
            _Fired(RULES["COMORBID"], actions=("decide with the person which problem to treat first",))
        )

    step = max(f.step for f in fired if f.step is not None)
    if data.current_step is not None and data.current_step > step:
        step = data.current_step
        fired.append(_Fired(RULES["NO-STEP-DOWN"], step))

    review = (
        data.current_step in (2, 3)
        and step == data.current_step  # when the scores already step up, that is the recommendation
        and data.sessions_at_step >= review_after_sessions
        and not data.reliable_improvement
        and _still_a_case(data)
    )
    if review:
        current = data.current_step or 0
        action = (
            f"step-up review: no reliable improvement after {data.sessions_at_step} sessions at step "
            f"{current}; discuss adherence and other reasons, then consider step {current + 1}"
        )
        fired.append(_Fired(RULES["STEP-UP-REVIEW"], actions=(action,)))

    if data.preferences:
        notes = {
            "declines_medication": "medication options left out at the person's request",
            "declines_treatment": "the person does not want treatment now: agree follow-up and how to "
            "seek help" + ("; reassess normally within 2 to 4 weeks" if step <= 2 else ""),
            "prefers_group": "group formats listed first, as the person prefers",
            "prefers_individual": "individual formats listed first, as the person prefers",
        }
        fired.append(_Fired(RULES["PREFERENCES"], actions=tuple(notes[p] for p in data.preferences)))

    interventions: list[str] = []
    for f in fired:
        if f.step == step:
            interventions.extend(i for i in f.interventions if i not in interventions)
    if not interventions:
        interventions = list(STEP_INTERVENTIONS[step])
    actions: list[str] = []
    for f in fired:
        actions.extend(a for a in f.actions if a not in actions)
    return Recommendation(
        step=step,
        label=STEP_LABELS[step],
        interventions=_ordered(tuple(interventions), data.preferences),
        rules=tuple(f.rule for f in fired),
        actions=tuple(actions),
        step_up_review=review,
    )


@dataclass(frozen=True)
class Decision:
    recommended_step: int
    chosen_step: int
    overridden: bool
    reason: str  # empty when the recommendation is confirmed
    clinician: str
    decided_at: datetime
    rule_ids: tuple[str, ...]  # the rules behind the recommendation
    below_risk_floor: bool  # the chosen step is below a step a risk rule asked for

    def as_json(self) -> dict[str, object]:
        return {
            "recommended_step": self.recommended_step,
            "chosen_step": self.chosen_step,
            "overridden": self.overridden,
            "reason": self.reason,
            "clinician": self.clinician,
            "decided_at": self.decided_at.isoformat(),
            "rule_ids": list(self.rule_ids),
            "below_risk_floor": self.below_risk_floor,
        }


def _check_who_when(clinician: str, at: datetime) -> None:
    if not isinstance(clinician, str) or not clinician.strip():
        raise InvalidDecision("the clinician making the decision is required")
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise InvalidDecision("the time of the decision is a timezone-aware datetime")


def confirm(recommendation: Recommendation, *, clinician: str, at: datetime) -> Decision:
    """The record of a clinician accepting the recommended step."""
    _check_who_when(clinician, at)
    step = recommendation.step
    ids = tuple(r.id for r in recommendation.rules)
    return Decision(step, step, False, "", clinician.strip(), at, ids, False)


def override(
    recommendation: Recommendation, *, chosen_step: int, reason: str, clinician: str, at: datetime
) -> Decision:
    """The record of a clinician choosing another step; InvalidDecision without a reason or a change."""
    _check_who_when(clinician, at)
    if not _whole(chosen_step, 1, 4):
        raise InvalidDecision("the chosen step is 1, 2, 3 or 4")
    if chosen_step == recommendation.step:
        raise InvalidDecision(
            "an override chooses a different step; use confirm to accept the recommendation"
        )
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidDecision("an override needs the clinician's reason")
    risk_floor = 4 if any(r.id == "RISK-HIGH" for r in recommendation.rules) else 0
    if any(r.id == "RISK-MODERATE" for r in recommendation.rules):
        risk_floor = max(risk_floor, 3)
    ids = tuple(r.id for r in recommendation.rules)
    return Decision(
        recommendation.step,
        chosen_step,
        True,
        reason.strip(),
        clinician.strip(),
        at,
        ids,
        chosen_step < risk_floor,
    )
