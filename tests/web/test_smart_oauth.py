"""SMART App Launch: discovery, the authorization-code flow with PKCE, and the token it yields."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from pages_support import Clinic, build_clinic, csrf_of, sign_in

from medweave.records.service import RecordService

REDIRECT = "http://127.0.0.1:9/callback"
AUD = "http://testserver/fhir"


@pytest.fixture
def clinic(records: RecordService, tmp_path: Path) -> Clinic:
    return build_clinic(records, tmp_path)


@pytest.fixture
def client(clinic: Clinic) -> Iterator[TestClient]:
    with TestClient(clinic.app) as c:
        yield c


@pytest.fixture
def app_id(clinic: Clinic) -> str:
    registered = clinic.identity.register_client(
        name="my-health-app",
        redirect_uris=[REDIRECT],
        public=True,
        scopes="patient/*.rs launch/patient openid fhirUser",
    )
    return registered.client.id


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _authorize_url(app_id: str, challenge: str, **over: str) -> str:
    params = {
        "response_type": "code",
        "client_id": app_id,
        "redirect_uri": REDIRECT,
        "scope": "patient/Observation.rs patient/Patient.rs launch/patient",
        "state": "s-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "aud": AUD,
    } | over
    return "/oauth/authorize?" + urlencode(params)


def _redirect_params(response) -> dict[str, str]:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.mark.parametrize(
    "path", ["/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"]
)
def test_discovery(client: TestClient, path: str) -> None:
    conf = client.get(path).json()
    assert conf["authorization_endpoint"] == "http://testserver/oauth/authorize"
    assert conf["token_endpoint"] == "http://testserver/oauth/token"
    assert conf["code_challenge_methods_supported"] == ["S256"]
    assert "permission-v2" in conf["capabilities"]


def _approve(client: TestClient, clinic: Clinic, app_id: str, challenge: str) -> str:
    first = client.get(_authorize_url(app_id, challenge), follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/signin"
    csrf = sign_in(client, clinic, "alice")  # comes back to the consent page after signing in
    consent = client.get(_authorize_url(app_id, challenge))
    assert "Allow my-health-app?" in consent.text
    form = {"csrf_token": csrf_of(consent.text), "decision": "allow"}
    for name in (
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "aud",
    ):
        form[name] = parse_qs(urlsplit(_authorize_url(app_id, challenge)).query)[name][0]
    assert csrf
    back = _redirect_params(client.post("/oauth/authorize", data=form, follow_redirects=False))
    assert back["state"] == "s-123"
    return back["code"]


def test_patient_app_gets_a_token_for_the_patients_own_record(
    client: TestClient, clinic: Clinic, app_id: str
):
    verifier, challenge = _pkce()
    code = _approve(client, clinic, app_id, challenge)
    exchange = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": app_id,
    }
    token = client.post("/oauth/token", data=exchange | {"code_verifier": verifier})
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["token_type"] == "Bearer" and body["patient"] == clinic.patient_id
    assert "patient/Observation.rs" in body["scope"]

    api = TestClient(clinic.app, headers={"Authorization": f"Bearer {body['access_token']}"})
    observations = api.get("/fhir/Observation").json()
    subjects = {
        e["resource"]["subject"]["reference"] for e in observations.get("entry", []) if "resource" in e
    }
    assert subjects == {f"Patient/{clinic.patient_id}"}
    assert api.get(f"/fhir/Patient/{clinic.other_id}").status_code == 404
    assert api.get("/fhir/Condition").status_code == 403  # not granted: the app asked for no Conditions
    assert api.post("/fhir/Observation", json={"resourceType": "Observation"}).status_code == 403

    again = client.post("/oauth/token", data=exchange | {"code_verifier": verifier})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"  # single use


def test_wrong_verifier_is_refused(client: TestClient, clinic: Clinic, app_id: str) -> None:
    _verifier, challenge = _pkce()
    code = _approve(client, clinic, app_id, challenge)
    exchange = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": app_id,
        "code_verifier": _pkce()[0],
    }
    r = client.post("/oauth/token", data=exchange)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_unregistered_redirect_is_never_followed(client: TestClient, app_id: str) -> None:
    _v, challenge = _pkce()
    r = client.get(
        _authorize_url(app_id, challenge, redirect_uri="https://evil.example/cb"), follow_redirects=False
    )
    assert r.status_code == 400 and "location" not in r.headers


def test_missing_pkce_and_wrong_audience_go_back_as_errors(client: TestClient, app_id: str) -> None:
    _v, challenge = _pkce()
    r = client.get(_authorize_url(app_id, challenge, code_challenge_method="plain"), follow_redirects=False)
    assert _redirect_params(r)["error"] == "invalid_request"
    r = client.get(
        _authorize_url(app_id, challenge, aud="https://other.example/fhir"), follow_redirects=False
    )
    assert _redirect_params(r)["error"] == "invalid_request"


def test_denying_tells_the_app(client: TestClient, clinic: Clinic, app_id: str) -> None:
    _v, challenge = _pkce()
    sign_in(client, clinic, "alice")
    consent = client.get(_authorize_url(app_id, challenge))
    query = parse_qs(urlsplit(_authorize_url(app_id, challenge)).query)
    form = {k: v[0] for k, v in query.items() if k != "response_type"}
    form |= {"csrf_token": csrf_of(consent.text), "decision": "deny"}
    back = _redirect_params(client.post("/oauth/authorize", data=form, follow_redirects=False))
    assert back["error"] == "access_denied" and "code" not in back


def test_token_endpoint_refuses_unknown_clients(client: TestClient) -> None:
    r = client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT, "client_id": "nope"}
        | {"code_verifier": "v" * 43},
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
