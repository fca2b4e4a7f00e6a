"""The clinician's view of the therapy caseload: who needs attention, their scores over time,
their item-level answers, and the care-pathway recommendation with its confirm or override.

Everything is read and written as the signed-in clinician through the record store, so the
access rules (patients in their care) and the audit trail apply exactly as for the API. A
pathway decision is a ``CarePlan`` (category "stepped care", the chosen step in its title, the
recommended step, the rules behind it and any override reason in its note), authored by the
clinician: the assistant recommends, the clinician decides (NICE CG123 stepped care).

Reliable change uses the NHS Talking Therapies thresholds (``outcomes``): a fall of 6 or more on
the PHQ-9, 4 or more on the GAD-7, from the first score to each later one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from medweave.records.access import in_care_patients
from medweave.records.service import RecordService
from medweave.records.store import instant
from medweave.security.principal import Principal
from medweave.therapy import alerts, pathway
from medweave.therapy.conversations import OBS_SYSTEM
from medweave.therapy.instruments import INSTRUMENTS, band
from medweave.therapy.questionnaires import ANSWERS, questionnaire

log = logging.getLogger("medweave.therapy.caseload")
RELIABLE_CHANGE = {"phq9": 6, "gad7": 4}  # NHS Talking Therapies manual (outcomes.py)
#: How far back a risk found in the patient's messages counts for the pathway (a product choice,
#: about two weeks: the PHQ-9's own look-back period).
RISK_LOOKBACK = timedelta(days=14)
PLAN_SYSTEM = "urn:medweave:care-pathway"
HISTORY = 100


@dataclass(frozen=True)
class ScorePoint:
    when: datetime
    value: int
    band: str
    change: str  # "", "reliable improvement" or "reliable deterioration", against the first


@dataclass(frozen=True)
class Item:
    question: str
    answer: str
    value: int | None


@dataclass(frozen=True)
class Judgement:
    """What the clinician judges and the record cannot say (NICE CG123 and CG113 ask for each)."""

    persistent: bool = False  # the symptoms have lasted
    impaired: bool = False  # marked functional impairment
    preferences: tuple[str, ...] = ()  # pathway.PREFERENCES

    def describe(self) -> str:
        parts = ["persistent symptoms"] if self.persistent else []
        parts += ["marked functional impairment"] if self.impaired else []
        parts += [p.replace("_", " ") for p in self.preferences]
        return "; ".join(parts)


@dataclass(frozen=True)
class Row:
    patient_id: str
    name: str
    alert: alerts.Alert | None
    phq9: int | None
    gad7: int | None
    step_up_review: bool = False


def _when(resource: Mapping[str, Any]) -> datetime | None:
    """When a score was taken, as an aware time; a date alone is its midnight UTC; None if absent
    or unreadable (such a record is left out rather than breaking the page)."""
    raw = resource.get("effectiveDateTime") or resource.get("authored")
    try:
        when = datetime.fromisoformat(str(raw))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _entries(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"
    ]


def _observations(
    records: RecordService, principal: Principal, patient_id: str, token: str, count: int
) -> list[dict[str, Any]]:
    params = [
        ("subject", f"Patient/{patient_id}"),
        ("code", token),
        ("_sort", "-date"),
        ("_count", str(count)),
    ]
    found = [o for o in _entries(records.search(principal=principal, res_type="Observation", params=params))
             if _when(o) is not None]  # fmt: skip
    return sorted(found, key=_dated)


def _dated(resource: Mapping[str, Any]) -> datetime:
    when = _when(resource)
    assert when is not None, "filtered before"
    return when


def _marks(code: str, values: Sequence[tuple[datetime, int]]) -> list[ScorePoint]:
    points = []
    instrument = INSTRUMENTS[code]
    threshold = RELIABLE_CHANGE.get(code)
    first = values[0][1] if values else 0
    for when, value in values:
        change = ""
        if threshold is not None and first - value >= threshold:
            change = "reliable improvement"
        elif threshold is not None and value - first >= threshold:
            change = "reliable deterioration"
        points.append(ScorePoint(when, value, band(instrument, value), change))
    return points


def _score(resource: Mapping[str, Any], top: int) -> bool:
    value = resource.get("valueInteger")
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= top


def scores(records: RecordService, *, principal: Principal, patient_id: str) -> dict[str, list[ScorePoint]]:
    """PHQ-9 and GAD-7 totals, oldest first, each with its band and reliable-change mark."""
    out = {}
    for code in ("phq9", "gad7"):
        token = f"http://loinc.org|{INSTRUMENTS[code].total_loinc}"
        found = _observations(records, principal, patient_id, token, HISTORY)
        values = [
            (_dated(o), int(o["valueInteger"])) for o in found if _score(o, INSTRUMENTS[code].max_total)
        ]
        out[code] = _marks(code, values)
    return out


def moods(records: RecordService, *, principal: Principal, patient_id: str) -> list[tuple[datetime, int]]:
    found = _observations(records, principal, patient_id, f"{OBS_SYSTEM}|mood", HISTORY)
    return [(_dated(o), int(o["valueInteger"])) for o in found if _score(o, 10)]


def latest_cssrs(records: RecordService, *, principal: Principal, patient_id: str) -> str | None:
    found = _observations(records, principal, patient_id, f"{OBS_SYSTEM}|cssrs-screen", 1)
    return str(found[-1].get("valueString")) if found else None


def latest_items(records: RecordService, *, principal: Principal, patient_id: str, code: str) -> list[Item]:
    """The item-level answers of the patient's latest completed ``code`` questionnaire."""
    url = questionnaire(INSTRUMENTS[code])["url"]
    params = [("subject", f"Patient/{patient_id}"), ("_sort", "-authored"), ("_count", "50")]
    found = [
        r
        for r in _entries(
            records.search(principal=principal, res_type="QuestionnaireResponse", params=params)
        )
        if r.get("questionnaire") == url
    ]
    found = [r for r in found if _when(r) is not None]
    if not found:
        return []
    latest = max(found, key=_dated)
    items = []
    for item in latest.get("item", []):
        coding = (item.get("answer") or [{}])[0].get("valueCoding", {})
        value = next((v for _, label, v in ANSWERS if label == coding.get("display")), None)
        items.append(Item(str(item.get("text", "")), str(coding.get("display", "")), value))
    return items


