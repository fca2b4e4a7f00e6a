"""Security headers on every answer, HSTS and ``__Host-`` cookies only on TLS, no inline code in pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pages_support import PASSWORD, Clinic, build_clinic, csrf_of, sign_in

from medweave.records.service import RecordService
from medweave.web.headers import CSP
from medweave.web.pages.render import TEMPLATES

EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@pytest.fixture
def clinic(records: RecordService, tmp_path: Path) -> Clinic:
    return build_clinic(records, tmp_path)


@pytest.fixture
def client(clinic: Clinic) -> Iterator[TestClient]:
    with TestClient(clinic.app) as c:
        yield c


def _common(headers: object) -> None:
    h = dict(headers)  # type: ignore[call-overload]
    assert h["content-security-policy"] == EXPECTED_CSP == CSP
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"
    assert h["x-frame-options"] == "DENY"


def test_every_kind_of_answer_has_them(client: TestClient, clinic: Clinic) -> None:
    answers = [
        client.get("/signin"),
        client.get("/me", follow_redirects=False),
        client.get("/fhir/metadata"),
        client.get("/fhir/Patient"),  # 401
        client.get("/no-such-page"),
        client.get("/static/css/medweave.css"),
    ]
    sign_in(client, clinic, "alice")
    answers.append(client.get("/me"))
    for r in answers:
        _common(r.headers)
        assert "strict-transport-security" not in r.headers  # plain http: RFC 6797 §7.2


def test_pages_with_phi_are_not_stored(client: TestClient, clinic: Clinic) -> None:
    sign_in(client, clinic, "grey")
    for path in ("/patients", f"/patients/{clinic.patient_id}", "/patients/results?q=Al", "/break-glass"):
        assert client.get(path).headers["cache-control"] == "no-store", path
    assert client.get(f"/fhir/Patient/{clinic.patient_id}").headers["cache-control"] == "no-store"
    assert "no-store" not in client.get("/static/css/medweave.css").headers.get("cache-control", "")


def test_hsts_when_the_request_is_https(clinic: Clinic) -> None:
    with TestClient(clinic.app, base_url="https://testserver") as c:
        r = c.get("/signin")
    assert r.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"


def test_tls_base_url_gives_hsts_and_host_cookies(records: RecordService, tmp_path: Path) -> None:
    clinic = build_clinic(records, tmp_path, base_url="https://medweave.example")
    with TestClient(clinic.app, base_url="https://testserver") as c:
        first = c.get("/signin")
        assert first.headers["set-cookie"].startswith("__Host-medweave-signin=")
        r = c.post(
            "/signin",
            data={"csrf_token": csrf_of(first.text), "username": "alice", "password": PASSWORD},
            follow_redirects=False,
        )
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("__Host-medweave-session=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie and "Domain" not in cookie
        assert c.get("/me").status_code == 200
    with TestClient(clinic.app) as plain:  # http request, https base URL: still HSTS
        assert "strict-transport-security" in plain.get("/signin").headers


def test_templates_have_no_inline_script_or_style() -> None:
    """The CSP has no 'unsafe-inline', so any inline code would be dead (and a sign of a hole)."""
    for path in TEMPLATES.glob("*.html"):
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path.name
        assert "<style" not in text and " style=" not in text, path.name
        assert not re.search(r"\son[a-z]+\s*=", text), path.name
        assert "javascript:" not in text, path.name


def test_htmx_is_configured_for_the_csp(client: TestClient) -> None:
    page = client.get("/signin").text
    assert '"includeIndicatorStyles":false' in page and '"allowEval":false' in page
    assert '"historyCacheSize":0' in page  # no copies of pages with PHI in localStorage
    assert '<script src="/static/vendor/htmx-2.0.11.min.js" defer></script>' in page
    assert client.get("/static/vendor/htmx-2.0.11.min.js").status_code == 200
