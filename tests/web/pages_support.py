"""A small seeded clinic for the page tests: two patients, a clinician caring for one, an admin.

Users are made through the identity service and records through RecordService as the operator,
as the CLI would. ``sign_in`` drives the real sign-in pages (password, then TOTP for staff).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from conftest import observation
from medweave.config import Settings
from medweave.identity import IdentityService
from medweave.identity.tables import users as users_table
from medweave.records.service import RecordService
from medweave.security import totp
from medweave.security.principal import Principal
from medweave.web.app import create_app
from medweave.web.auth import Authenticator

PASSWORD = "correct horse battery staple"
TOKEN_SECRET = b"medweave-test-token-secret-32-bytes-long!"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Clinic:
    app: Any
    identity: IdentityService
    records: RecordService
    patient_id: str  # Alice, in the clinician's care
    other_id: str  # Bob, in nobody's care
    practitioner_id: str
    secrets: dict[str, str]  # username -> TOTP secret of enrolled staff
    user_ids: dict[str, str]


def seed_records(records: RecordService) -> tuple[str, str, str]:
    """Alice (with observations, a condition, and a care team) and Bob; returns their ids."""
    op = Principal.internal()

    def create(data: dict[str, Any]) -> str:
        return records.create(principal=op, res_type=data["resourceType"], data=data).res_id

    practitioner = create(
        {"resourceType": "Practitioner", "name": [{"family": "Grey", "given": ["Meredith"]}]}
    )
    alice = create(
        {
            "resourceType": "Patient",
            "name": [{"use": "official", "family": "Liddell", "given": ["Alice"]}],
            "birthDate": "1985-04-12",
            "gender": "female",
        }
    )
    bob = create(
        {"resourceType": "Patient", "name": [{"family": "Builder", "given": ["Bob"]}], "gender": "male"}
    )
    create(
        {
            "resourceType": "CareTeam",
            "status": "active",
            "subject": {"reference": f"Patient/{alice}"},
            "participant": [{"member": {"reference": f"Practitioner/{practitioner}"}}],
        }
    )
    create(
        {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{alice}"},
            "code": {
                "coding": [
                    {"system": "http://snomed.info/sct", "code": "38341003", "display": "Hypertension"}
                ]
            },
            "clinicalStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
                ]
            },
            "onsetDateTime": "2021-06-01",
        }
    )
    for i, value in enumerate([148, 142, 139, 135, 131]):
        create(observation(alice, "8480-6", "Systolic blood pressure", value, "mm[Hg]", f"2024-0{i + 1}-15"))
    for i, value in enumerate([82.5, 81.0, 79.8]):
        create(observation(alice, "29463-7", "Body weight", value, "kg", f"2024-0{i + 2}-20T09:30:00Z"))
    create(observation(bob, "8480-6", "Systolic blood pressure", 120, "mm[Hg]", "2024-02-01"))
    return alice, bob, practitioner


def enrol(identity: IdentityService, user_id: str) -> str:
    """Enrol TOTP for a user as the enrolment page would; the code used is a step in the past."""
    secret, _uri = identity.begin_totp_enrolment(user_id)
    assert identity.confirm_totp_enrolment(
        user_id, totp.code_for(secret, now=datetime.now(UTC) - timedelta(seconds=totp.STEP_SECONDS))
    )
    return secret


def next_code(identity: IdentityService, user_id: str, secret: str) -> str:
    """A code the server accepts now: a step after the last one used (replay protection)."""
    with identity.engine.connect() as conn:
        last = conn.execute(select(users_table.c.totp_last_step).where(users_table.c.id == user_id)).scalar()
    current = totp.step_at()
    step = max(current - totp.WINDOW, (last or 0) + 1)
    while step > totp.step_at() + totp.WINDOW:  # used up: wait for the clock
        time.sleep(1)
    return totp.code_for(secret, now=datetime.fromtimestamp(step * totp.STEP_SECONDS, UTC))


def build_clinic(
    records: RecordService,
    tmp_path: Path,
    *,
    base_url: str = "http://testserver",
    enrolled: tuple[str, ...] = ("grey", "ada"),
    settings: dict[str, Any] | None = None,
) -> Clinic:
    identity = IdentityService(engine=records.engine, master=records.master)
    alice, bob, practitioner = seed_records(records)
    ids = {
        "alice": identity.create_user(
            username="alice", role="patient", password=PASSWORD, patient_id=alice
        ).id,
        "bob": identity.create_user(username="bob", role="patient", password=PASSWORD, patient_id=bob).id,
        "grey": identity.create_user(
            username="grey", role="clinician", password=PASSWORD, practitioner_id=practitioner
        ).id,
        "ada": identity.create_user(username="ada", role="admin", password=PASSWORD).id,
        "newbie": identity.create_user(username="newbie", role="therapist", password=PASSWORD).id,
    }
    secrets = {name: enrol(identity, ids[name]) for name in enrolled}
    config = Settings(data_dir=tmp_path / "data", base_url=base_url, **(settings or {}))
    auth = Authenticator(secret=TOKEN_SECRET, issuer=base_url, audience=config.fhir_base)
    app = create_app(config, records=records, authenticator=auth, identity=identity)
    return Clinic(app, identity, records, alice, bob, practitioner, secrets, ids)


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def sign_in(client: Any, clinic: Clinic, username: str, password: str = PASSWORD) -> str:
    """Sign in through the pages; returns the session's CSRF token."""
    token = csrf_of(client.get("/signin").text)
    r = client.post(
        "/signin",
        data={"csrf_token": token, "username": username, "password": password},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    if r.headers["location"] == "/signin/totp":
        token = csrf_of(client.get("/signin/totp").text)
        code = next_code(clinic.identity, clinic.user_ids[username], clinic.secrets[username])
        r = client.post("/signin/totp", data={"csrf_token": token, "code": code}, follow_redirects=False)
        assert r.status_code == 303, r.text
    home = client.get(r.headers["location"])
    assert home.status_code == 200, home.text
    return csrf_of(home.text)
