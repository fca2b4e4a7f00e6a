"""A small clinic for the access tests, seeded through the FHIR API by a backend client.

Practitioners A-E and patients P1-P5, related as the access rules describe
(``medweave.records.access``, ``medweave.records.care``, issue 3 "Access rules"):

- A is in P1's care through an active CareTeam (and an Appointment);
- B through an Encounter with P2; P3's active Consent permits B and C;
- C (a therapist) through a booked Appointment with P5;
- D has no relation; break-glass on P4 is granted to D and to one admin by the ``enrich`` hook;
- E through an active CareTeam of P5 that names E's PractitionerRole;
- relations that must NOT open a record: an inactive CareTeam (P4, A), a cancelled Encounter (P5, B),
  a cancelled Appointment (P4, B), an expired Consent (P4, C) and a denying Consent (P1, D).

Every type of ``SUPPORTED_TYPES`` gets one record, plus Observations with sequential ids
(``obs-1``..``obs-5``, one per patient) and two probes for include leaks: an Observation of P1 whose
``hasMember`` is P2's Observation, and an Observation of P2 whose ``focus`` is Patient P1.

``World`` remembers who owns every record the tests wrote, so expectations come from the rules and
this bookkeeping, never from the server's answers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from conftest import bearer, postgres_url
from medweave.db import make_engine
from medweave.migrate import upgrade
from medweave.records.fhir import SUPPORTED_TYPES
from medweave.security.principal import Principal

PATIENTS = ("P1", "P2", "P3", "P4", "P5")
PRACTITIONERS = ("A", "B", "C", "D", "E")
SEEN = frozenset({"own", "care", "consent", "glass"})  # relations that open a record for reading

# -- the rules, restated from access.py's docstring and issue 3 (not imported: they are under test) --
#: Types placed in a patient's compartment by the R4 Patient CompartmentDefinition (Patient: itself),
#: plus Task (``for``) and Device (``patient``), which Medweave adds because they carry a patient's data.
COMPARTMENT_TYPES = frozenset(
    {
        "CareTeam", "Encounter", "Observation", "Condition", "QuestionnaireResponse", "Schedule",
        "Appointment", "Consent", "DocumentReference", "ServiceRequest", "ImagingStudy", "Flag",
        "CarePlan", "AuditEvent", "Task", "Device",
    }
)  # fmt: skip
SHARED_TYPES = frozenset({"Practitioner", "PractitionerRole", "Questionnaire", "Slot"})
CARE_ROLES = frozenset({"clinician", "therapist"})
PATIENT_WRITABLE = frozenset({"QuestionnaireResponse", "Appointment"})
SHARED_WRITABLE: dict[str, frozenset[str]] = {
    "clinician": frozenset({"Schedule", "Slot", "Questionnaire", "Device"}),
    "therapist": frozenset({"Schedule", "Slot", "Questionnaire"}),
    "lab_technician": frozenset({"Device"}),
    "admin": frozenset({"Practitioner", "PractitionerRole", "Schedule", "Slot", "Questionnaire", "Device"}),
}
SCOPES = {
    "patient": "patient/*.rs patient/QuestionnaireResponse.cu patient/Appointment.cu openid fhirUser",
    "clinician": "user/*.cruds openid fhirUser",
    "therapist": "user/*.cruds openid fhirUser",
    "lab_technician": "user/*.cruds openid fhirUser",
    "data_scientist": "user/*.rs openid fhirUser",
    "admin": "user/*.cruds openid fhirUser",
}


@dataclass(frozen=True)
class Caller:
    """One signed-in person (or the backend client, ``role=None``) and their relation to each patient."""

    name: str
    role: str | None
    practitioner: str | None = None
    relations: Mapping[str, str] = field(default_factory=dict)  # patient label -> own/care/consent/glass
    patient: str | None = None
    glass: tuple[str, ...] = ()

    @property
    def system(self) -> bool:
        return self.role is None

    def may(self, op: str, res_type: str) -> bool:
        """Whether the caller's scopes grant ``op`` (create/read/update/delete/search) on ``res_type``."""
        if self.role is None or self.role in ("clinician", "therapist", "lab_technician", "admin"):
            return True
        if op in ("read", "search"):
            return True
        return self.role == "patient" and op in ("create", "update") and res_type in PATIENT_WRITABLE


