"""The instruments as FHIR Questionnaires: LOINC-coded, valid, and scored by the same answers."""

from __future__ import annotations

import pytest

from medweave.records.validation import validate_resource
from medweave.therapy.instruments import INSTRUMENTS, PHQ9, score
from medweave.therapy.questionnaires import questionnaire


@pytest.mark.parametrize("code", sorted(INSTRUMENTS))
def test_each_questionnaire_is_valid_fhir_with_one_item_per_question(code: str) -> None:
    instrument = INSTRUMENTS[code]
    resource = questionnaire(instrument)
    validate_resource(resource, expected_type="Questionnaire")  # raises on an invalid resource
    assert len(resource["item"]) == instrument.items
    ordinals = [
        [o["extension"][0]["valueDecimal"] for o in item["answerOption"]] for item in resource["item"]
    ]
    assert ordinals == [[0, 1, 2, 3]] * instrument.items


def test_phq9_codes_and_the_risk_item() -> None:
    resource = questionnaire(PHQ9)
    assert resource["code"][0]["code"] == "44249-1"
    item9 = resource["item"][8]
    assert item9["code"][0]["code"] == "44260-8" and item9["linkId"] == "phq9-9"
    assert "better off dead" in item9["text"]
    assert score(PHQ9, [0] * 8 + [1]).flags == ("risk-review",)


def test_screeners_are_the_first_two_items_of_the_full_instruments() -> None:
    for screener, full in (("phq2", "phq9"), ("gad2", "gad7")):
        short, long = questionnaire(INSTRUMENTS[screener]), questionnaire(INSTRUMENTS[full])
        assert [i["code"] for i in short["item"]] == [i["code"] for i in long["item"][:2]]
