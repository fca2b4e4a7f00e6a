"""Tests for medweave.records.validation (http://hl7.org/fhir/R4/validation.html)."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medweave.errors import InvalidInput, MedweaveError, Unprocessable
from medweave.records.validation import MAX_DEPTH, SUPPORTED_TYPES, validate_resource

REPO = Path(__file__).parents[3]
EXAMPLES = Path(
    os.environ.get("MEDWEAVE_FHIR_EXAMPLES", REPO / ".cache/npm/node_modules/hl7.fhir.r4.examples")
)
# Genuinely invalid R4 examples (not R4 vs R4B differences):
KNOWN_INVALID = {
    "Questionnaire-qs1.json": "Questionnaire.item[0].item[0].linkId",  # items without the required linkId
    "Observation-clinical-gender.json": "Observation.performer[0].reference",  # performer -> Encounter
}
ADMIN_GENDER = {"male", "female", "other", "unknown"}


def patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", "gender": "female", **extra}


def observation(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        **extra,
    }


def fails(data: object, expected_type: str | None = None) -> MedweaveError:
    with pytest.raises(InvalidInput) as info:
        validate_resource(data, expected_type=expected_type)
    return info.value


def expressions(err: MedweaveError) -> list[str]:
    return [e for issue in err.issues for e in issue.expression]


# --- structure: 400 -----------------------------------------------------------------------------


def test_valid_resource_is_returned_unchanged() -> None:
    data = patient(name=[{"family": "Chalmers", "use": "official"}], birthDate="1974-12-25")
    before = copy.deepcopy(data)
    assert validate_resource(data, expected_type="Patient") is data
    assert data == before


@pytest.mark.parametrize("body", [[], "Patient", None, 3, [{"resourceType": "Patient"}]])
def test_body_must_be_an_object(body: object) -> None:
    err = fails(body)
    assert err.status == 400 and not isinstance(err, Unprocessable)


@pytest.mark.parametrize("rtype", ["Banana", "Organization", "Bundle", "patient"])
def test_unsupported_resource_type_is_400_not_supported(rtype: str) -> None:
    err = fails({"resourceType": rtype})
    assert err.status == 400
    assert [i.code for i in err.issues] == ["not-supported"]


@pytest.mark.parametrize("body", [{}, {"resourceType": ""}, {"resourceType": 7}, {"gender": "male"}])
def test_missing_resource_type_is_400(body: dict[str, Any]) -> None:
    assert fails(body).status == 400


def test_resource_type_must_match_expected_type() -> None:
    err = fails(patient(), expected_type="Observation")
    assert err.status == 400
    validate_resource(patient(), expected_type="Patient")


@pytest.mark.parametrize("bad_id", ["a/b", "../etc", "..", ".", "", "x" * 65, "a b", "é", 12, None])
def test_bad_id_is_400(bad_id: object) -> None:
    err = fails(patient(id=bad_id))
    assert err.status == 400
    assert expressions(err) == ["Patient.id"]


@given(st.text(alphabet=string.ascii_letters + string.digits + "-.", min_size=1, max_size=64))
@settings(max_examples=60, deadline=None)
def test_any_fhir_id_is_accepted(rid: str) -> None:
    if rid.strip(".") == "":
        assert fails(patient(id=rid)).status == 400
    else:
        validate_resource(patient(id=rid))


@given(
    st.text(min_size=1, max_size=70).filter(
        lambda s: any(c not in string.ascii_letters + string.digits + "-." for c in s)
    )
)
@settings(max_examples=60, deadline=None)
def test_ids_outside_the_alphabet_are_refused(rid: str) -> None:
    assert fails(patient(id=rid)).status == 400


def _nested_questionnaire(depth: int, leaf_type: str = "string") -> dict[str, Any]:
    leaf: dict[str, Any] = {"linkId": "leaf", "type": leaf_type}
    for level in range(depth):
        leaf = {"linkId": f"g{level}", "type": "group", "item": [leaf]}
    return {"resourceType": "Questionnaire", "status": "active", "item": [leaf]}


def test_too_deep_nesting_is_400_not_a_crash() -> None:
    err = fails(_nested_questionnaire(400))
    assert err.status == 400 and err.issues[0].code == "structure"
    assert MAX_DEPTH < 2 * 400


# --- content: 422 -------------------------------------------------------------------------------


def test_bad_gender_code() -> None:
    err = fails(patient(gender="banana"))
    assert isinstance(err, Unprocessable) and err.status == 422
    assert expressions(err) == ["Patient.gender"]
    assert err.issues[0].code == "code-invalid"


@given(st.text(max_size=12))
@settings(max_examples=60, deadline=None)
def test_gender_binding_matches_the_value_set(code: str) -> None:
    if code in ADMIN_GENDER:
        validate_resource(patient(gender=code))
    else:
        assert "Patient.gender" in expressions(fails(patient(gender=code)))


def test_bad_observation_status() -> None:
    err = fails(observation(status="done"))
    assert err.status == 422
    assert expressions(err) == ["Observation.status"]


def test_missing_observation_status() -> None:
    data = observation()
    del data["status"]
    err = fails(data)
    assert err.status == 422 and err.issues[0].code == "required"
    assert expressions(err) == ["Observation.status"]


def test_bindings_inside_datatypes_and_backbones() -> None:
    data = patient(
        contact=[{"gender": "male"}, {"gender": "x", "name": {"use": "nick", "family": "A"}}],
        telecom=[{"system": "pager", "value": "1"}, {"system": "pigeon", "value": "2"}],
        identifier=[{"use": "secret", "value": "1"}],
    )
    assert sorted(expressions(fails(data))) == [
        "Patient.contact[1].gender",
        "Patient.contact[1].name.use",
        "Patient.identifier[0].use",
        "Patient.telecom[1].system",
    ]


def test_binding_inside_component_and_extension() -> None:
    data = observation(
        component=[
            {"code": {"text": "a"}, "valueQuantity": {"value": 1, "comparator": "<"}},
            {"code": {"text": "b"}, "valueQuantity": {"value": 1, "comparator": "<<"}},
        ],
        extension=[{"url": "http://example.org/x", "valueQuantity": {"value": 1, "comparator": "~"}}],
    )
    assert sorted(expressions(fails(data))) == [
        "Observation.component[1].valueQuantity.comparator",
        "Observation.extension[0].valueQuantity.comparator",
    ]


def test_required_binding_on_codeable_concept() -> None:
    system = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    base = {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}}
    validate_resource({**base, "clinicalStatus": {"coding": [{"system": system, "code": "active"}]}})
    err = fails({**base, "clinicalStatus": {"coding": [{"system": system, "code": "sleeping"}]}})
    assert expressions(err) == ["Condition.clinicalStatus.coding[0].code"]
    err = fails({**base, "clinicalStatus": {"text": "active"}})
    assert expressions(err) == ["Condition.clinicalStatus"]


def test_unknown_element() -> None:
    err = fails(patient(colour="blue", name=[{"family": "A"}, {"family": "B", "nickname": "C"}]))
    assert err.status == 422
    assert sorted(expressions(err)) == ["Patient.colour", "Patient.name[1].nickname"]
    assert {i.code for i in err.issues} == {"structure"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("birthDate", "2019-13-45"), ("birthDate", "2019-02-30"), ("birthDate", "19-01-01"),
     ("deceasedDateTime", "2019-01-01T10:00"), ("deceasedDateTime", "2019-01-01T25:00:00Z")],
)  # fmt: skip
def test_invalid_dates(field: str, value: str) -> None:
    err = fails(patient(**{field: value}))
    assert err.status == 422
    assert expressions(err) == [f"Patient.{field}"]


@pytest.mark.parametrize("value", ["2019", "2019-02", "2020-02-29", "2019-01-01T10:00:00+01:00"])
def test_valid_partial_dates(value: str) -> None:
    validate_resource(patient(deceasedDateTime=value))


def test_reference_to_disallowed_target_type() -> None:
    err = fails(observation(subject={"reference": "Practitioner/1"}))
    assert err.status == 422
    assert expressions(err) == ["Observation.subject.reference"]
    err = fails(patient(generalPractitioner=[{"reference": "Practitioner/1"}, {"reference": "Patient/2"}]))
    assert expressions(err) == ["Patient.generalPractitioner[1].reference"]


@pytest.mark.parametrize(
    "ref",
    ["Patient/1", "Patient/a-b.c/_history/3", "http://example.org/fhir/Patient/1", "https://example.org/x",
     "urn:uuid:9d3e7f1c-7b2a-4a53-9a91-8e1a3c2b6f10", "urn:oid:1.2.840.10008"],
)  # fmt: skip
def test_accepted_reference_forms(ref: str) -> None:
    validate_resource(observation(subject={"reference": ref}))


@pytest.mark.parametrize(
    "ref",
    ["Banana/1", "Patient", "Patient/a/b", "Patient/", "patient/1", "ftp://x/Patient/1", "urn:uuid:nope",
     "http://example.org/fhir/Practitioner/1", "#missing", "Patient/../x",
     "Patient/..", "Patient/."],
)  # fmt: skip
def test_refused_reference_forms(ref: str) -> None:
    err = fails(observation(subject={"reference": ref}))
    assert err.status == 422
    assert expressions(err) == ["Observation.subject.reference"]


@given(st.sampled_from(sorted(SUPPORTED_TYPES | {"Group", "Device", "Location", "Organization"})))
@settings(max_examples=40, deadline=None)
def test_observation_subject_targets(rtype: str) -> None:
    data = observation(subject={"reference": f"{rtype}/x1"})
    if rtype in {"Patient", "Group", "Device", "Location"}:
        validate_resource(data)
    else:
        assert expressions(fails(data)) == ["Observation.subject.reference"]


def test_reference_type_must_agree() -> None:
    err = fails(observation(subject={"reference": "Patient/1", "type": "Group"}))
    assert expressions(err) == ["Observation.subject.type"]


def test_contained_references_and_bindings() -> None:
    contained = [{"resourceType": "Patient", "id": "p", "gender": "male"}]
    validate_resource(observation(contained=contained, subject={"reference": "#p"}))
    bad = [{"resourceType": "Patient", "id": "p", "gender": "nope"}]
    err = fails(observation(contained=bad, subject={"reference": "#q"}))
    assert sorted(expressions(err)) == ["Observation.contained[0].gender", "Observation.subject.reference"]
    err = fails(observation(contained=[{"resourceType": "Banana"}]))
    assert err.status == 422 and expressions(err) == ["Observation.contained[0]"]


def test_deep_nesting_reports_the_full_path() -> None:
    validate_resource(_nested_questionnaire(25))
    err = fails(_nested_questionnaire(25, leaf_type="colour"))
    assert err.status == 422
    assert expressions(err) == ["Questionnaire.item[0]" + ".item[0]" * 25 + ".type"]


def test_all_issues_are_collected() -> None:
    err = fails(patient(gender="x", colour="blue", managingOrganization={"reference": "Patient/1"}))
    assert sorted(expressions(err)) == [
        "Patient.colour",
        "Patient.gender",
        "Patient.managingOrganization.reference",
    ]


# --- the official R4 examples -------------------------------------------------------------------


def _example_files() -> list[Path]:
    if not EXAMPLES.is_dir():
        return []
    out = []
    for path in sorted(EXAMPLES.glob("*-*.json")):
        if path.name.startswith(("StructureDefinition-", "ValueSet-", "CodeSystem-", "SearchParameter-")):
            continue
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("resourceType") in SUPPORTED_TYPES:
            out.append(path)
    return out


_FILES = _example_files()
needs_examples = pytest.mark.skipif(not _FILES, reason=f"FHIR R4 examples package not at {EXAMPLES}")


@needs_examples
def test_example_sweep_finds_every_supported_example() -> None:
    assert len(_FILES) == 217
    assert {p.name for p in _FILES} >= set(KNOWN_INVALID)


@needs_examples
@pytest.mark.parametrize("path", _FILES, ids=[p.name for p in _FILES])
def test_official_example(path: Path) -> None:
    data = json.loads(path.read_text())
    if path.name in KNOWN_INVALID:
        err = fails(data)
        assert err.status == 422 and KNOWN_INVALID[path.name] in expressions(err)
    else:
        assert validate_resource(data, expected_type=data["resourceType"]) == json.loads(path.read_text())


@needs_examples
def test_committed_bindings_match_the_generator() -> None:
    spec = importlib.util.spec_from_file_location(
        "build_fhir_bindings", REPO / "scripts/build_fhir_bindings.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc, skipped = module.build(EXAMPLES)
    committed = json.loads((REPO / "src/medweave/records/data/bindings.json").read_text())
    assert doc == committed
    assert set(skipped) == {"currencies", "mimetypes"}
    assert (
        set(doc["valueSets"]["administrative-gender"]["http://hl7.org/fhir/administrative-gender"])
        == ADMIN_GENDER
    )


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"resourceType": "Patient", "active": "yes"}, "Patient.active"),
        ({"resourceType": "Patient", "active": 1}, "Patient.active"),
        ({"resourceType": "Patient", "multipleBirthInteger": "3"}, "Patient.multipleBirthInteger"),
        ({"resourceType": "Patient", "active": None}, "Patient.active"),
        ({"resourceType": "Patient", "name": [{}]}, "Patient.name[0]"),
        ({"resourceType": "Patient", "name": []}, "Patient.name"),
        ({"resourceType": "Patient", "name": [{"family": ""}]}, "Patient.name[0].family"),
        (
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "valueQuantity": {"value": "72"},
            },
            "Observation.valueQuantity.value",
        ),
    ],
)
def test_json_types_are_not_coerced(body: dict, path: str) -> None:
    """R4 JSON fixes primitive JSON types and forbids empty values (http://hl7.org/fhir/R4/json.html)."""
    with pytest.raises(Unprocessable) as info:
        validate_resource(body)
    assert path in [e for i in info.value.issues for e in i.expression]


def test_nulls_line_up_primitive_extensions() -> None:
    body = {
        "resourceType": "Patient",
        "name": [
            {
                "given": [None, "Jo"],
                "_given": [{"extension": [{"url": "http://x", "valueString": "a"}]}, None],
            }
        ],
    }
    assert validate_resource(body) is body
