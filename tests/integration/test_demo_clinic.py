"""The demo clinic: staff with care teams over the seeded patients, and one patient login."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import Engine

from medweave.identity import IdentityService
from medweave.identity.demo import demo_password, seed_clinic
from medweave.records.service import RecordService
from medweave.security.crypto import MasterKey
from medweave.security.principal import Principal, Role
from medweave.security.scopes import ScopeSet

OPERATOR = Principal.internal("test")


def _patient(records: RecordService, family: str) -> str:
    body = {"resourceType": "Patient", "name": [{"family": family}]}
    return records.create(principal=OPERATOR, res_type="Patient", data=body).res_id


def test_demo_clinic_puts_patients_in_care_and_is_idempotent(
    engine: Engine, records: RecordService, tmp_path: Path
):
    first, second = _patient(records, "Alpha"), _patient(records, "Beta")
    identity = IdentityService(engine=engine, master=MasterKey.generate())
    password = demo_password(tmp_path / "secrets" / "demo-password")
    assert stat.S_IMODE((tmp_path / "secrets" / "demo-password").stat().st_mode) == 0o600
    assert demo_password(tmp_path / "secrets" / "demo-password") == password

    logins = seed_clinic(records=records, identity=identity, password=password)
    again = seed_clinic(records=records, identity=identity, password=password)
    assert [login.username for login in logins] == [login.username for login in again]
    assert {login.role for login in logins} == {r.value for r in Role}

    clinician = identity.get_user_by_username("clinician")
    principal = Principal(
        kind="user",
        subject=clinician.id,
        scopes=ScopeSet.parse("user/*.cruds"),
        role=Role.CLINICIAN,
        practitioner_id=clinician.practitioner_id,
    )
    seen = records.search(principal=principal, res_type="Patient", params=[])
    assert {e["resource"]["id"] for e in seen["entry"] if e["search"]["mode"] == "match"} == {first, second}

    patient_user = identity.get_user_by_username("patient")
    assert patient_user.patient_id in {first, second}
    login = identity.authenticate(username="patient", password=password)
    assert login.ok, login.reason
    staff = identity.authenticate(username="admin", password=password)
    assert staff.reason == "totp_enrolment_required"  # staff enrol a second factor at first sign-in
