"""Bearer tokens over HTTP (issue 3, "Tokens"): scopes bound everything, and bad tokens are refused.

A ``patient/Observation.rs`` token reads its patient's Observations and nothing else, and writes
nothing; expired, tampered, foreign and unsigned tokens get 401 with ``WWW-Authenticate``; an admin
holding only read scopes cannot write even what admins may write; a backend client with ``system/``
scopes reads every patient.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import BASE, TOKEN_SECRET, bearer
from medweave.security import tokens


def _obs(pid: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": code},
        "subject": {"reference": f"Patient/{pid}"},
    }


@pytest.fixture
def people(client: Any) -> dict[str, str]:
    """Two patients with an Observation each, a Condition of P1, and a Practitioner (as the system)."""
    out: dict[str, str] = {}
    for label in ("P1", "P2"):
        out[label] = client.post("/fhir/Patient", json={"resourceType": "Patient"}).json()["id"]
        out[f"obs-{label}"] = client.post("/fhir/Observation", json=_obs(out[label], label)).json()["id"]
    cond = {
        "resourceType": "Condition",
        "subject": {"reference": f"Patient/{out['P1']}"},
        "code": {"text": "c"},
    }
    out["cond-P1"] = client.post("/fhir/Condition", json=cond).json()["id"]
    out["doc"] = client.post("/fhir/Practitioner", json={"resourceType": "Practitioner"}).json()["id"]
    assert all(out.values())
    return out


@pytest.fixture
def anon(app: Any) -> TestClient:
    """A client that sends no credentials of its own (the ``client`` fixture runs the app's lifespan)."""
    return TestClient(app)  # type: ignore[arg-type]


def _ids(bundle: dict[str, Any]) -> set[str]:
    return {
        e["resource"]["id"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "match"
    }


def _codes(r: Any) -> list[str]:
    return [i["code"] for i in r.json()["issue"]]


def test_patient_observation_token_reads_only_its_observations_and_writes_nothing(
    anon: TestClient, people: dict[str, str]
) -> None:
    h = bearer("patient/Observation.rs", kind="user", subject="pat-1", role="patient", patient=people["P1"])
    p1, p2, o1 = people["P1"], people["P2"], people["obs-P1"]
    writes = [
        anon.post("/fhir/Observation", json=_obs(p1, "new"), headers=h),
        anon.put(f"/fhir/Observation/{o1}", json=_obs(p1, "x") | {"id": o1}, headers=h),
        anon.delete(f"/fhir/Observation/{people['obs-P1']}", headers=h),
        anon.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": _obs(p1, "t"), "request": {"method": "POST", "url": "Observation"}}]}, headers=h),
    ]  # fmt: skip
    for r in writes:
        assert r.status_code == 403, r.text
        assert _codes(r) == ["forbidden"]
    for path in (
        f"/fhir/Condition/{people['cond-P1']}",
        "/fhir/Condition",
        f"/fhir/Condition?patient={p1}",
        f"/fhir/Patient/{p1}",
        f"/fhir/Patient/{p1}/$everything",
    ):
        r = anon.get(path, headers=h)
        assert r.status_code == 403, (path, r.text)
        assert _codes(r) == ["forbidden"]
    r = anon.get("/fhir/Observation", headers=h)
    assert r.status_code == 200 and _ids(r.json()) == {people["obs-P1"]} and r.json()["total"] == 1
    assert anon.get("/fhir/Observation", params={"_summary": "count"}, headers=h).json()["total"] == 1
    assert anon.get(f"/fhir/Observation/{people['obs-P1']}", headers=h).status_code == 200
    hidden = anon.get(f"/fhir/Observation/{people['obs-P2']}", headers=h)
    assert hidden.status_code == 404 and _codes(hidden) == ["not-found"]
    r = anon.get("/fhir/Observation", params={"subject": f"Patient/{p2}"}, headers=h)
    assert r.status_code == 200 and _ids(r.json()) == set() and r.json()["total"] == 0
    r = anon.get("/fhir/Observation", params={"_include": "Observation:subject"}, headers=h)
    assert {e["resource"]["resourceType"] for e in r.json()["entry"]} == {"Observation"}  # no Patient scope
    history = anon.get("/fhir/_history", headers=h).json()
    assert {e["fullUrl"].rsplit("/", 1)[-1] for e in history.get("entry", [])} == {people["obs-P1"]}


def _claims(**over: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "iss": "http://testserver",
        "sub": "someone",
        "aud": BASE,
        "iat": now,
        "exp": now + 3600,
        "jti": "j-1",
        "scope": "system/*.cruds",
        "kind": "client",
    }
    return claims | over


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _token(**kw: Any) -> str:
    args: dict[str, Any] = {
        "secret": TOKEN_SECRET,
        "issuer": "http://testserver",
        "subject": "someone",
        "audience": BASE,
        "scope": "system/*.cruds",
        "kind": "client",
        "ttl": timedelta(hours=1),
    }
    return tokens.issue(**(args | kw))


def _bad_tokens() -> dict[str, str]:
    good = _token()
    head, payload, sig = good.split(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    forged = _b64(
        json.loads(base64.urlsafe_b64decode(payload + "==")) | {"sub": "root", "scope": "system/*.cruds"}
    )
    return {
        "expired": _token(ttl=timedelta(minutes=5), now=datetime.now(UTC) - timedelta(hours=2)),
        "issued in the future": _token(now=datetime.now(UTC) + timedelta(hours=2)),
        "tampered signature": f"{head}.{payload}.{flipped}",
        "tampered payload": f"{head}.{forged}.{sig}",
        "wrong audience": _token(audience="http://other.example/fhir"),
        "wrong issuer": _token(issuer="http://evil.example"),
        "other secret": _token(secret=b"another-secret-that-is-32-bytes-long!!"),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'at+jwt'})}.{_b64(_claims())}.",
        "alg none, no typ": f"{_b64({'alg': 'none'})}.{_b64(_claims())}.",
        "not an access token (typ JWT)": _jwt_with_typ("JWT"),
        "garbage": "not-a-token",
    }


