"""The caseload on SQLite and PostgreSQL: reliable-change marks, the step-up review after N scores
without reliable improvement, and pathway decisions as CarePlans written by the clinician."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from test_conversations import OPERATOR, clinician_principal, patient_principal

from medweave.records.service import RecordService
from medweave.therapy import caseload, pathway
from medweave.therapy.assessments import record
from medweave.therapy.instruments import PHQ9

T0 = datetime(2027, 5, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def care(records: RecordService) -> dict[str, str]:
    grey = records.create(
        principal=OPERATOR, res_type="Practitioner", data={"resourceType": "Practitioner"}
    ).res_id
    alice = records.create(
        principal=OPERATOR,
        res_type="Patient",
        data={"resourceType": "Patient", "name": [{"family": "Liddell"}]},
    ).res_id
    team = {
        "resourceType": "CareTeam",
        "status": "active",
        "subject": {"reference": f"Patient/{alice}"},
        "participant": [{"member": {"reference": f"Practitioner/{grey}"}}],
    }
    records.create(principal=OPERATOR, res_type="CareTeam", data=team)
    return {"grey": grey, "alice": alice}


def phq9(records: RecordService, pid: str, total: int, when: datetime) -> None:
    answers = [min(3, max(0, total - 3 * i)) for i in range(8)] + [0]
    assert sum(answers) == total
    record(
        records, principal=patient_principal(pid), patient_id=pid, instrument=PHQ9, answers=answers, now=when
    )


def test_a_step_up_review_after_n_scores_without_reliable_improvement(
    records: RecordService, care: dict[str, str]
) -> None:
    grey, pid = clinician_principal(care["grey"]), care["alice"]
    phq9(records, pid, 14, T0)
    recommended, _ = caseload.recommendation(records, principal=grey, patient_id=pid, now=T0)
    assert recommended.step == 2  # less severe depression (NG222)
    decision = caseload.decide(
        records, principal=grey, patient_id=pid, recommended=recommended, chosen_step=None, reason="", now=T0
    )
    assert not decision.overridden and decision.chosen_step == 2
    for week, total in enumerate([13, 14, 12, 13, 12, 13], start=1):
        phq9(records, pid, total, T0 + timedelta(weeks=week))
    later = T0 + timedelta(weeks=7)
    rows = caseload.caseload(records, principal=grey, names={pid: "Alice"}, now=later, review_after=6)
    assert rows[0].step_up_review and rows[0].phq9 == 13
    rows = caseload.caseload(records, principal=grey, names={pid: "Alice"}, now=later, review_after=7)
    assert not rows[0].step_up_review

    points = caseload.scores(records, principal=grey, patient_id=pid)["phq9"]
    assert [p.band for p in points[:2]] == ["moderate", "moderate"] and not any(p.change for p in points)


def test_reliable_change_is_marked_against_the_first_score(
    records: RecordService, care: dict[str, str]
) -> None:
    grey, pid = clinician_principal(care["grey"]), care["alice"]
    for week, total in enumerate([18, 13, 12, 19, 24]):
        phq9(records, pid, total, T0 + timedelta(weeks=week))
    marks = [p.change for p in caseload.scores(records, principal=grey, patient_id=pid)["phq9"]]
    assert marks == ["", "", "reliable improvement", "", "reliable deterioration"]


def test_an_override_needs_a_reason_and_writes_nothing_without_one(
    records: RecordService, care: dict[str, str]
) -> None:
    grey, pid = clinician_principal(care["grey"]), care["alice"]
    phq9(records, pid, 17, T0)
    recommended, _ = caseload.recommendation(records, principal=grey, patient_id=pid, now=T0)
    assert recommended.step == 3
    with pytest.raises(pathway.InvalidDecision):
        caseload.decide(
            records,
            principal=grey,
            patient_id=pid,
            recommended=recommended,
            chosen_step=2,
            reason=" ",
            now=T0,
        )
    assert caseload.plans(records, principal=grey, patient_id=pid) == []
    caseload.decide(
        records,
        principal=grey,
        patient_id=pid,
        recommended=recommended,
        chosen_step=2,
        reason="prefers group",
        now=T0,
    )
    plan = caseload.plans(records, principal=grey, patient_id=pid)[0]
    assert plan["author"] == {"reference": f"Practitioner/{care['grey']}"}
    assert "Overridden to step 2: prefers group" in plan["note"][0]["text"]
    assert caseload.current_step([plan]) == 2
