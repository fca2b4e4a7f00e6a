"""The instruments as FHIR R4 ``Questionnaire`` resources, coded with LOINC. Pure.

Item wording is the published English text of the PHQ and GAD-7 screeners (Spitzer, Williams,
Kroenke and colleagues, developed with an educational grant from Pfizer Inc.; no permission is
required to reproduce, translate, display or distribute them). Each item is a ``choice`` from the
LOINC answer list LL358-3 (LA6568-5 "Not at all" ... LA6571-9 "Nearly every day") with its score
as ``ordinalValue``. Item codes are those of the LOINC panels: PHQ-9 44249-1 (items 44250-9,
44255-8, 44259-0, 44254-1, 44251-7, 44258-2, 44252-5, 44253-3, 44260-8) and GAD-7 69737-5 (items
69725-0, 68509-9, 69733-4, 69734-2, 69735-9, 69689-8, 69736-7); PHQ-2 and GAD-2 are the first two
items of each.
"""

from __future__ import annotations

from typing import Any

from medweave.therapy.instruments import INSTRUMENTS, Instrument

LOINC = "http://loinc.org"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
STEM = "Over the last 2 weeks, how often have you been bothered by the following problem?"
ANSWERS = (
    ("LA6568-5", "Not at all", 0),
    ("LA6569-3", "Several days", 1),
    ("LA6570-1", "More than half the days", 2),
    ("LA6571-9", "Nearly every day", 3),
)
PHQ9_ITEMS = (
    ("44250-9", "Little interest or pleasure in doing things"),
    ("44255-8", "Feeling down, depressed, or hopeless"),
    ("44259-0", "Trouble falling or staying asleep, or sleeping too much"),
    ("44254-1", "Feeling tired or having little energy"),
    ("44251-7", "Poor appetite or overeating"),
    (
        "44258-2",
        "Feeling bad about yourself, or that you are a failure or have let yourself or your family down",
    ),
    ("44252-5", "Trouble concentrating on things, such as reading the newspaper or watching television"),
    (
        "44253-3",
        "Moving or speaking so slowly that other people could have noticed, or the opposite: being so "
        "fidgety or restless that you have been moving around a lot more than usual",
    ),
    ("44260-8", "Thoughts that you would be better off dead, or of hurting yourself in some way"),
)
GAD7_ITEMS = (
    ("69725-0", "Feeling nervous, anxious, or on edge"),
    ("68509-9", "Not being able to stop or control worrying"),
    ("69733-4", "Worrying too much about different things"),
    ("69734-2", "Trouble relaxing"),
    ("69735-9", "Being so restless that it is hard to sit still"),
    ("69689-8", "Becoming easily annoyed or irritable"),
    ("69736-7", "Feeling afraid, as if something awful might happen"),
)
ITEMS = {"phq9": PHQ9_ITEMS, "gad7": GAD7_ITEMS, "phq2": PHQ9_ITEMS[:2], "gad2": GAD7_ITEMS[:2]}


def link_id(instrument: Instrument, n: int) -> str:
    """The linkId of item ``n`` (1-based): stable, and names the instrument (``phq9-9``)."""
    return f"{instrument.code}-{n}"


def questionnaire(instrument: Instrument) -> dict[str, Any]:
    items = ITEMS[instrument.code]
    resource: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": f"medweave-{instrument.code}",
        "url": f"urn:medweave:questionnaire:{instrument.code}",
        "name": instrument.code.upper(),
        "title": instrument.title,
        "status": "active",
        "subjectType": ["Patient"],
        "description": STEM,
        "item": [
            {
                "linkId": link_id(instrument, n),
                "code": [{"system": LOINC, "code": code, "display": text}],
                "prefix": str(n),
                "text": text,
                "type": "choice",
                "required": True,
                "answerOption": [
                    {
                        "valueCoding": {"system": LOINC, "code": la, "display": label},
                        "extension": [{"url": ORDINAL, "valueDecimal": value}],
                    }
                    for la, label, value in ANSWERS
                ],
            }
            for n, (code, text) in enumerate(items, start=1)
        ],
    }
    if instrument.panel_loinc:
        resource["code"] = [{"system": LOINC, "code": instrument.panel_loinc, "display": instrument.title}]
    return resource


def all_questionnaires() -> list[dict[str, Any]]:
    return [questionnaire(i) for i in INSTRUMENTS.values()]
