"""FHIR R4 RESTful semantics (http.html): headers, Prefer, versions, delete, paging, metadata, $everything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, urlsplit

import pytest

from medweave.records.definitions import search_params
from medweave.records.fhir import SUPPORTED_TYPES

BASE = "http://testserver/fhir"


def _patient(family: str = "Doe", **more) -> dict:
    return {"resourceType": "Patient", "name": [{"family": family}], **more}


def _observation(pid: str, code: str = "8867-4") -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": 70, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
    }


def test_create_read_update_headers(client) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    r = client.post("/fhir/Patient", json=_patient())
    assert r.status_code == 201
    assert r.headers["content-type"].startswith("application/fhir+json")
    pid = r.json()["id"]
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"] == f"{BASE}/Patient/{pid}/_history/1"
    modified = parsedate_to_datetime(r.headers["last-modified"])
    assert start <= modified <= datetime.now(UTC)
    last_updated = datetime.fromisoformat(r.json()["meta"]["lastUpdated"].replace("Z", "+00:00"))
    assert modified == last_updated.replace(microsecond=0)

    r = client.get(f"/fhir/Patient/{pid}")
    assert r.headers["etag"] == 'W/"1"' and "location" not in r.headers

    r = client.put(f"/fhir/Patient/{pid}", json=r.json() | {"gender": "other"})
    assert r.status_code == 200
    assert r.headers["etag"] == 'W/"2"' and r.json()["meta"]["versionId"] == "2"
    assert "location" not in r.headers

    # Update as create: PUT with a client-chosen id creates version 1 with 201 and a Location.
    r = client.put("/fhir/Patient/chosen-1", json=_patient(id="chosen-1"))
    assert r.status_code == 201
    assert r.headers["location"] == f"{BASE}/Patient/chosen-1/_history/1"
    # A POST ignores an id in the body and assigns its own.
    r = client.post("/fhir/Patient", json=_patient(id="chosen-1"))
    assert r.status_code == 201 and r.json()["id"] != "chosen-1"


def test_prefer_return(client) -> None:
    r = client.post("/fhir/Patient", json=_patient(), headers={"Prefer": "return=minimal"})
    assert r.status_code == 201 and r.content == b""
    assert r.headers["etag"] == 'W/"1"'
    pid = r.headers["location"].split("/Patient/")[1].split("/")[0]
    assert client.get(f"/fhir/Patient/{pid}").status_code == 200

    r = client.put(
        f"/fhir/Patient/{pid}", json=_patient("Other", id=pid), headers={"Prefer": "return=minimal"}
    )
    assert r.status_code == 200 and r.content == b"" and r.headers["etag"] == 'W/"2"'

    r = client.post("/fhir/Patient", json=_patient(), headers={"Prefer": "return=OperationOutcome"})
    assert r.status_code == 201 and r.json()["resourceType"] == "OperationOutcome"

    r = client.post("/fhir/Patient", json=_patient(), headers={"Prefer": "return=representation"})
    assert r.status_code == 201 and r.json()["resourceType"] == "Patient"


def test_vread_of_older_versions_after_update(client) -> None:
    pid = client.post("/fhir/Patient", json=_patient("First")).json()["id"]
    for family in ("Second", "Third"):
        cur = client.get(f"/fhir/Patient/{pid}").json()
        assert (
            client.put(f"/fhir/Patient/{pid}", json=cur | {"name": [{"family": family}]}).status_code == 200
        )
    for version, family in ((1, "First"), (2, "Second"), (3, "Third")):
        r = client.get(f"/fhir/Patient/{pid}/_history/{version}")
        assert r.status_code == 200
        assert r.headers["etag"] == f'W/"{version}"'
        assert r.json()["name"][0]["family"] == family
        assert r.json()["meta"]["versionId"] == str(version)
    assert client.get(f"/fhir/Patient/{pid}").json()["name"][0]["family"] == "Third"
    assert client.get(f"/fhir/Patient/{pid}/_history/4").status_code == 404


def test_delete_then_read_is_gone_and_old_versions_stay_readable(client) -> None:
    pid = client.post("/fhir/Patient", json=_patient("Deleted")).json()["id"]
    r = client.delete(f"/fhir/Patient/{pid}")
    assert r.status_code == 204 and r.headers["etag"] == 'W/"2"'
    r = client.get(f"/fhir/Patient/{pid}")
    assert r.status_code == 410 and r.json()["resourceType"] == "OperationOutcome"
    r = client.get(f"/fhir/Patient/{pid}/_history/1")
    assert r.status_code == 200 and r.json()["name"][0]["family"] == "Deleted"
    assert client.get(f"/fhir/Patient/{pid}/_history/2").status_code == 410
    history = client.get(f"/fhir/Patient/{pid}/_history").json()
    assert history["total"] == 2
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert "resource" not in history["entry"][0]
    # Deleting again is a no-op; a deleted resource is not found by search.
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    assert client.get(f"/fhir/Patient/{pid}/_history").json()["total"] == 2
    assert client.get("/fhir/Patient", params={"_id": pid}).json()["total"] == 0
    # Deleting what never existed is a no-op too.
    assert client.delete("/fhir/Patient/never-was").status_code == 204
    # A deleted resource can be brought back with a PUT, as version 3.
    r = client.put(f"/fhir/Patient/{pid}", json=_patient("Back", id=pid))
    assert r.status_code in (200, 201) and r.json()["meta"]["versionId"] == "3"
    assert client.get(f"/fhir/Patient/{pid}").status_code == 200


def test_history_paging_links(client) -> None:
    pid = client.post("/fhir/Patient", json=_patient("Paged")).json()["id"]
    for n in range(6):
        cur = client.get(f"/fhir/Patient/{pid}").json()
        client.put(f"/fhir/Patient/{pid}", json=cur | {"name": [{"family": f"Paged{n}"}]})
    url = f"/fhir/Patient/{pid}/_history?_count=3"
    seen: list[str] = []
    pages = 0
    while url:
        bundle = client.get(url).json()
        assert bundle["type"] == "history" and bundle["total"] == 7
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert links["self"].startswith(f"{BASE}/Patient/{pid}/_history")
        assert len(bundle.get("entry", [])) <= 3
        seen += [e["response"]["etag"] for e in bundle.get("entry", [])]
        if pages:
            assert "previous" in links
        pages += 1
        nxt = links.get("next")
        if nxt:
            assert dict(parse_qsl(urlsplit(nxt).query))["_count"] == "3"
        url = nxt.removeprefix("http://testserver") if nxt else ""
        assert pages < 10
    assert pages == 3
    assert seen == [f'W/"{v}"' for v in range(7, 0, -1)]
    # Type and system history see the same versions.
    assert client.get("/fhir/Patient/_history").json()["total"] == 7
    assert client.get("/fhir/_history", params={"_count": 1}).json()["total"] == 7


def test_metadata_lists_exactly_the_supported_types_and_their_search_params(client) -> None:
    r = client.get("/fhir/metadata")
    assert r.status_code == 200
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1" and cs["kind"] == "instance"
    assert "application/fhir+json" in cs["format"]
    (rest,) = cs["rest"]
    assert rest["mode"] == "server"
    by_type = {res["type"]: res for res in rest["resource"]}
    assert len(by_type) == len(rest["resource"])
    assert set(by_type) == set(SUPPORTED_TYPES)
    for res_type, res in by_type.items():
        declared = {p["name"]: p["type"] for p in res["searchParam"]}
        expected = {code: p.type for code, p in search_params(res_type).items()}
        assert declared == expected, res_type
        codes = {i["code"] for i in res["interaction"]}
        assert {"read", "vread", "update", "delete", "create", "search-type", "history-instance"} <= codes
    assert {i["code"] for i in rest["interaction"]} >= {"transaction", "batch"}


def test_every_declared_search_parameter_is_answered(client) -> None:
    """The statement must not promise what search refuses: each declared parameter is accepted."""
    samples = {
        "string": "x", "token": "x", "reference": "Patient/x", "date": "2020", "quantity": "5",
        "number": "5", "uri": "http://x", "special": "x",
    }  # fmt: skip
    cs = client.get("/fhir/metadata").json()
    refused = []
    for res in cs["rest"][0]["resource"]:
        for p in res["searchParam"]:
            value = samples.get(p["type"], "x")
            r = client.get(
                f"/fhir/{res['type']}", params={p["name"]: value}, headers={"Prefer": "handling=strict"}
            )
            if r.status_code != 200:
                refused.append(f"{res['type']}?{p['name']}={value}: {r.status_code}")
    assert not refused, refused


def test_unknown_resource_type_is_404_outcome(client) -> None:
    for path in ("/fhir/Banana", "/fhir/Banana/1", "/fhir/Medication/_history", "/fhir/Banana/1/_history/1"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["resourceType"] == "OperationOutcome"
        assert r.json()["issue"][0]["code"] == "not-found"


def test_patient_everything(client) -> None:
    pid = client.post("/fhir/Patient", json=_patient("Everything")).json()["id"]
    other = client.post("/fhir/Patient", json=_patient("Someone Else")).json()["id"]
    mine = {
        client.post("/fhir/Observation", json=_observation(pid, c)).json()["id"] for c in ("8867-4", "8310-5")
    }
    theirs = client.post("/fhir/Observation", json=_observation(other)).json()["id"]
    r = client.get(f"/fhir/Patient/{pid}/$everything")
    assert r.status_code == 200
    bundle = r.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    keys = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]}
    assert keys == {("Patient", pid)} | {("Observation", o) for o in mine}
    assert ("Observation", theirs) not in keys
    assert bundle["total"] == len(bundle["entry"])


@pytest.mark.parametrize("version", ["\u00b9", "\u0661", "\uff11", "1" * 10, "-1", "1.0"])
def test_odd_version_ids_are_not_found(client, version: str) -> None:
    """Unicode digits pass str.isdigit() but not int(); schemathesis found '¹' answering 500."""
    r = client.post("/fhir/Patient", json={"resourceType": "Patient", "active": True})
    pid = r.json()["id"]
    got = client.get(f"/fhir/Patient/{pid}/_history/{version}")
    assert got.status_code == 404 and got.json()["resourceType"] == "OperationOutcome"
    if version.isascii():  # HTTP header values are ASCII; the client cannot even send the others
        bad = client.put(f"/fhir/Patient/{pid}", json=r.json(), headers={"If-Match": f'W/"{version}"'})
        assert bad.status_code == 400
