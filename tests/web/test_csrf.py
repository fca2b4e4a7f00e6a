"""CSRF: every POST of a page needs the right token; a missing or wrong one is 403 and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pages_support import PASSWORD, Clinic, build_clinic, csrf_of, sign_in

from medweave.records.service import RecordService


@pytest.fixture
def clinic(records: RecordService, tmp_path: Path) -> Clinic:
    return build_clinic(records, tmp_path)


@pytest.fixture
def client(clinic: Clinic) -> Iterator[TestClient]:
    with TestClient(clinic.app) as c:
        yield c


BAD_TOKENS = [None, "", "not-the-token", "x" * 5000]


def _with(token: str | None, data: dict[str, str]) -> dict[str, str]:
    return data if token is None else {**data, "csrf_token": token}


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_create_user_without_the_token_changes_nothing(
    client: TestClient, clinic: Clinic, token: str | None
) -> None:
    sign_in(client, clinic, "ada")
    before = clinic.identity.list_users()
    r = client.post(
        "/admin/users", data=_with(token, {"username": "mallory", "role": "admin", "password": PASSWORD})
    )
    assert r.status_code == 403
    assert "did not come from this site" in r.text
    assert clinic.identity.list_users() == before


def test_another_sessions_token_is_refused(client: TestClient, clinic: Clinic) -> None:
    other = TestClient(clinic.app)
    foreign = sign_in(other, clinic, "bob")
    sign_in(client, clinic, "grey")
    r = client.post(
        "/break-glass",
        data={"csrf_token": foreign, "patient": clinic.other_id, "reason": "a good long reason"},
    )
    assert r.status_code == 403
    assert clinic.identity.active_grants(clinic.user_ids["grey"]) == []


def test_review_without_the_token_changes_nothing(client: TestClient, clinic: Clinic) -> None:
    grant = clinic.identity.start_break_glass(
        user_id=clinic.user_ids["grey"], patient_id=clinic.other_id, reason="emergency at night"
    )
    sign_in(client, clinic, "ada")
    r = client.post(f"/admin/reviews/{grant.id}", data={"note": "fine"})
    assert r.status_code == 403
    assert [g.id for g in clinic.identity.pending_reviews()] == [grant.id]


def test_sign_out_without_the_token_keeps_the_session(client: TestClient, clinic: Clinic) -> None:
    sign_in(client, clinic, "alice")
    assert client.post("/signout", data={}).status_code == 403
    assert client.get("/me").status_code == 200


def test_the_header_works_like_the_field(client: TestClient, clinic: Clinic) -> None:
    """HTMX sends the token in ``X-CSRF-Token`` (``hx-headers`` on ``<body>``)."""
    token = sign_in(client, clinic, "grey")
    page = client.get("/patients").text
    assert f'data-hx-headers=\'{{"X-CSRF-Token": "{token}"}}\'' in page
    r = client.post(
        "/break-glass",
        data={"patient": clinic.other_id, "reason": "a good long reason", "minutes": "15"},
        headers={"X-CSRF-Token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert len(clinic.identity.active_grants(clinic.user_ids["grey"])) == 1


@pytest.mark.parametrize("token", [None, "forged"])
def test_sign_in_form_needs_its_token(client: TestClient, clinic: Clinic, token: str | None) -> None:
    client.get("/signin")  # the browser holds a sign-in nonce cookie
    r = client.post(
        "/signin", data=_with(token, {"username": "alice", "password": PASSWORD}), follow_redirects=False
    )
    assert r.status_code == 403
    assert "medweave-session" not in r.headers.get("set-cookie", "")


def test_sign_in_token_is_bound_to_the_browser(client: TestClient, clinic: Clinic) -> None:
    """A token copied from another browser's form does not match this browser's nonce cookie."""
    attacker = TestClient(clinic.app)
    stolen = csrf_of(attacker.get("/signin").text)
    client.get("/signin")
    r = client.post("/signin", data={"csrf_token": stolen, "username": "alice", "password": PASSWORD})
    assert r.status_code == 403


def test_api_changes_with_a_cookie_need_the_header(client: TestClient, clinic: Clinic) -> None:
    token = sign_in(client, clinic, "grey")
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Pulse"},
        "subject": {"reference": f"Patient/{clinic.patient_id}"},
        "valueQuantity": {"value": 70, "unit": "/min"},
    }
    headers = {"Content-Type": "application/fhir+json"}
    before = client.get("/fhir/Observation", params={"_summary": "count"}).json()["total"]
    assert client.post("/fhir/Observation", json=body, headers=headers).status_code == 403
    assert (
        client.post("/fhir/Observation", json=body, headers={**headers, "X-CSRF-Token": "x"}).status_code
        == 403
    )
    assert client.get("/fhir/Observation", params={"_summary": "count"}).json()["total"] == before
    ok = client.post("/fhir/Observation", json=body, headers={**headers, "X-CSRF-Token": token})
    assert ok.status_code == 201