CALLERS = (
    Caller("patient-P1", "patient", relations={"P1": "own"}, patient="P1"),
    Caller("clinician-A", "clinician", "A", {"P1": "care"}),
    Caller("clinician-B", "clinician", "B", {"P2": "care", "P3": "consent"}),
    Caller("therapist-C", "therapist", "C", {"P3": "consent", "P5": "care"}),
    Caller("clinician-D-glass", "clinician", "D", {"P4": "glass"}, glass=("P4",)),
    Caller("clinician-E-role", "clinician", "E", {"P5": "care"}),
    Caller("lab-technician", "lab_technician", "A"),  # named in P1's CareTeam, but not a care role
    Caller("data-scientist", "data_scientist", "B"),
    Caller("admin", "admin"),
    Caller("admin-glass", "admin", relations={"P4": "glass"}, glass=("P4",)),
    Caller("system", None),
)
CALLER_IDS = [c.name for c in CALLERS]


@dataclass
class Record:
    res_type: str
    res_id: str
    owner: str | None  # the patient id whose compartment holds it
    body: dict[str, Any]
    deleted: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.res_type, self.res_id)


@dataclass
class World:
    patients: dict[str, str] = field(default_factory=dict)  # label -> id
    practitioners: dict[str, str] = field(default_factory=dict)
    records: dict[tuple[str, str], Record] = field(default_factory=dict)
    named: dict[str, Record] = field(default_factory=dict)  # probes and relations by name
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    def label(self, patient_id: str | None) -> str | None:
        return next((k for k, v in self.patients.items() if v == patient_id), None)

    extra: dict[tuple[str, str], str] = field(default_factory=dict)  # (caller, patient id) -> relation

    def relation(self, caller: Caller, owner: str | None) -> str:
        if owner is None:
            return "shared"
        if caller.system:
            return "system"
        if (caller.name, owner) in self.extra:
            return self.extra[(caller.name, owner)]
        return caller.relations.get(self.label(owner) or "", "none")

    def representatives(self, caller: Caller) -> list[str]:
        """One patient of each relation the caller has (own, care, consent, glass, none)."""
        out: dict[str, str] = {}
        for label in PATIENTS:
            out.setdefault(self.relation(caller, self.patients[label]), self.patients[label])
        return list(out.values())

    def visible(self, caller: Caller, owner: str | None) -> bool:
        return self.relation(caller, owner) in SEEN | {"shared", "system"}

    def of_type(self, res_type: str, *, live: bool = True) -> list[Record]:
        return [r for r in self.records.values() if r.res_type == res_type and not (live and r.deleted)]

    def add(self, res_type: str, res_id: str, owner: str | None, body: dict[str, Any]) -> Record:
        rec = Record(res_type, res_id, owner, body)
        self.records[rec.key] = rec
        return rec

    def headers(self, caller: Caller) -> dict[str, str]:
        if caller.name not in self.tokens:
            if caller.system:
                self.tokens[caller.name] = bearer()
            else:
                claims = {"role": caller.role or ""}
                if caller.patient:
                    claims["patient"] = self.patients[caller.patient]
                if caller.practitioner:
                    claims["fhir_user"] = f"Practitioner/{self.practitioners[caller.practitioner]}"
                scope = SCOPES[caller.role or ""]
                self.tokens[caller.name] = bearer(scope, kind="user", subject=caller.name, **claims)
        return self.tokens[caller.name]

    def enrich(self, principal: Principal) -> Principal:
        """The identity service's part: active break-glass grants of the signed-in user."""
        caller = next((c for c in CALLERS if c.name == principal.subject), None)
        if caller is None or not caller.glass:
            return principal
        return replace(principal, break_glass=frozenset(self.patients[p] for p in caller.glass))


def ref(res_type: str, res_id: str) -> dict[str, str]:
    return {"reference": f"{res_type}/{res_id}"}


