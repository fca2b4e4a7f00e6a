"""``transaction`` and ``batch`` Bundles on ``/fhir``: atomicity, urn:uuid references, per-entry outcomes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

TYPES = ("Patient", "Observation")


def _totals(client) -> dict[str, int]:
    return {t: client.get(f"/fhir/{t}/_history", params={"_count": 0}).json()["total"] for t in TYPES}


def _patient(family: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family}]}


def _observation(subject: str, status: str = "final") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"},
        "subject": {"reference": subject},
        "valueQuantity": {
            "value": 72,
            "unit": "beats/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


def _post(resource: dict[str, Any], full_url: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _bundle(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _assert_outcome_names_entry(r, index: int) -> None:
    assert 400 <= r.status_code < 500, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    issues = body["issue"]
    where = [e for i in issues for e in i.get("expression", [])] + [i.get("diagnostics", "") for i in issues]
    assert any(f"entry[{index}]" in w or f"entry {index}" in w for w in where), issues


@pytest.mark.parametrize(
    "bad_entry",
    [
        pytest.param(
            _post({"resourceType": "Observation", "code": {"text": "no status"}}), id="missing-status"
        ),
        pytest.param(_post(_observation("Patient/x", status="banana")), id="bad-code"),
        pytest.param(_post({"resourceType": "Patient", "nickname": "Bob"}), id="unknown-element"),
        pytest.param({"resource": _patient("NoRequest")}, id="no-request"),
        pytest.param(_post(_observation("urn:uuid:" + str(uuid.uuid4()))), id="dangling-urn"),
    ],
)
def test_transaction_with_an_invalid_entry_stores_nothing(client, bad_entry) -> None:
    before = _totals(client)
    bundle = _bundle(
        "transaction",
        [_post(_patient("Atomic"), "urn:uuid:" + str(uuid.uuid4())), bad_entry, _post(_patient("Atomic2"))],
    )
    r = client.post("/fhir", json=bundle)
    _assert_outcome_names_entry(r, 1)
    assert _totals(client) == before
    assert client.get("/fhir/Patient", params={"family": "Atomic"}).json()["total"] == 0


def test_transaction_failing_while_writing_rolls_back_earlier_writes(client) -> None:
    """The POST is written before the PUT fails its If-Match; the whole transaction must roll back."""
    r = client.put("/fhir/Patient/keep", json=_patient("Keep") | {"id": "keep"})
    assert r.status_code == 201
    before = _totals(client)
    bundle = _bundle(
        "transaction",
        [
            _post(_patient("Rollback")),
            {
                "resource": _patient("Changed") | {"id": "keep"},
                "request": {"method": "PUT", "url": "Patient/keep", "ifMatch": 'W/"7"'},
            },
        ],
    )
    r = client.post("/fhir", json=bundle)
    assert r.status_code == 412, r.text
    _assert_outcome_names_entry(r, 1)
    assert _totals(client) == before
    assert client.get("/fhir/Patient/keep").json()["name"][0]["family"] == "Keep"
    assert client.get("/fhir/Patient", params={"family": "Rollback"}).json()["total"] == 0


def test_transaction_resolves_urn_uuid_references(client) -> None:
    patient_urn = "urn:uuid:" + str(uuid.uuid4())
    bundle = _bundle(
        "transaction",
        # The Observation comes first: resolution must not depend on entry order.
        [
            _post(_observation(patient_urn), "urn:uuid:" + str(uuid.uuid4())),
            _post(_patient("Urn"), patient_urn),
        ],
    )
    r = client.post("/fhir", json=bundle)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["resourceType"] == "Bundle" and out["type"] == "transaction-response"
    assert [e["response"]["status"][:3] for e in out["entry"]] == ["201", "201"]
    obs_loc, pat_loc = (e["response"]["location"] for e in out["entry"])
    assert obs_loc.startswith("Observation/") and pat_loc.startswith("Patient/")
    pid = pat_loc.split("/")[1]
    oid = obs_loc.split("/")[1]
    assert pid != patient_urn.removeprefix("urn:uuid:")

    obs = client.get(f"/fhir/Observation/{oid}")
    assert obs.status_code == 200
    assert obs.json()["subject"]["reference"] == f"Patient/{pid}"
    assert client.get(f"/fhir/Patient/{pid}").json()["name"][0]["family"] == "Urn"
    assert out["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{pid}"

    found = client.get("/fhir/Observation", params={"subject": f"Patient/{pid}"}).json()
    assert [e["resource"]["id"] for e in found.get("entry", []) if e["search"]["mode"] == "match"] == [oid]
    found = client.get("/fhir/Observation", params={"patient": pid}).json()
    assert [e["resource"]["id"] for e in found.get("entry", []) if e["search"]["mode"] == "match"] == [oid]


def test_batch_stores_good_entries_and_reports_the_bad_one(client) -> None:
    before = _totals(client)
    bundle = _bundle(
        "batch",
        [
            _post(_patient("BatchA")),
            _post({"resourceType": "Observation", "code": {"text": "no status"}}),
            _post(_patient("BatchB")),
            {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
        ],
    )
    r = client.post("/fhir", json=bundle)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "batch-response"
    statuses = [e["response"]["status"][:3] for e in out["entry"]]
    assert statuses[0] == "201" and statuses[2] == "201"
    assert statuses[1].startswith("4") and statuses[3] == "404"
    bad = out["entry"][1]["response"]["outcome"]
    assert bad["resourceType"] == "OperationOutcome"
    assert any("status" in e for i in bad["issue"] for e in i.get("expression", [])), bad
    after = _totals(client)
    assert after == {"Patient": before["Patient"] + 2, "Observation": before["Observation"]}
    for index, family in ((0, "BatchA"), (2, "BatchB")):
        loc = out["entry"][index]["response"]["location"]
        assert client.get(f"/fhir/{loc.split('/_history')[0]}").json()["name"][0]["family"] == family


@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "Bundle", "type": "collection", "entry": []},
        {"resourceType": "Patient"},
        {"resourceType": "Bundle", "type": "transaction", "entry": {"not": "a list"}},
        [],
    ],
    ids=["collection", "not-a-bundle", "entry-not-list", "array"],
)
def test_posting_something_else_to_the_base_is_refused(client, body) -> None:
    before = _totals(client)
    r = client.post("/fhir", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert _totals(client) == before
