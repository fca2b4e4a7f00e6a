"""The day of a video visit: check-in, the waiting room, admission, hang-up, the note, no-shows.

A booked video visit moves through ``visit_state`` on its booking row:

    scheduled --check_in--> waiting --admit--> in-call --end--> finished
    scheduled --(no-show sweep, N minutes after the start)--> no-show

Each step is one transaction that also writes the FHIR record through the record store (so the
access rules and the audit trail apply as for the API):

- check-in: the Appointment becomes ``checked-in``;
- admit: an ``Encounter`` of class ``VR`` (HL7 v3 ActCode "virtual") opens, ``in-progress``,
  pointing at the Appointment; a clinician admits one patient at a time (409 otherwise; the
  calendar lock serialises concurrent admits and a unique index backs it);
- end: the Encounter is ``finished`` with its period and ``length`` in minutes, and the
  Appointment ``fulfilled``;
- no-show: the Appointment becomes ``noshow`` (run by the sweep as the system).

Who may do what is decided here, in ``participant``: the visit's patient, its practitioner, or
(in the call only) a guest the practitioner invited with a one-time link.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from medweave.db import write_tx
from medweave.errors import Conflict, InvalidInput, NotFound
from medweave.records import store
from medweave.records.service import RecordService
from medweave.records.store import Stored
from medweave.security.principal import Principal, Role
from medweave.telehealth import rooms
from medweave.telehealth.booking import lock_calendar
from medweave.telehealth.tables import telehealth_bookings, telehealth_invites

CHECK_IN_EARLY = timedelta(minutes=30)
VR = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "code": "VR",
    "display": "virtual",
}
PROGRESS_NOTE = {"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}
SOAP_PARTS = ("subjective", "objective", "assessment", "plan")
MAX_NOTE_PART = 20_000
MAX_INVITE_LABEL = 80


@dataclass(frozen=True)
class Visit:
    appointment_id: str
    practitioner_id: str
    patient_id: str | None
    start: datetime
    end: datetime
    status: str  # of the booking: booked or cancelled
    state: str  # scheduled, waiting, in-call, finished, no-show
    modality: str
    checked_in_at: datetime | None
    admitted_at: datetime | None
    ended_at: datetime | None
    encounter_id: str | None

    def waited(self, now: datetime) -> timedelta:
        return now - self.checked_in_at if self.checked_in_at else timedelta(0)


@dataclass(frozen=True)
class Soap:
    subjective: str
    objective: str
    assessment: str
    plan: str

    def __post_init__(self) -> None:
        if any(len(getattr(self, part)) > MAX_NOTE_PART for part in SOAP_PARTS):
            raise InvalidInput(f"each part of the note holds at most {MAX_NOTE_PART} characters")
        if not any(getattr(self, part).strip() for part in SOAP_PARTS):
            raise InvalidInput("the note is empty")

    def text(self) -> str:
        return "\n\n".join(f"{part.capitalize()}:\n{getattr(self, part).strip()}" for part in SOAP_PARTS)


def _visit(row: Row[Any]) -> Visit:
    return Visit(
        appointment_id=row.appointment_id,
        practitioner_id=row.practitioner_id,
        patient_id=row.patient_id,
        start=row.start,
        end=row.end,
        status=row.status,
        state=row.visit_state,
        modality=row.modality,
        checked_in_at=row.checked_in_at,
        admitted_at=row.admitted_at,
        ended_at=row.ended_at,
        encounter_id=row.encounter_id,
    )


def find(conn: Connection, appointment_id: str) -> Visit:
    row = conn.execute(
        select(telehealth_bookings).where(telehealth_bookings.c.appointment_id == appointment_id)
    ).first()
    if row is None:
        raise NotFound(f"Appointment/{appointment_id} is not a booked visit")
    return _visit(row)


def load(engine: Engine, appointment_id: str) -> Visit:
    with engine.connect() as conn:
        return find(conn, appointment_id)


def participant(visit: Visit, principal: Principal) -> str:
    """The caller's part in the visit (``patient`` or ``clinician``); NotFound for anyone else,
    the same answer as for a visit that does not exist."""
    if principal.role == Role.PATIENT and principal.patient_id and principal.patient_id == visit.patient_id:
        return "patient"
    if principal.practitioner_id and principal.practitioner_id == visit.practitioner_id:
        return "clinician"
    raise NotFound(f"Appointment/{visit.appointment_id} is not a booked visit")


def as_clinician(visit: Visit, principal: Principal) -> None:
    """Only the visit's practitioner admits, hangs up, writes the note and invites guests."""
    if participant(visit, principal) != "clinician":
        raise NotFound(f"Appointment/{visit.appointment_id} is not a booked visit")