def _jwt_with_typ(typ: str) -> str:
    import jwt

    return jwt.encode(_claims(), TOKEN_SECRET, algorithm="HS256", headers={"typ": typ})


@pytest.mark.parametrize("case", list(_bad_tokens()))
def test_bad_tokens_are_refused_with_401(anon: TestClient, people: dict[str, str], case: str) -> None:
    token = _bad_tokens()[case]
    for method, path in (("GET", "/fhir/Observation"), ("GET", f"/fhir/Observation/{people['obs-P1']}"),
                         ("DELETE", f"/fhir/Observation/{people['obs-P1']}")):  # fmt: skip
        r = anon.request(method, path, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (case, method, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer"), case
        assert _codes(r) == ["login"], case
    assert (
        anon.get(f"/fhir/Observation/{people['obs-P1']}", headers=bearer()).status_code == 200
    )  # still there


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_no_bearer_token_is_401(anon: TestClient, people: dict[str, str], header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for path in ("/fhir/Observation", f"/fhir/Observation/{people['obs-P1']}", "/fhir/_history"):
        r = anon.get(path, headers=headers)
        assert r.status_code == 401, (header, path, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = anon.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=headers)
    assert r.status_code == 401


def test_admin_scopes_bound_what_an_admin_may_do(anon: TestClient, people: dict[str, str]) -> None:
    """Admins write Practitioners; an admin token with only ``user/*.rs`` still writes nothing."""
    read_only = bearer("user/*.rs", kind="user", subject="adm", role="admin")
    full = bearer("user/*.cruds", kind="user", subject="adm", role="admin")
    doc = people["doc"]
    body = {"resourceType": "Practitioner", "id": doc, "name": [{"family": "Changed"}]}
    for r in (
        anon.post("/fhir/Practitioner", json={"resourceType": "Practitioner"}, headers=read_only),
        anon.put(f"/fhir/Practitioner/{doc}", json=body, headers=read_only),
        anon.delete(f"/fhir/Practitioner/{doc}", headers=read_only),
    ):
        assert r.status_code == 403, r.text
        assert _codes(r) == ["forbidden"]
    assert anon.get(f"/fhir/Practitioner/{doc}", headers=read_only).status_code == 200
    assert "name" not in anon.get(f"/fhir/Practitioner/{doc}", headers=bearer()).json()
    created = anon.post("/fhir/Practitioner", json={"resourceType": "Practitioner"}, headers=full)
    assert created.status_code == 201, created.text  # the same admin, with write scopes, may
    # ... and even full scopes give an admin no clinical data
    assert anon.get(f"/fhir/Observation/{people['obs-P1']}", headers=full).status_code == 404
    assert anon.get("/fhir/Observation", headers=full).json()["total"] == 0


def test_user_token_with_system_scopes_is_not_a_backend_client(
    anon: TestClient, people: dict[str, str]
) -> None:
    h = bearer("system/*.cruds", kind="user", subject="mallory", role="clinician")
    assert anon.get(f"/fhir/Observation/{people['obs-P1']}", headers=h).status_code == 404
    assert anon.get("/fhir/Observation", headers=h).json()["total"] == 0


def test_system_client_reads_everything(anon: TestClient, people: dict[str, str]) -> None:
    h = bearer("system/*.rs", subject="integration")
    r = anon.get("/fhir/Observation", headers=h)
    assert r.status_code == 200 and _ids(r.json()) == {people["obs-P1"], people["obs-P2"]}
    for key in ("obs-P1", "obs-P2"):
        assert anon.get(f"/fhir/Observation/{people[key]}", headers=h).status_code == 200
    assert anon.get(f"/fhir/Condition/{people['cond-P1']}", headers=h).status_code == 200
    everything = anon.get(f"/fhir/Patient/{people['P2']}/$everything", headers=h)
    assert everything.status_code == 200
    assert people["obs-P2"] in {e["resource"]["id"] for e in everything.json()["entry"]}
    r = anon.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=h)
    assert r.status_code == 403  # system/*.rs: reads only