# -- the care pathway ----------------------------------------------------------------------------


def plans(records: RecordService, *, principal: Principal, patient_id: str) -> list[dict[str, Any]]:
    params = [
        ("subject", f"Patient/{patient_id}"),
        ("category", f"{PLAN_SYSTEM}|stepped-care"),
        ("_count", "50"),
    ]
    found = _entries(records.search(principal=principal, res_type="CarePlan", params=params))
    return sorted(found, key=lambda p: str(p.get("created", "")))


def current_step(plan_list: Sequence[Mapping[str, Any]]) -> int | None:
    for plan in reversed(plan_list):
        for coding in plan.get("category", [{}])[0].get("coding", []):
            if coding.get("system") == PLAN_SYSTEM and str(coding.get("code", "")).startswith("step-"):
                return int(str(coding["code"]).removeprefix("step-"))
    return None


def recommendation(
    records: RecordService,
    *,
    principal: Principal,
    patient_id: str,
    now: datetime,
    review_after: int = pathway.REVIEW_AFTER_SESSIONS,
    judged: Judgement | None = None,
    found: Mapping[str, list[ScorePoint]] | None = None,
) -> tuple[pathway.Recommendation, pathway.PathwayInput]:
    """The recommendation from the record (scores, risk, the current step and how long it has
    run) and what only the clinician can judge (``judged``: duration, functioning, preferences).
    ``found`` is ``scores(...)`` when the caller has already read them."""
    judged = judged or Judgement()
    found = found if found is not None else scores(records, principal=principal, patient_id=patient_id)
    phq, gad = found["phq9"], found["gad7"]
    items = latest_items(records, principal=principal, patient_id=patient_id, code="phq9")
    plan_list = plans(records, principal=principal, patient_id=patient_id)
    step = current_step(plan_list)
    since = _when({"authored": plan_list[-1].get("created")}) if plan_list else None
    at_step = [p for p in phq if since is None or p.when > since]  # after the decision
    # Sessions are weeks with a score, not scores: six PHQ-9s in an afternoon are one session.
    sessions = len({p.when.isocalendar()[:2] for p in at_step})
    baseline = phq[:1] if since is None else ([p for p in phq if p.when <= since][-1:] or phq[:1])
    with records.engine.connect() as conn:
        text_risk = alerts.recent_level(conn, patient_id, since=now - RISK_LOOKBACK, sources=("chat",))
    item9 = items[8].value if len(items) == 9 else None
    latest_phq = phq[-1].value if phq else None
    data = pathway.PathwayInput(
        phq9=latest_phq,
        gad7=gad[-1].value if gad else None,
        phq9_item9=item9 if item9 is None or latest_phq is None or item9 <= latest_phq else None,
        cssrs=latest_cssrs(records, principal=principal, patient_id=patient_id),
        text_risk=text_risk,
        current_step=step,
        sessions_at_step=sessions if step is not None else 0,
        reliable_improvement=_improved(baseline, phq, "phq9") or _improved(gad[:1], gad, "gad7"),
        marked_functional_impairment=judged.impaired,
        preferences=judged.preferences,
        persistent=judged.persistent,
    )
    return pathway.recommend(data, review_after_sessions=review_after), data