def for_patient(engine: Engine, patient_id: str, *, since: datetime) -> list[Visit]:
    b = telehealth_bookings.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(telehealth_bookings)
            .where(and_(b.patient_id == patient_id, b.end > since))
            .order_by(b.start)
        ).all()
    return [_visit(r) for r in rows]


def for_practitioner(engine: Engine, practitioner_id: str, *, start: datetime, end: datetime) -> list[Visit]:
    b = telehealth_bookings.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(telehealth_bookings)
            .where(
                and_(b.practitioner_id == practitioner_id, b.status == "booked", b.start < end, b.end > start)
            )
            .order_by(b.start)
        ).all()
    return [_visit(r) for r in rows]


def queue(engine: Engine, practitioner_id: str) -> list[Visit]:
    """The practitioner's waiting room, longest wait first, and the visit in the call, if any."""
    b = telehealth_bookings.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(telehealth_bookings)
            .where(
                and_(
                    b.practitioner_id == practitioner_id,
                    b.status == "booked",
                    b.visit_state.in_(("waiting", "in-call")),
                )
            )
            .order_by(b.checked_in_at)
        ).all()
    return [_visit(r) for r in rows]


def _set_appointment_status(
    records: RecordService, conn: Connection, principal: Principal, visit: Visit, status: str
) -> Stored:
    current = store.read_current(
        conn, master=records.master, res_type="Appointment", res_id=visit.appointment_id
    )
    return records.write_in(
        conn,
        principal=principal,
        res_type="Appointment",
        res_id=visit.appointment_id,
        body={**(current.body or {}), "status": status},
    )


def _move(conn: Connection, visit: Visit, *, from_state: str, **values: Any) -> None:
    """Move the booking on, only if nobody moved it first (a compare-and-set)."""
    b = telehealth_bookings.c
    try:
        with conn.begin_nested():
            done = conn.execute(
                update(telehealth_bookings)
                .where(
                    and_(
                        b.appointment_id == visit.appointment_id,
                        b.visit_state == from_state,
                        b.status == "booked",
                    )
                )
                .values(**values)
            )
    except IntegrityError:  # uq_telehealth_bookings_in_call: the practitioner is in another call
        raise Conflict("finish the visit in progress before admitting the next patient") from None
    if done.rowcount != 1:
        raise Conflict("the visit has moved on; reload the page")


def check_in(records: RecordService, *, principal: Principal, appointment_id: str, now: datetime) -> Visit:
    """The patient (or staff for them) checks in, from 30 minutes before the start to its end."""

    def run(conn: Connection) -> Visit:
        visit = find(conn, appointment_id)
        participant(visit, principal)
        if visit.status != "booked" or visit.modality != "video":
            raise Conflict("only a booked video visit has a waiting room")
        if visit.state == "waiting":
            return visit
        if visit.state != "scheduled":
            raise Conflict(f"this visit is {visit.state}")
        if not visit.start - CHECK_IN_EARLY <= now < visit.end:
            raise Conflict("check-in opens 30 minutes before the visit and closes at its end")
        _set_appointment_status(records, conn, principal, visit, "checked-in")
        _move(conn, visit, from_state="scheduled", visit_state="waiting", checked_in_at=now)
        return find(conn, appointment_id)

    return _audited(records, principal, appointment_id, run, "check-in")