_CODE = "http://example.org/medweave-test"
_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def body_for(res_type: str, patient: str | None, *, tag: str = "x", schedule: str = "none") -> dict[str, Any]:
    """A minimal valid resource of ``res_type``; in ``patient``'s compartment when it is given.

    Nothing here names a practitioner, so writing it never opens a record to anyone.
    """
    p = ref("Patient", patient) if patient else None
    code = {"coding": [{"system": _CODE, "code": tag}], "text": tag}
    bodies: dict[str, dict[str, Any]] = {
        "Patient": {"name": [{"family": tag}]},
        "Practitioner": {"name": [{"family": tag}]},
        "PractitionerRole": {"active": True, "code": [code]},
        "CareTeam": {"status": "active", "subject": p, "name": tag},
        "Encounter": {"status": "finished", "class": {"system": _ACT, "code": "AMB"}, "subject": p},
        "Observation": {"status": "final", "code": code, "subject": p},
        "Condition": {"code": code, "subject": p},
        "Questionnaire": {"status": "active", "title": tag},
        "QuestionnaireResponse": {"status": "completed", "subject": p},
        "Schedule": {"actor": [p or {"display": tag}], "comment": tag},
        "Slot": {
            "schedule": ref("Schedule", schedule),
            "status": "free",
            "start": "2030-01-01T09:00:00Z",
            "end": "2030-01-01T09:30:00Z",
        },
        "Appointment": {"status": "booked", "participant": [{"actor": p, "status": "accepted"}]},
        "Consent": {
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": p,
        },
        "DocumentReference": {
            "status": "current",
            "content": [{"attachment": {"contentType": "text/plain", "title": tag}}],
            "subject": p,
        },
        "ServiceRequest": {"status": "active", "intent": "order", "subject": p, "code": code},
        "ImagingStudy": {"status": "available", "subject": p, "description": tag},
        "Device": {"status": "active", "distinctIdentifier": tag, "patient": p},
        "Flag": {"status": "active", "code": code, "subject": p},
        "Task": {"status": "requested", "intent": "order", "description": tag, "for": p},
        "CarePlan": {"status": "active", "intent": "plan", "subject": p, "title": tag},
        "AuditEvent": {
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
            "recorded": "2024-01-01T00:00:00Z",
            "agent": [{"requestor": True, "who": {"display": tag}}],
            "source": {"observer": {"display": tag}},
            "entity": [{"what": p}] if p else [],
        },
    }
    body = {k: v for k, v in bodies[res_type].items() if v is not None}
    return {"resourceType": res_type, **body}


def owner_of(res_type: str, patient: str | None, res_id: str) -> str | None:
    """Whose compartment a ``body_for(res_type, patient)`` lands in (a Patient: its own)."""
    if res_type == "Patient":
        return res_id
    return patient if res_type in COMPARTMENT_TYPES else None


class Seeder:
    """Writes the clinic through the API as the backend client; every write must succeed."""

    def __init__(self, http: Any, world: World):
        self.http, self.world = http, world

    def post(self, name: str | None, body: dict[str, Any], owner: str | None) -> Record:
        r = self.http.post(f"/fhir/{body['resourceType']}", json=body, headers=bearer())
        assert r.status_code == 201, r.text
        return self._keep(name, r.json()["id"], body, owner)

    def put(self, name: str | None, res_id: str, body: dict[str, Any], owner: str | None) -> Record:
        r = self.http.put(
            f"/fhir/{body['resourceType']}/{res_id}", json=body | {"id": res_id}, headers=bearer()
        )
        assert r.status_code == 201, r.text
        return self._keep(name, res_id, body, owner)

    def _keep(self, name: str | None, res_id: str, body: dict[str, Any], owner: str | None) -> Record:
        rec = self.world.add(body["resourceType"], res_id, owner, body | {"id": res_id})
        if name:
            self.world.named[name] = rec
        return rec


