"""A questionnaire on the record, on SQLite and PostgreSQL: response and score together, valid,
searchable, and only by whom the access rules allow."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from medweave.errors import MedweaveError
from medweave.records.service import RecordService
from medweave.security.principal import Principal, Role
from medweave.security.scopes import ScopeSet
from medweave.therapy.assessments import record
from medweave.therapy.instruments import GAD2, PHQ9, InvalidAnswers

OPERATOR = Principal.internal("test")
NOW = datetime(2027, 2, 1, 9, 30, tzinfo=UTC)


def patient_principal(pid: str) -> Principal:
    scopes = ScopeSet.parse("patient/*.rs patient/QuestionnaireResponse.cu patient/Observation.cu")
    return Principal(kind="user", subject=f"u-{pid}", scopes=scopes, role=Role.PATIENT, patient_id=pid)


def new_patient(records: RecordService) -> str:
    return records.create(principal=OPERATOR, res_type="Patient", data={"resourceType": "Patient"}).res_id


def test_a_phq9_becomes_a_response_and_a_score(records: RecordService) -> None:
    pid = new_patient(records)
    done = record(
        records,
        principal=OPERATOR,
        patient_id=pid,
        instrument=PHQ9,
        answers=[1, 1, 2, 2, 1, 1, 1, 1, 1],
        now=NOW,
    )
    assert (done.score.total, done.score.severity, done.score.flags) == (11, "moderate", ("risk-review",))
    response = (
        records.read(principal=OPERATOR, res_type="QuestionnaireResponse", res_id=done.response.res_id).body
        or {}
    )
    assert response["status"] == "completed" and response["subject"] == {"reference": f"Patient/{pid}"}
    assert [i["answer"][0]["valueCoding"]["code"] for i in response["item"]][:3] == [
        "LA6569-3",
        "LA6569-3",
        "LA6570-1",
    ]
    observation = (
        records.read(principal=OPERATOR, res_type="Observation", res_id=done.observation.res_id).body or {}
    )
    assert observation["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "44261-6",
        "display": "Patient Health Questionnaire-9 total score",
    }
    assert observation["valueInteger"] == 11 and observation["interpretation"] == [{"text": "moderate"}]
    assert observation["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{done.response.res_id}"}]
    found = records.search(
        principal=OPERATOR,
        res_type="Observation",
        params=[("patient", pid), ("code", "http://loinc.org|44261-6")],
    )
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [done.observation.res_id]


def test_gad2_has_no_loinc_total_but_our_own_code(records: RecordService) -> None:
    pid = new_patient(records)
    done = record(records, principal=OPERATOR, patient_id=pid, instrument=GAD2, answers=[2, 1], now=NOW)
    coding = (
        records.read(principal=OPERATOR, res_type="Observation", res_id=done.observation.res_id).body or {}
    )["code"]["coding"]
    assert coding == [
        {
            "system": "urn:medweave:instrument",
            "code": "gad2-total",
            "display": "Generalized Anxiety Disorder-2 total score",
        }
    ]


def test_patients_record_their_own_and_nobody_elses(records: RecordService) -> None:
    alice, bob = new_patient(records), new_patient(records)
    mine = record(
        records,
        principal=patient_principal(alice),
        patient_id=alice,
        instrument=GAD2,
        answers=[0, 0],
        now=NOW,
    )
    assert mine.score.total == 0
    with pytest.raises(MedweaveError):
        record(
            records,
            principal=patient_principal(alice),
            patient_id=bob,
            instrument=GAD2,
            answers=[0, 0],
            now=NOW,
        )
    found = records.search(
        principal=OPERATOR, res_type="QuestionnaireResponse", params=[("subject", f"Patient/{bob}")]
    )
    assert found.get("total", len(found.get("entry", []))) == 0  # nothing half-written for Bob


def test_bad_answers_write_nothing(records: RecordService) -> None:
    pid = new_patient(records)
    with pytest.raises(InvalidAnswers):
        record(records, principal=OPERATOR, patient_id=pid, instrument=PHQ9, answers=[1, 2, 3], now=NOW)
    found = records.search(principal=OPERATOR, res_type="Observation", params=[("patient", pid)])
    assert not found.get("entry")