def admit(records: RecordService, *, principal: Principal, appointment_id: str, now: datetime) -> Visit:
    """The practitioner admits a waiting patient; an ``Encounter`` of class VR opens."""

    def run(conn: Connection) -> Visit:
        visit = find(conn, appointment_id)
        as_clinician(visit, principal)
        if visit.state == "in-call":
            return visit
        if visit.state != "waiting":
            raise Conflict("only a patient in the waiting room can be admitted")
        lock_calendar(conn, visit.practitioner_id)  # concurrent admits of one practitioner take turns
        b = telehealth_bookings.c
        busy = conn.execute(
            select(b.appointment_id).where(
                and_(
                    b.practitioner_id == visit.practitioner_id,
                    b.visit_state == "in-call",
                    b.status == "booked",
                )
            )
        ).first()
        if busy is not None:
            raise Conflict("finish the visit in progress before admitting the next patient")
        encounter_id = str(uuid.uuid4())
        encounter: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": encounter_id,
            "status": "in-progress",
            "class": VR,
            "subject": {"reference": f"Patient/{visit.patient_id}"},
            "participant": [{"individual": {"reference": f"Practitioner/{visit.practitioner_id}"}}],
            "appointment": [{"reference": f"Appointment/{appointment_id}"}],
            "period": {"start": store.instant(now)},
        }
        records.write_in(conn, principal=principal, res_type="Encounter", res_id=encounter_id, body=encounter)
        _move(
            conn,
            visit,
            from_state="waiting",
            visit_state="in-call",
            admitted_at=now,
            encounter_id=encounter_id,
        )
        return find(conn, appointment_id)

    return _audited(records, principal, appointment_id, run, "admit")


def end(records: RecordService, *, principal: Principal, appointment_id: str, now: datetime) -> Visit:
    """Hang up: the Encounter closes with its duration and the Appointment is fulfilled."""

    def run(conn: Connection) -> Visit:
        visit = find(conn, appointment_id)
        as_clinician(visit, principal)
        if visit.state == "finished":
            return visit
        if visit.state != "in-call" or visit.encounter_id is None or visit.admitted_at is None:
            raise Conflict("this visit is not in a call")
        current = store.read_current(
            conn, master=records.master, res_type="Encounter", res_id=visit.encounter_id
        )
        minutes = max(0.0, (now - visit.admitted_at).total_seconds() / 60)
        body = {
            **(current.body or {}),
            "status": "finished",
            "period": {"start": store.instant(visit.admitted_at), "end": store.instant(now)},
            "length": {
                "value": round(minutes, 1),
                "unit": "min",
                "system": "http://unitsofmeasure.org",
                "code": "min",
            },
        }
        records.write_in(
            conn, principal=principal, res_type="Encounter", res_id=visit.encounter_id, body=body
        )
        _set_appointment_status(records, conn, principal, visit, "fulfilled")
        _move(conn, visit, from_state="in-call", visit_state="finished", ended_at=now)
        return find(conn, appointment_id)

    return _audited(records, principal, appointment_id, run, "end")


def due_ids(engine: Engine, *conditions: Any) -> list[str]:
    """Booked visits not yet checked in that meet ``conditions`` (the sweeps' work lists)."""
    b = telehealth_bookings.c
    with engine.connect() as conn:
        found = conn.execute(
            select(b.appointment_id).where(
                and_(b.status == "booked", b.visit_state == "scheduled", *conditions)
            )
        )
        return [r.appointment_id for r in found]


def mark_no_shows(records: RecordService, *, now: datetime, grace: timedelta) -> list[str]:
    """Video visits whose patient has not checked in ``grace`` after the start become no-shows."""
    b = telehealth_bookings.c
    due = due_ids(records.engine, b.modality == "video", b.start < now - grace)
    system = Principal.internal()
    marked = []
    for appointment_id in due:

        def run(conn: Connection, appointment_id: str = appointment_id) -> Visit:
            visit = find(conn, appointment_id)
            _set_appointment_status(records, conn, system, visit, "noshow")
            _move(conn, visit, from_state="scheduled", visit_state="no-show")
            return visit

        try:
            _audited(records, system, appointment_id, run, "no-show")
        except Conflict:
            continue  # the patient checked in meanwhile
        marked.append(appointment_id)
    return marked


