"""A first walk through the FHIR API: create, read, update with If-Match, history, delete."""

from __future__ import annotations


def test_crud_cycle(client) -> None:
    r = client.post(
        "/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Smoke"}], "gender": "female"}
    )
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"].endswith(f"/Patient/{pid}/_history/1")
    r = client.get(f"/fhir/Patient/{pid}")
    assert r.status_code == 200 and r.json()["name"][0]["family"] == "Smoke"
    body = r.json() | {"gender": "male"}
    r = client.put(f"/fhir/Patient/{pid}", json=body, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200 and r.json()["meta"]["versionId"] == "2"
    r = client.put(f"/fhir/Patient/{pid}", json=body, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 412 and r.json()["resourceType"] == "OperationOutcome"
    r = client.get(f"/fhir/Patient/{pid}/_history")
    assert r.json()["total"] == 2
    r = client.get(f"/fhir/Patient/{pid}/_history/1")
    assert r.json()["gender"] == "female"
    r = client.get("/fhir/Patient", params={"name": "smo"})
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [pid]
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    assert client.get(f"/fhir/Patient/{pid}").status_code == 410