def _improved(start: Sequence[ScorePoint], points: Sequence[ScorePoint], code: str) -> bool:
    """Reliable improvement from the score at the start of the current step to the latest one."""
    return bool(start and points) and start[0].value - points[-1].value >= RELIABLE_CHANGE[code]


def decide(
    records: RecordService,
    *,
    principal: Principal,
    patient_id: str,
    recommended: pathway.Recommendation,
    chosen_step: int | None,
    reason: str,
    now: datetime,
    judged: Judgement | None = None,
) -> pathway.Decision:
    """Confirm (``chosen_step`` None or the same step) or override (another step, with a reason,
    else ``InvalidDecision``) the recommendation, as a CarePlan on the record."""
    who = principal.audit_ref
    if chosen_step is None or chosen_step == recommended.step:
        decision = pathway.confirm(recommended, clinician=who, at=now)
    else:
        decision = pathway.override(
            recommended, chosen_step=chosen_step, reason=reason, clinician=who, at=now
        )
    rules = ", ".join(decision.rule_ids)
    note = f"Recommended step {decision.recommended_step} (rules: {rules})."
    if judged is not None and judged.describe():
        note += f" Clinician's judgement: {judged.describe()}."
    if decision.overridden:
        note += f" Overridden to step {decision.chosen_step}: {decision.reason}"
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "category": [
            {
                "coding": [
                    {"system": PLAN_SYSTEM, "code": "stepped-care", "display": "Stepped care"},
                    {"system": PLAN_SYSTEM, "code": f"step-{decision.chosen_step}"},
                ]
            }
        ],
        "title": f"Stepped care: step {decision.chosen_step}",
        "subject": {"reference": f"Patient/{patient_id}"},
        "created": instant(now),
        "note": [{"text": note}],
    }
    if who.startswith("Practitioner/"):
        plan["author"] = {"reference": who}
    records.create(principal=principal, res_type="CarePlan", data=plan)
    return decision


# -- the caseload --------------------------------------------------------------------------------


def caseload(
    records: RecordService,
    *,
    principal: Principal,
    names: Mapping[str, str],
    now: datetime,
    review_after: int = pathway.REVIEW_AFTER_SESSIONS,
) -> list[Row]:
    """The patients in ``names`` (id -> name, those the clinician may see), most urgent first:
    open alerts by level, then the latest PHQ-9; each flagged when a step-up review is due."""
    with records.engine.connect() as conn:
        open_alerts = {a.patient_id: a for a in reversed(alerts.alerts_for(conn, list(names)))}
    rows = []
    for pid, name in names.items():
        found = scores(records, principal=principal, patient_id=pid)
        phq, gad = found["phq9"], found["gad7"]
        review = False
        if phq:
            try:
                recommended, _ = recommendation(
                    records,
                    principal=principal,
                    patient_id=pid,
                    now=now,
                    review_after=review_after,
                    found=found,
                )
                review = recommended.step_up_review
            except pathway.InvalidPathwayInput as exc:  # a record that contradicts itself: shown, not fatal
                log.warning("caseload: no pathway for one patient (%s)", exc)
        latest_phq, latest_gad = (phq[-1].value if phq else None), (gad[-1].value if gad else None)
        rows.append(Row(pid, name, open_alerts.get(pid), latest_phq, latest_gad, review))
    rank = {level: n for n, level in enumerate(alerts.LEVELS, 1)}
    return sorted(rows, key=lambda r: (-(rank[r.alert.level] if r.alert else 0), -(r.phq9 or -1), r.name))


def live_alerts(conn: Connection, *, practitioner_id: str) -> list[alerts.Alert]:
    """Open alerts of the patients in this practitioner's care, newest first (the dashboard's feed)."""
    # Care, not consent: a clinician who was only shown the record cannot act on its alerts.
    return alerts.alerts_for(conn, in_care_patients(practitioner_id, consent=False))