def save_note(records: RecordService, *, principal: Principal, appointment_id: str, soap: Soap) -> Stored:
    """The visit note, as one versioned ``DocumentReference`` per visit (saving again adds a version)."""

    def run(conn: Connection) -> Stored:
        visit = find(conn, appointment_id)
        as_clinician(visit, principal)
        if visit.encounter_id is None:
            raise Conflict("the note belongs to a visit that took place")
        note_id = note_id_of(visit)
        body = {
            "resourceType": "DocumentReference",
            "id": note_id,
            "status": "current",
            "docStatus": "final" if visit.state == "finished" else "preliminary",
            "type": {"coding": [PROGRESS_NOTE], "text": "Video visit note (SOAP)"},
            "subject": {"reference": f"Patient/{visit.patient_id}"},
            "author": [{"reference": f"Practitioner/{visit.practitioner_id}"}],
            "date": store.instant(datetime.now(UTC)),
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain; charset=utf-8",
                        "data": base64.b64encode(soap.text().encode()).decode(),
                        "title": "SOAP note",
                    }
                }
            ],
            "context": {
                "encounter": [{"reference": f"Encounter/{visit.encounter_id}"}],
                "period": {"start": store.instant(visit.admitted_at or visit.start)},
            },
        }
        return records.write_in(
            conn, principal=principal, res_type="DocumentReference", res_id=note_id, body=body
        )

    with records.trail.event(principal, "update", res_type="DocumentReference") as note:
        stored = records.in_write(run)
        note.res_id, note.version_id = stored.res_id, stored.version_id
        note.patients.update(p for p in (stored.patient_id,) if p)
        return stored


def note_id_of(visit: Visit) -> str:
    return f"visit-note-{visit.appointment_id}"


def read_note(records: RecordService, *, principal: Principal, visit: Visit) -> Soap | None:
    try:
        stored = records.read(principal=principal, res_type="DocumentReference", res_id=note_id_of(visit))
    except NotFound:
        return None
    data = (stored.body or {}).get("content", [{}])[0].get("attachment", {}).get("data", "")
    parts = dict.fromkeys(SOAP_PARTS, "")
    current = None
    for line in base64.b64decode(data).decode().split("\n"):
        heading = line.rstrip(":").lower()
        if line.endswith(":") and heading in SOAP_PARTS:
            current = heading
        elif current is not None:
            parts[current] = (parts[current] + "\n" + line).strip("\n")
    return Soap(**parts)


def invite(engine: Engine, *, principal: Principal, visit: Visit, label: str, now: datetime) -> str:
    """A one-time link secret for a guest (an interpreter, a family member); only its hash is kept."""
    as_clinician(visit, principal)
    label = " ".join(label.split())
    if not label or len(label) > MAX_INVITE_LABEL:
        raise InvalidInput(f'give the guest a label of 1 to {MAX_INVITE_LABEL} characters ("Interpreter")')
    if visit.state in ("finished", "no-show") or visit.status != "booked":
        raise Conflict("this visit is over")
    secret = rooms.new_invite_secret()
    with write_tx(engine) as conn:
        conn.execute(
            telehealth_invites.insert().values(
                digest=rooms.invite_digest(secret),
                appointment_id=visit.appointment_id,
                label=label,
                created_by=principal.audit_ref,
                expires_at=min(now + rooms.INVITE_TTL, visit.end + timedelta(hours=1)),
            )
        )
    return secret


@dataclass(frozen=True)
class Guest:
    appointment_id: str
    who: str  # guest:<first 16 hex of the digest>, an audit reference naming nobody
    label: str


def redeem(engine: Engine, secret: str, *, now: datetime) -> Guest:
    """Use a one-time link: it works once, before it expires; NotFound otherwise."""
    if not isinstance(secret, str) or not 20 <= len(secret) <= 100:
        raise NotFound("this link is not valid")
    digest = rooms.invite_digest(secret)
    i = telehealth_invites.c
    with write_tx(engine) as conn:
        row = conn.execute(select(telehealth_invites).where(i.digest == digest)).first()
        if row is None or row.used_at is not None or now >= row.expires_at:
            raise NotFound("this link is not valid, was already used, or has expired")
        used = conn.execute(
            update(telehealth_invites)
            .where(and_(i.digest == digest, i.used_at.is_(None)))
            .values(used_at=now)
        )
        if used.rowcount != 1:
            raise NotFound("this link is not valid, was already used, or has expired")
    return Guest(row.appointment_id, f"guest:{digest[:16]}", row.label)


def _audited(
    records: RecordService, principal: Principal, appointment_id: str, run: Any, operation: str
) -> Visit:
    with records.trail.event(
        principal, "update", res_type="Appointment", res_id=appointment_id, operation=operation
    ) as note:
        visit: Visit = records.in_write(run)
        note.patients.update(p for p in (visit.patient_id,) if p)
        return visit
