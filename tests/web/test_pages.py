"""The pages through the HTTP stack: sign-in, sessions, patient home, charts, admin, break-glass."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pages_support import PASSWORD, Clinic, build_clinic, csrf_of, sign_in
from sqlalchemy import update

from medweave.identity.tables import user_sessions
from medweave.records.service import RecordService


@pytest.fixture
def clinic(records: RecordService, tmp_path: Path) -> Clinic:
    return build_clinic(records, tmp_path)


@pytest.fixture
def client(clinic: Clinic) -> Iterator[TestClient]:
    with TestClient(clinic.app) as c:
        yield c


def main_of(html: str) -> str:
    return html[html.index("<main") : html.index("</main>")]


def test_pages_need_a_session(client: TestClient) -> None:
    for path in ("/", "/me", "/patients", "/admin/users", "/break-glass"):
        r = client.get(path, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/signin"), path


def test_wrong_password_is_refused_and_audited(client: TestClient, clinic: Clinic) -> None:
    token = csrf_of(client.get("/signin").text)
    r = client.post(
        "/signin", data={"csrf_token": token, "username": "alice", "password": "wrong password!!"}
    )
    assert r.status_code == 401
    assert "username or password is not right" in r.text
    assert "medweave-session" not in r.headers.get("set-cookie", "")
    audit = clinic.records.trail.audit
    assert audit is not None
    failed = [e for e in audit.since(0) if e.interaction == "login" and e.outcome != 0]
    assert len(failed) == 1


def test_patient_home_shows_record_and_access_history(client: TestClient, clinic: Clinic) -> None:
    sign_in(client, clinic, "alice")
    r = client.get("/me")
    assert r.status_code == 200
    html = r.text
    assert "Alice Liddell" in html and "1985-04-12" in html
    assert "Hypertension" in html
    assert "Systolic blood pressure" in html and "131 mm[Hg]" in html
    assert 'id="access-history"' in html
    assert "Added your details" in html  # the operator created the record: it shows, honestly
    assert r.headers["cache-control"] == "no-store"


def test_access_history_names_the_clinician(client: TestClient, clinic: Clinic) -> None:
    staff = TestClient(clinic.app)  # a second browser; no lifespan (that would close the audit writer)
    sign_in(staff, clinic, "grey")
    assert staff.get(f"/patients/{clinic.patient_id}").status_code == 200
    sign_in(client, clinic, "alice")
    history = client.get("/me").text.split('id="access-history"')[1]
    assert "grey (clinician)" in history
    assert "Viewed your details" in history


def test_patient_cannot_open_another_chart(client: TestClient, clinic: Clinic) -> None:
    sign_in(client, clinic, "alice")
    other = client.get(f"/patients/{clinic.other_id}")
    missing = client.get("/patients/no-such-patient")
    assert other.status_code == missing.status_code == 404
    assert main_of(other.text) == main_of(missing.text)
    assert "Bob" not in other.text
    assert client.get(f"/patients/{clinic.patient_id}").status_code == 200  # their own is fine


def test_patients_get_no_staff_pages(client: TestClient, clinic: Clinic) -> None:
    sign_in(client, clinic, "alice")
    for path in ("/patients", "/admin/users", "/admin/reviews", "/break-glass"):
        assert client.get(path).status_code == 404, path


def test_clinician_search_and_chart(client: TestClient, clinic: Clinic) -> None:
    sign_in(client, clinic, "grey")
    listing = client.get("/patients").text
    assert "Alice Liddell" in listing and "Bob" not in listing  # only patients in care
    found = client.get("/patients/results", params={"q": "Liddell"}, headers={"HX-Request": "true"})
    assert found.status_code == 200 and "<html" not in found.text
    assert f'href="/patients/{clinic.patient_id}"' in found.text
    assert "No patient in your care matches" in client.get("/patients/results", params={"q": "Builder"}).text
    chart = client.get(f"/patients/{clinic.patient_id}").text
    assert chart.count('<svg xmlns="http://www.w3.org/2000/svg" class="trend"') == 2
    points = re.findall(r'<polyline class="line" fill="none" points="([^"]+)"', chart)
    assert sorted(len(p.split()) for p in points) == [3, 5]
    assert "does not store medication records" in chart
    assert "Hypertension" in chart
    assert client.get(f"/patients/{clinic.other_id}").status_code == 404


def test_staff_sign_in_needs_the_second_factor(client: TestClient, clinic: Clinic) -> None:
    token = csrf_of(client.get("/signin").text)
    r = client.post(
        "/signin",
        data={"csrf_token": token, "username": "grey", "password": PASSWORD},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/signin/totp"
    assert client.get("/patients", follow_redirects=False).headers["location"] == "/signin/totp"
    assert client.get(f"/fhir/Patient/{clinic.patient_id}").status_code == 401
    token = csrf_of(client.get("/signin/totp").text)
    r = client.post("/signin/totp", data={"csrf_token": token, "code": "000000"})
    assert r.status_code == 401 and "That code is not right" in r.text


def test_staff_without_totp_enrol_by_qr_code(client: TestClient, clinic: Clinic) -> None:
    from medweave.security import totp

    token = csrf_of(client.get("/signin").text)
    r = client.post("/signin", data={"csrf_token": token, "username": "newbie", "password": PASSWORD})
    assert r.url.path == "/signin/enrol"
    assert re.search(r'<svg role="img" width="\d+" height="\d+" class="segno"><title>QR code', r.text)
    secret = re.search(r'<code class="secret" id="totp-secret">([A-Z2-7 ]+)</code>', r.text)
    assert secret is not None
    code = totp.code_for(secret.group(1).replace(" ", ""))
    r = client.post("/signin/enrol", data={"csrf_token": csrf_of(r.text), "code": code})
    assert r.status_code == 200 and r.url.path == "/patients"
    assert clinic.identity.get_user(clinic.user_ids["newbie"]).totp_enabled


def _age_session(clinic: Clinic, **values: datetime) -> None:
    with clinic.records.engine.begin() as conn:
        conn.execute(update(user_sessions).values(**values))


def test_idle_session_expires_to_sign_in(client: TestClient, clinic: Clinic) -> None:
    sign_in(client, clinic, "alice")
    _age_session(clinic, last_seen=datetime.now(UTC) - timedelta(minutes=16))
    r = client.get("/me", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/signin")


def test_absolute_session_expiry_and_htmx_redirect(client: TestClient, clinic: Clinic) -> None:
    sign_in(client, clinic, "grey")
    _age_session(clinic, expires=datetime.now(UTC) - timedelta(seconds=1))
    r = client.get("/patients/results", params={"q": "a"}, headers={"HX-Request": "true"})
    assert r.headers["hx-redirect"] == "/signin"
    assert "Alice" not in r.text


def test_sign_out_ends_the_session(client: TestClient, clinic: Clinic) -> None:
    token = sign_in(client, clinic, "alice")
    cookie = client.cookies["medweave-session"]
    r = client.post("/signout", data={"csrf_token": token}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/signin")
    replay = TestClient(clinic.app, cookies={"medweave-session": cookie})
    assert replay.get("/me", follow_redirects=False).headers["location"] == "/signin"


def test_session_cookie_attributes(client: TestClient, clinic: Clinic) -> None:
    token = csrf_of(client.get("/signin").text)
    r = client.post(
        "/signin",
        data={"csrf_token": token, "username": "alice", "password": PASSWORD},
        follow_redirects=False,
    )
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith("medweave-session=")
    assert "httponly" in cookie and "samesite=lax" in cookie and "max-age" not in cookie


def test_break_glass_opens_a_chart_and_is_reviewed(client: TestClient, clinic: Clinic) -> None:
    token = sign_in(client, clinic, "grey")
    assert client.get(f"/patients/{clinic.other_id}").status_code == 404
    short = client.post("/break-glass", data={"csrf_token": token, "patient": clinic.other_id, "reason": "x"})
    assert short.status_code == 400 and "at least 10 characters" in short.text
    r = client.post(
        "/break-glass",
        data={
            "csrf_token": token,
            "patient": clinic.other_id,
            "reason": "Unconscious in A&E",
            "minutes": "30",
        },
    )
    assert r.status_code == 200 and r.url.path == f"/patients/{clinic.other_id}"
    assert "Emergency access." in r.text and "Bob Builder" in r.text
    audit = clinic.records.trail.audit
    assert audit is not None
    assert any(e.interaction == "break-glass" and e.patient_id == clinic.other_id for e in audit.since(0))

    admin = TestClient(clinic.app)
    admin_token = sign_in(admin, clinic, "ada")
    page = admin.get("/admin/reviews").text
    assert "grey opened Patient/" in page and "Unconscious in A&amp;E" in page
    grant = clinic.identity.pending_reviews()[0]
    r = admin.post(f"/admin/reviews/{grant.id}", data={"csrf_token": admin_token, "note": "Checked: A&E"})
    assert r.status_code == 200 and "No break-glass access is waiting for review" in r.text
    assert clinic.identity.pending_reviews() == []
    again = admin.post(f"/admin/reviews/{grant.id}", data={"csrf_token": admin_token, "note": "twice"})
    assert again.status_code == 400
    reviews = [e for e in audit.since(0) if e.interaction == "security-changed"]
    assert [(e.outcome, e.patient_id) for e in reviews] == [(0, clinic.other_id), (4, None)]
    assert f"grant:{grant.id}" in reviews[0].body and reviews[0].user_ref == reviews[1].user_ref
    assert "Checked" not in reviews[0].body  # the note stays with the grant, not in the audit trail


def test_admin_lists_and_creates_users(client: TestClient, clinic: Clinic) -> None:
    token = sign_in(client, clinic, "ada")
    page = client.get("/admin/users").text
    for name in ("alice", "bob", "grey", "ada", "newbie"):
        assert f"<td>{name}</td>" in page
    assert "Hypertension" not in page  # admins see accounts, not clinical data
    r = client.post(
        "/admin/users",
        data={"csrf_token": token, "username": "lab1", "role": "lab_technician", "password": PASSWORD + "!"},
    )
    assert r.status_code == 200 and "Created user lab1." in r.text
    bad = client.post(
        "/admin/users", data={"csrf_token": token, "username": "lab2", "role": "wizard", "password": "x"}
    )
    assert bad.status_code == 400 and "unknown role" in bad.text
    audit = clinic.records.trail.audit
    assert audit is not None
    created = [e for e in audit.since(0) if e.interaction == "roles-changed"]
    lab1 = clinic.identity.get_user_by_username("lab1")
    assert [(e.action, e.outcome) for e in created] == [("C", 0), ("C", 4)]
    assert f"user:{lab1.id}" in created[0].body and "invalid account details" in created[1].body
    assert PASSWORD not in created[0].body  # no secrets in the trail
    assert (
        client.get(f"/patients/{clinic.patient_id}").status_code == 404
    )  # no clinical data without break-glass


def test_page_session_reads_the_api(client: TestClient, clinic: Clinic) -> None:
    sign_in(client, clinic, "alice")
    assert client.get(f"/fhir/Patient/{clinic.patient_id}").status_code == 200
    assert client.get(f"/fhir/Patient/{clinic.other_id}").status_code == 404
