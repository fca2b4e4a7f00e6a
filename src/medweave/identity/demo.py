"""The demo clinic's people: staff accounts, their Practitioner records, care teams, one patient login.

``seed_clinic`` runs after ``medweave demo seed`` has imported synthetic patients. It is idempotent:
accounts and care teams that exist are kept. Everyone shares one demo password, made at random
when the clinic is first seeded and kept in a 0600 file under the data directory (never in the
repository), which ``make run`` prints: a demo clinic is for trying Medweave out, never for real
data. Staff enrol their TOTP second factor (QR code) at their first sign-in, as real staff would.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medweave.errors import NotFound
from medweave.identity.service import IdentityService
from medweave.records.service import RecordService
from medweave.security.crypto import write_secret_file
from medweave.security.principal import Principal, Role

_SEEDER = Principal.internal("demo-seed")


@dataclass(frozen=True)
class DemoStaff:
    username: str
    role: Role
    given: str
    family: str
    practitioner_id: str | None  # staff in patient care have a Practitioner record


STAFF = (
    DemoStaff("clinician", Role.CLINICIAN, "Ada", "Okafor", "demo-clinician"),
    DemoStaff("therapist", Role.THERAPIST, "Sam", "Rivera", "demo-therapist"),
    DemoStaff("labtech", Role.LAB_TECHNICIAN, "Lee", "Chen", "demo-labtech"),
    DemoStaff("datascientist", Role.DATA_SCIENTIST, "Noor", "Haddad", None),
    DemoStaff("admin", Role.ADMIN, "Morgan", "Blake", None),
)


@dataclass(frozen=True)
class Login:
    username: str
    role: str
    note: str


def demo_password(path: Path) -> str:
    """The demo clinic's shared password: read from ``path``, or made and written there (0600)."""
    if path.exists():
        return path.read_text().strip()
    password = "demo-" + secrets.token_urlsafe(12)
    write_secret_file(path, password)
    return password


def seed_clinic(*, records: RecordService, identity: IdentityService, password: str) -> list[Login]:
    """Make the demo staff, put every patient in the care of the clinician and therapist, and give
    the first patient a login. Returns the logins (all with ``password``)."""
    for person in STAFF:
        if person.practitioner_id:
            records.update(
                principal=_SEEDER,
                res_type="Practitioner",
                res_id=person.practitioner_id,
                data=_practitioner(person),
            )
    patients = _patient_ids(records)
    for patient_id in patients:
        records.update(
            principal=_SEEDER,
            res_type="CareTeam",
            res_id=f"demo-care-{patient_id}"[:64],
            data=_care_team(patient_id),
        )
    logins = [
        _ensure_user(identity, p.username, p.role, password, practitioner_id=p.practitioner_id) for p in STAFF
    ]
    if patients:
        logins.append(_ensure_user(identity, "patient", Role.PATIENT, password, patient_id=patients[0]))
    return logins


def _ensure_user(
    identity: IdentityService,
    username: str,
    role: Role,
    password: str,
    *,
    patient_id: str | None = None,
    practitioner_id: str | None = None,
) -> Login:
    try:
        identity.get_user_by_username(username)
    except NotFound:
        identity.create_user(
            username=username,
            role=role,
            password=password,
            patient_id=patient_id,
            practitioner_id=practitioner_id,
        )
    note = (
        "TOTP enrolment (QR code) at first sign-in" if role != Role.PATIENT else "a demo patient's own record"
    )
    return Login(username, role.value, note)


def _patient_ids(records: RecordService) -> list[str]:
    found = records.search(
        principal=_SEEDER, res_type="Patient", params=[("_sort", "_id"), ("_count", "1000")]
    )
    return [e["resource"]["id"] for e in found.get("entry", []) if e.get("search", {}).get("mode") == "match"]


def _practitioner(person: DemoStaff) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": person.practitioner_id,
        "active": True,
        "name": [{"use": "official", "family": person.family, "given": [person.given]}],
        "identifier": [{"system": "urn:medweave:demo:staff", "value": person.username}],
    }


def _care_team(patient_id: str) -> dict[str, Any]:
    members = [p for p in STAFF if p.role in (Role.CLINICIAN, Role.THERAPIST) and p.practitioner_id]
    return {
        "resourceType": "CareTeam",
        "id": f"demo-care-{patient_id}"[:64],
        "status": "active",
        "name": "Demo clinic care team",
        "subject": {"reference": f"Patient/{patient_id}"},
        "participant": [{"member": {"reference": f"Practitioner/{p.practitioner_id}"}} for p in members],
    }