def seed(http: Any, world: World) -> World:
    s, w = Seeder(http, world), world
    for label in PRACTITIONERS:
        w.practitioners[label] = s.post(
            f"Practitioner-{label}", body_for("Practitioner", None, tag=label), None
        ).res_id
    for label in PATIENTS:
        body = body_for("Patient", None, tag=f"Patient-{label}")
        rec = s.post(f"Patient-{label}", body, None)
        rec.owner = rec.res_id
        w.patients[label] = rec.res_id
    pt, pr = w.patients, w.practitioners

    def care_team(patient: str, status: str, kind: str, member: str) -> dict[str, Any]:
        return body_for("CareTeam", patient) | {
            "status": status,
            "participant": [{"member": ref(kind, member)}],
        }

    role_e = s.post(
        "PractitionerRole-E",
        {"resourceType": "PractitionerRole", "practitioner": ref("Practitioner", pr["E"])},
        None,
    )
    s.post("CareTeam-P1-A", care_team(pt["P1"], "active", "Practitioner", pr["A"]), pt["P1"])
    s.post("CareTeam-P4-A-inactive", care_team(pt["P4"], "inactive", "Practitioner", pr["A"]), pt["P4"])
    s.post("CareTeam-P5-E-role", care_team(pt["P5"], "active", "PractitionerRole", role_e.res_id), pt["P5"])
    enc = body_for("Encounter", pt["P2"])
    s.post("Encounter-P2-B", enc | {"participant": [{"individual": ref("Practitioner", pr["B"])}]}, pt["P2"])
    enc5 = body_for("Encounter", pt["P5"]) | {"status": "cancelled"}
    s.post(
        "Encounter-P5-B-cancelled",
        enc5 | {"participant": [{"individual": ref("Practitioner", pr["B"])}]},
        pt["P5"],
    )

    def appointment(patient: str, practitioner: str, status: str) -> dict[str, Any]:
        return {
            "resourceType": "Appointment",
            "status": status,
            "participant": [
                {"actor": ref("Patient", patient), "status": "accepted"},
                {"actor": ref("Practitioner", practitioner), "status": "accepted"},
            ],
        }

    s.post("Appointment-P1-A", appointment(pt["P1"], pr["A"], "booked"), pt["P1"])
    s.post("Appointment-P5-C", appointment(pt["P5"], pr["C"], "booked"), pt["P5"])
    s.post("Appointment-P4-B-cancelled", appointment(pt["P4"], pr["B"], "cancelled"), pt["P4"])

    def consent(
        patient: str, kind: str, actors: list[str], period: dict[str, str] | None = None
    ) -> dict[str, Any]:
        role = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}
            ]
        }
        provision: dict[str, Any] = {
            "type": kind,
            "actor": [{"role": role, "reference": ref("Practitioner", pr[a])} for a in actors],
        }
        if period:
            provision["period"] = period
        return body_for("Consent", patient) | {"provision": provision}

    s.post("Consent-P3-B-C", consent(pt["P3"], "permit", ["B", "C"]), pt["P3"])
    s.post(
        "Consent-P4-C-expired",
        consent(pt["P4"], "permit", ["C"], {"start": "1999-01-01", "end": "2000-01-01"}),
        pt["P4"],
    )
    s.post("Consent-P1-D-deny", consent(pt["P1"], "deny", ["D"]), pt["P1"])

    schedule = s.post("Schedule-shared", body_for("Schedule", None, tag="shared"), None)
    w.named["schedule"] = schedule
    questionnaire = s.post("Questionnaire", body_for("Questionnaire", None, tag="phq"), None)
    for i, label in enumerate(PATIENTS, start=1):
        obs = body_for("Observation", pt[label], tag=f"code-{label}")
        s.put(f"obs-{i}", f"obs-{i}", obs, pt[label])
        s.post(f"Condition-{label}", body_for("Condition", pt[label], tag=f"cond-{label}"), pt[label])
    s.post(
        "Obs-P1-hasMember-P2",
        body_for("Observation", pt["P1"], tag="panel") | {"hasMember": [ref("Observation", "obs-2")]},
        pt["P1"],
    )
    s.post(
        "Obs-P2-focus-P1",
        body_for("Observation", pt["P2"], tag="focus") | {"focus": [ref("Patient", pt["P1"])]},
        pt["P2"],
    )
    qr = body_for("QuestionnaireResponse", pt["P1"]) | {
        "questionnaire": f"Questionnaire/{questionnaire.res_id}"
    }
    s.post("QR-P1", qr, pt["P1"])
    s.post("QR-P2", body_for("QuestionnaireResponse", pt["P2"]), pt["P2"])
    # one record of every type that has none yet, spread over the patients
    for i, res_type in enumerate(SUPPORTED_TYPES):
        if not w.of_type(res_type):
            patient = pt[PATIENTS[i % len(PATIENTS)]] if res_type in COMPARTMENT_TYPES else None
            body = body_for(res_type, patient, tag=f"sample-{res_type}", schedule=schedule.res_id)
            s.post(f"sample-{res_type}", body, patient)
    return w


def database(kind: str, tmp: Path) -> Iterator[Engine]:
    """A migrated, empty database of its own: SQLite in ``tmp`` or a fresh PostgreSQL schema."""
    if kind == "sqlite":
        eng = make_engine(f"sqlite:///{tmp / 'medweave.db'}")
        upgrade(eng)
        yield eng
        eng.dispose()
        return
    url = postgres_url()
    assert url is not None and os.environ.get("MEDWEAVE_TEST_POSTGRES")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    eng = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
