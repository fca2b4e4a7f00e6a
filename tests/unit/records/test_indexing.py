"""Index extraction on the official R4 examples (http://hl7.org/fhir/R4/search.html value rules)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import FHIR_EXAMPLES
from medweave.records.definitions import compartment_params, search_params, supported_types
from medweave.records.indexing import (
    MAX_TS,
    MIN_TS,
    IndexEntry,
    compartment_patients,
    date_range,
    extract_index,
    normalize,
    parse_reference,
)

PACKAGE = FHIR_EXAMPLES if (FHIR_EXAMPLES / "Patient-example.json").exists() else None
needs_package = pytest.mark.skipif(PACKAGE is None, reason="hl7.fhir.r4.examples not installed (make dev)")


def _us(*args: int) -> int:
    return (datetime(*args, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _load(name: str) -> dict[str, Any]:
    assert PACKAGE is not None
    return json.loads((PACKAGE / name).read_text(encoding="utf-8"))


def _by(entries: list[IndexEntry], param: str) -> list[IndexEntry]:
    return [e for e in entries if e.param == param]


def test_definitions_cover_our_types() -> None:
    assert len(supported_types()) == 21
    assert search_params("Patient")["name"].type == "string"
    assert search_params("Patient")["_id"].special == "id"
    assert search_params("Observation")["patient"].resolve_filter == "Patient"
    assert "resolve()" not in search_params("Observation")["patient"].expression_texts[0]
    assert compartment_params("Observation") == ("subject", "performer")
    assert search_params("Binary") == {}


@pytest.mark.parametrize(
    ("text", "lo", "hi"),
    [
        ("2013", _us(2013, 1, 1), _us(2014, 1, 1)),
        ("2013-02", _us(2013, 2, 1), _us(2013, 3, 1)),
        ("2013-12", _us(2013, 12, 1), _us(2014, 1, 1)),
        ("2013-01-14", _us(2013, 1, 14), _us(2013, 1, 15)),
        ("2013-01-14T10:00", _us(2013, 1, 14, 10), _us(2013, 1, 14, 10, 1)),
        ("2013-01-14T10:00:05Z", _us(2013, 1, 14, 10, 0, 5), _us(2013, 1, 14, 10, 0, 6)),
        ("2013-01-14T10:00:05+02:00", _us(2013, 1, 14, 8, 0, 5), _us(2013, 1, 14, 8, 0, 6)),
        ("2013-01-14T10:00:05.12Z", _us(2013, 1, 14, 10, 0, 5, 120000), _us(2013, 1, 14, 10, 0, 5, 130000)),
    ],
)
def test_date_range_precision(text: str, lo: int, hi: int) -> None:
    assert date_range(text) == (lo, hi)


@pytest.mark.parametrize("text", ["", "13", "2013-13", "2013-02-30", "2013-01-14T25:00", "soon"])
def test_date_range_rejects(text: str) -> None:
    assert date_range(text) is None


def test_references_and_normalize() -> None:
    assert parse_reference("Patient/123") == ("Patient", "123")
    assert parse_reference("Patient/123/_history/4") == ("Patient", "123")
    assert parse_reference("https://x.org/fhir/Patient/123") == ("Patient", "123")
    assert parse_reference("https://x.org/fhir/Medication/1") is None  # not a type we store
    assert parse_reference("urn:uuid:0b7e") is None
    assert parse_reference("#c1") is None
    assert normalize("Müller ÉLAN") == "muller elan"


@needs_package
def test_patient_example() -> None:
    patient = _load("Patient-example.json")
    before = copy.deepcopy(patient)
    entries = extract_index(patient)
    assert patient == before  # evaluation does not modify the resource
    assert {e.str_exact for e in _by(entries, "family")} == {"Chalmers", "Windsor"}
    assert IndexEntry("name", str_norm="chalmers", str_exact="Chalmers") in entries
    assert {e.str_norm for e in _by(entries, "given")} == {"peter", "james", "jim"}
    assert _by(entries, "birthdate") == [IndexEntry("birthdate", lo=_us(1974, 12, 25), hi=_us(1974, 12, 26))]
    assert IndexEntry("identifier", system="urn:oid:1.2.36.146.595.217.0.1", code="12345") in entries
    assert IndexEntry("gender", code="male") in entries
    assert IndexEntry("organization", ref_type="Organization", ref_id="1") in entries
    assert IndexEntry("address-city", str_norm="pleasantville", str_exact="PleasantVille") in entries
    assert IndexEntry("phone", code="(03) 5555 6473") in entries
    assert compartment_patients(patient) == ["example"]


@needs_package
def test_observation_example() -> None:
    obs = _load("Observation-example.json")
    entries = extract_index(obs)
    assert (
        IndexEntry(
            "code", system="http://loinc.org", code="29463-7", str_norm="body weight", str_exact="Body Weight"
        )
        in entries
    )
    assert _by(entries, "value-quantity") == [
        IndexEntry(
            "value-quantity", num=185.0, system="http://unitsofmeasure.org", code="[lb_av]", str_exact="lbs"
        )
    ]
    assert _by(entries, "subject") == [IndexEntry("subject", ref_type="Patient", ref_id="example")]
    assert _by(entries, "patient") == [IndexEntry("patient", ref_type="Patient", ref_id="example")]
    assert _by(entries, "date") == [IndexEntry("date", lo=_us(2016, 3, 28), hi=_us(2016, 3, 29))]
    assert compartment_patients(obs) == ["example"]


def test_resolve_filter_and_open_period() -> None:
    obs = {
        "resourceType": "Observation",
        "id": "x",
        "status": "final",
        "code": {"text": "t"},
        "subject": {"reference": "Group/g"},
        "performer": [{"reference": "Patient/p9"}, {"reference": "urn:uuid:1"}, {"reference": "#c"}],
        "effectivePeriod": {"start": "2020-05"},
    }
    entries = extract_index(obs)
    assert _by(entries, "patient") == []
    assert _by(entries, "subject") == [IndexEntry("subject", ref_type="Group", ref_id="g")]
    assert _by(entries, "date") == [IndexEntry("date", lo=_us(2020, 5, 1), hi=MAX_TS)]
    assert compartment_patients(obs) == ["p9"]
    enc = {"resourceType": "Encounter", "id": "e", "status": "planned", "period": {"end": "2020"}}
    assert _by(extract_index(enc), "date") == [IndexEntry("date", lo=MIN_TS, hi=_us(2021, 1, 1))]


@needs_package
def test_every_example_of_our_types_indexes() -> None:
    assert PACKAGE is not None
    count = 0
    for path in sorted(PACKAGE.glob("*.json")):
        if path.name.split("-")[0] not in supported_types():
            continue
        resource = json.loads(path.read_text(encoding="utf-8"))
        if resource.get("resourceType") not in supported_types():
            continue
        count += 1
        entries = extract_index(resource)
        compartment_patients(resource, entries)
        for entry in entries:
            row = entry.to_row()
            assert row["param"] in search_params(resource["resourceType"])
            assert entry.lo is None or entry.hi is None or entry.lo < entry.hi
    assert count == 217


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
FIELDS = ["name", "code", "subject", "valueQuantity", "effectivePeriod", "birthDate", "telecom", "identifier"]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["Patient", "Observation", "Encounter", "Appointment"]),
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5),
)
def test_odd_input_never_raises(res_type: str, fields: dict[str, Any]) -> None:
    resource = {"resourceType": res_type, "id": "x", **fields}
    for entry in extract_index(resource):
        assert isinstance(entry, IndexEntry)
    compartment_patients(resource)
