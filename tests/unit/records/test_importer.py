"""The importer's planning: which entries become which transactions, and how references are fixed.

No database: the resolver has no service, so only what the import itself wrote is "known".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medweave.errors import InvalidInput
from medweave.records.importer import (
    ImportSummary,
    Resolver,
    fix_references,
    plan_resources,
    plan_transaction,
    scan,
    stable_id,
)

PAT = "urn:uuid:11111111-1111-4111-8111-111111111111"
ORG = "urn:uuid:22222222-2222-4222-8222-222222222222"
DOC = "urn:uuid:33333333-3333-4333-8333-333333333333"
NPI = "http://hl7.org/fhir/sid/us-npi"


def _entry(resource: dict[str, Any], full_url: str | None = None, method: str = "POST") -> dict[str, Any]:
    url = resource["resourceType"] + (f"/{resource['id']}" if method == "PUT" else "")
    out: dict[str, Any] = {"resource": resource, "request": {"method": method, "url": url}}
    if full_url:
        out["fullUrl"] = full_url
    return out


def _synthea_like() -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _entry({"resourceType": "Patient", "name": [{"family": "Doe"}]}, PAT),
            _entry(
                {
                    "resourceType": "Organization",
                    "name": "General Hospital",
                    "identifier": [{"system": "urn:org", "value": "gh-1"}],
                },
                ORG,
            ),
            _entry(
                {
                    "resourceType": "Practitioner",
                    "id": "dr-1",
                    "identifier": [{"system": NPI, "value": "999"}],
                },
                DOC,
            ),
            _entry(
                {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                    "subject": {"reference": PAT},
                    "serviceProvider": {"reference": ORG},
                    "participant": [{"individual": {"reference": DOC}}],
                }
            ),
            _entry({"resourceType": "Claim", "status": "active", "patient": {"reference": PAT}}),
        ],
    }


def test_transaction_bundle_stays_whole_and_drops_unsupported_types() -> None:
    summary = ImportSummary()
    unit = plan_transaction(_synthea_like(), Resolver(None), summary)
    assert unit.bundle is not None and unit.bundle["type"] == "transaction"
    types = [e["resource"]["resourceType"] for e in unit.bundle["entry"]]
    assert types == ["Patient", "Practitioner", "Encounter"]
    assert summary.skipped == {"Organization": 1, "Claim": 1}
    assert unit.consumed == 5
    assert unit.imported == {"Patient": 1, "Practitioner": 1, "Encounter": 1}


def test_reference_to_a_dropped_entry_becomes_a_logical_reference() -> None:
    summary = ImportSummary()
    unit = plan_transaction(_synthea_like(), Resolver(None), summary)
    assert unit.bundle is not None
    encounter = unit.bundle["entry"][2]["resource"]
    assert encounter["serviceProvider"] == {
        "type": "Organization",
        "identifier": {"system": "urn:org", "value": "gh-1"},
        "display": "General Hospital",
    }
    assert encounter["subject"] == {"reference": PAT}  # left for transaction() to resolve
    assert summary.references_neutralised == 1


def test_shared_practitioner_is_created_once_under_a_stable_id() -> None:
    bundle = _synthea_like()
    copy_url = "urn:uuid:44444444-4444-4444-8444-444444444444"
    bundle["entry"].append(_entry({"resourceType": "Practitioner", "id": "dr-1"}, copy_url))
    bundle["entry"][3]["resource"]["participant"].append({"individual": {"reference": copy_url}})
    summary = ImportSummary()
    unit = plan_transaction(bundle, Resolver(None), summary)
    assert unit.bundle is not None
    practitioners = [e for e in unit.bundle["entry"] if e["resource"]["resourceType"] == "Practitioner"]
    assert [e["request"] for e in practitioners] == [{"method": "PUT", "url": "Practitioner/dr-1"}]
    assert summary.merged == 1
    refs = [p["individual"]["reference"] for p in unit.bundle["entry"][2]["resource"]["participant"]]
    assert refs == ["Practitioner/dr-1", "Practitioner/dr-1"]


def test_a_shared_resource_already_known_is_not_written_again() -> None:
    resolver = Resolver(None)
    resolver.remember("Practitioner", "dr-1", {"resourceType": "Practitioner"})
    summary = ImportSummary()
    unit = plan_transaction(_synthea_like(), resolver, summary)
    assert unit.bundle is not None
    assert [e["resource"]["resourceType"] for e in unit.bundle["entry"]] == ["Patient", "Encounter"]
    assert summary.merged == 1


def test_if_none_exist_gives_a_stable_id_that_conditional_references_find() -> None:
    directory = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": DOC,
                "resource": {"resourceType": "Practitioner", "identifier": [{"system": NPI, "value": "42"}]},
                "request": {"method": "POST", "url": "Practitioner", "ifNoneExist": f"identifier={NPI}|42"},
            }
        ],
    }
    resolver = Resolver(None)
    unit = plan_transaction(directory, resolver, ImportSummary())
    sid = stable_id("Practitioner", NPI, "42")
    assert unit.bundle is not None and unit.bundle["entry"][0]["request"]["url"] == f"Practitioner/{sid}"
    for res_type, res_id, resource in unit.shared:
        resolver.remember(res_type, res_id, resource)
    ref = {"reference": f"Practitioner?identifier={NPI}|42"}
    assert fix_references(ref, mapping={}, dropped={}, resolver=resolver) == 0
    assert ref == {"reference": f"Practitioner/{sid}"}


def test_unresolvable_conditional_reference_keeps_its_identifier() -> None:
    ref = {"reference": f"Organization?identifier={NPI}|7", "display": "Clinic"}
    assert fix_references(ref, mapping={}, dropped={}, resolver=Resolver(None)) == 1
    assert ref == {"type": "Organization", "identifier": {"system": NPI, "value": "7"}, "display": "Clinic"}


def test_collection_is_chunked_and_urn_references_cross_chunks() -> None:
    patient = {"fullUrl": PAT, "resource": {"resourceType": "Patient"}}
    observations = [
        {
            "fullUrl": f"urn:uuid:00000000-0000-4000-8000-00000000000{i}",
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": PAT},
            },
        }
        for i in range(3)
    ]
    items = [(f"entry {i}", e) for i, e in enumerate([patient, *observations])]
    units = list(plan_resources(items, Resolver(None), ImportSummary(), chunk_size=2))
    assert [len(u.bundle["entry"]) for u in units if u.bundle] == [2, 2]
    entries = [e for u in units if u.bundle for e in u.bundle["entry"]]
    assert all(e["request"]["method"] == "PUT" for e in entries)
    patient_url = entries[0]["request"]["url"]
    assert patient_url.startswith("Patient/")
    assert {e["resource"]["subject"]["reference"] for e in entries[1:]} == {patient_url}
    assert sum(u.consumed for u in units) == 4


def test_ndjson_lines_with_id_are_put_without_id_posted_and_a_repeated_id_splits_the_chunk() -> None:
    lines = [
        ("line 1", {"resourceType": "Patient", "id": "a"}),
        ("line 2", {"resourceType": "Patient"}),
        ("line 3", {"resourceType": "Patient", "id": "a", "active": True}),
        ("line 4", {"resourceType": "Medication", "id": "m"}),
    ]
    summary = ImportSummary()
    units = list(plan_resources(lines, Resolver(None), summary, chunk_size=10))
    requests = [[e["request"] for e in u.bundle["entry"]] for u in units if u.bundle]
    assert requests == [
        [{"method": "PUT", "url": "Patient/a"}, {"method": "POST", "url": "Patient"}],
        [{"method": "PUT", "url": "Patient/a"}],
    ]
    assert units[1].origins == ["line 3"]
    assert summary.skipped == {"Medication": 1}
    assert sum(u.consumed for u in units) == 4


def test_scan_refuses_bad_json_with_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "data.ndjson"
    bad.write_text('{"resourceType": "Patient"}\n{"resourceType": \n')
    with pytest.raises(InvalidInput, match="line 2: not valid JSON"):
        scan(bad)


def test_scan_refuses_a_json_file_that_is_not_fhir(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2]")
    with pytest.raises(InvalidInput, match="no resourceType"):
        scan(bad)


def test_scan_orders_directory_bundles_before_patient_bundles(tmp_path: Path) -> None:
    (tmp_path / "a_patient.json").write_text(json.dumps(_synthea_like()))
    directory = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [_entry({"resourceType": "Practitioner"})],
    }
    (tmp_path / "z_practitioners.json").write_text(json.dumps(directory))
    (tmp_path / "notes.txt").write_text("ignored")
    sources = scan(tmp_path)
    assert [s.path.name for s in sources] == ["z_practitioners.json", "a_patient.json"]
    assert [s.count for s in sources] == [1, 5]
