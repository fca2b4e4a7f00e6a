"""A completed questionnaire on the patient's record: the answers as a ``QuestionnaireResponse``
and the score as an ``Observation`` (category ``survey``, the instrument's LOINC total code,
``valueInteger``, the severity band as its interpretation, ``derivedFrom`` the response).

Both are written in one transaction through the record store. The answers are written as the
caller, so the access rules decide who may record them (the patient for themselves, staff for
patients in their care); the score is derived by the software, not typed by anyone, so it is
written as the system (``SCORER``), which patients may not be. Each write is audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from medweave.records.service import RecordService
from medweave.records.store import Stored, instant
from medweave.security.principal import Principal
from medweave.therapy.instruments import Instrument, Score, score
from medweave.therapy.questionnaires import ANSWERS, ITEMS, LOINC, link_id, questionnaire

SURVEY = {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}
INSTRUMENT_SYSTEM = "urn:medweave:instrument"
SCORER = Principal.internal("therapy-scoring")


@dataclass(frozen=True)
class Assessment:
    response: Stored
    observation: Stored
    score: Score


def response_resource(
    instrument: Instrument, answers: Sequence[int], *, patient_id: str, now: datetime
) -> dict[str, Any]:
    items = ITEMS[instrument.code]
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": questionnaire(instrument)["url"],
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": instant(now),
        "item": [
            {
                "linkId": link_id(instrument, n),
                "text": text,
                "answer": [
                    {
                        "valueCoding": {
                            "system": LOINC,
                            "code": ANSWERS[value][0],
                            "display": ANSWERS[value][1],
                        }
                    }
                ],
            }
            for n, ((_code, text), value) in enumerate(zip(items, answers, strict=True), start=1)
        ],
    }


def score_observation(
    instrument: Instrument, result: Score, *, patient_id: str, response_id: str, now: datetime
) -> dict[str, Any]:
    coding = [
        {
            "system": INSTRUMENT_SYSTEM,
            "code": f"{instrument.code}-total",
            "display": f"{instrument.title} total score",
        }
    ]
    if instrument.total_loinc:
        coding.insert(
            0, {"system": LOINC, "code": instrument.total_loinc, "display": f"{instrument.title} total score"}
        )
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [SURVEY]}],
        "code": {"coding": coding, "text": f"{instrument.title} total score"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": instant(now),
        "valueInteger": result.total,
        "interpretation": [{"text": result.severity}],
        "derivedFrom": [{"reference": f"QuestionnaireResponse/{response_id}"}],
    }


def record(
    records: RecordService,
    *,
    principal: Principal,
    patient_id: str,
    instrument: Instrument,
    answers: Sequence[int],
    now: datetime,
) -> Assessment:
    """Score ``answers`` (InvalidAnswers if they cannot be) and store response and score together."""
    result = score(instrument, answers)
    response = {
        **response_resource(instrument, answers, patient_id=patient_id, now=now),
        "id": str(uuid.uuid4()),
    }
    observation = {
        **score_observation(instrument, result, patient_id=patient_id, response_id=response["id"], now=now),
        "id": str(uuid.uuid4()),
    }

    def run(conn: Connection) -> tuple[Stored, Stored]:
        stored_response = records.write_in(
            conn, principal=principal, res_type="QuestionnaireResponse", res_id=response["id"], body=response
        )
        stored_score = records.write_in(
            conn, principal=SCORER, res_type="Observation", res_id=observation["id"], body=observation
        )
        return stored_response, stored_score

    with (
        records.trail.event(SCORER, "create", res_type="Observation") as scored,
        records.trail.event(principal, "create", res_type="QuestionnaireResponse") as answered,
    ):
        stored_response, stored_score = records.in_write(run)
        for note, stored in ((answered, stored_response), (scored, stored_score)):
            note.status, note.res_id, note.version_id = 201, stored.res_id, stored.version_id
            note.patients.add(patient_id)
    return Assessment(stored_response, stored_score, result)
