"""Booking and cancelling visits: a FHIR Appointment, and never two in one slot.

A booking is checked and written in ONE transaction: lock the practitioner's calendar row
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises
writers), refuse an overlap with any live booking (409), then write the Appointment through the
record store (its access rules decide who may book for whom: a patient for themselves, staff for
patients in their care) and the booking row, whose unique index on the start of live bookings is
the database's own guard. The call is audited like any other write.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, select, text, update
from sqlalchemy.exc import IntegrityError

from medweave.errors import Conflict, InvalidInput, NotFound
from medweave.records import store
from medweave.records.service import RecordService
from medweave.records.store import Stored
from medweave.security.principal import Principal
from medweave.telehealth.availability import SlotTime, VisitType
from medweave.telehealth.tables import telehealth_bookings, telehealth_calendars


@dataclass(frozen=True)
class Booking:
    appointment_id: str
    practitioner_id: str
    start: datetime
    end: datetime


def appointment(
    *, patient_id: str, practitioner_id: str, slot: SlotTime, visit: VisitType, status: str = "booked"
) -> dict[str, Any]:
    """The FHIR Appointment of a booking (times in UTC, as the record store keeps every instant)."""
    return {
        "resourceType": "Appointment",
        "status": status,
        "appointmentType": {"coding": [{"system": "urn:medweave:visit-type", "code": visit.code}]},
        "serviceType": [{"text": "video visit" if visit.modality == "video" else "in-person visit"}],
        "start": slot.start.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "end": slot.end.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "minutesDuration": visit.minutes,
        "participant": [
            {"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"},
            {"actor": {"reference": f"Practitioner/{practitioner_id}"}, "status": "accepted"},
        ],
    }


def book(
    records: RecordService,
    *,
    principal: Principal,
    patient_id: str,
    practitioner_id: str,
    slot: SlotTime,
    visit: VisitType,
) -> Stored:
    """Book ``slot``; 409 if any live booking of the practitioner overlaps it."""
    if slot.start.tzinfo is None or not slot.start < slot.end:
        raise InvalidInput("a slot is a time-zone-aware period that ends after it starts")
    body = appointment(patient_id=patient_id, practitioner_id=practitioner_id, slot=slot, visit=visit)
    body["id"] = str(uuid.uuid4())

    def run(conn: Connection) -> Stored:
        lock_calendar(conn, practitioner_id)
        if _overlapping(conn, practitioner_id, slot):
            raise Conflict("that time is already booked")
        stored = records.write_in(
            conn, principal=principal, res_type="Appointment", res_id=body["id"], body=body
        )
        try:
            with conn.begin_nested():
                conn.execute(
                    telehealth_bookings.insert().values(
                        appointment_id=stored.res_id,
                        practitioner_id=practitioner_id,
                        start=slot.start.astimezone(UTC),
                        end=slot.end.astimezone(UTC),
                        status="booked",
                        patient_id=patient_id,
                        modality=visit.modality,
                    )
                )
        except IntegrityError:
            raise Conflict("that time is already booked") from None
        return stored

    with records.trail.event(principal, "create", res_type="Appointment") as note:
        stored = records.in_write(run)
        note.status, note.res_id, note.version_id = 201, stored.res_id, stored.version_id
        note.patients.add(patient_id)
        return stored


def cancel(records: RecordService, *, principal: Principal, appointment_id: str) -> Stored:
    """Cancel a booking: the Appointment becomes ``cancelled`` and the slot is free again."""

    def run(conn: Connection) -> Stored:
        row = conn.execute(
            select(telehealth_bookings).where(telehealth_bookings.c.appointment_id == appointment_id)
        ).first()
        if row is None or row.status != "booked":
            raise NotFound(f"Appointment/{appointment_id} is not a live booking")
        if row.visit_state != "scheduled":  # checked in, in the call, or over: not cancellable
            raise Conflict(f"this visit is {row.visit_state} and can no longer be cancelled")
        lock_calendar(conn, row.practitioner_id)
        # Read on this connection: a read through the service would audit inside this transaction.
        current = store.read_current(
            conn, master=records.master, res_type="Appointment", res_id=appointment_id
        )
        stored = records.write_in(
            conn,
            principal=principal,
            res_type="Appointment",
            res_id=appointment_id,
            body={**(current.body or {}), "status": "cancelled"},
        )
        done = conn.execute(
            update(telehealth_bookings)
            .where(
                and_(
                    telehealth_bookings.c.appointment_id == appointment_id,
                    telehealth_bookings.c.visit_state == "scheduled",
                    telehealth_bookings.c.status == "booked",
                )
            )
            .values(status="cancelled")
        )
        if done.rowcount != 1:  # checked in meanwhile
            raise Conflict("this visit has moved on and can no longer be cancelled")
        return stored

    return _audited_update(records, principal, appointment_id, run)


def reschedule(
    records: RecordService, *, principal: Principal, appointment_id: str, slot: SlotTime
) -> Stored:
    """Move a live booking to ``slot`` of the same practitioner, in one transaction: the old time
    is free and the new one taken together, or nothing changes (409 if the new time is taken)."""
    if slot.start.tzinfo is None or not slot.start < slot.end:
        raise InvalidInput("a slot is a time-zone-aware period that ends after it starts")

    def run(conn: Connection) -> Stored:
        b = telehealth_bookings.c
        row = conn.execute(select(telehealth_bookings).where(b.appointment_id == appointment_id)).first()
        if row is None or row.status != "booked" or row.visit_state != "scheduled":
            raise NotFound(f"Appointment/{appointment_id} is not a booking that can move")
        lock_calendar(conn, row.practitioner_id)
        if _overlapping(conn, row.practitioner_id, slot, besides=appointment_id):
            raise Conflict("that time is already booked")
        current = store.read_current(
            conn, master=records.master, res_type="Appointment", res_id=appointment_id
        )
        body = {
            **(current.body or {}),
            "start": slot.start.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "end": slot.end.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        stored = records.write_in(
            conn, principal=principal, res_type="Appointment", res_id=appointment_id, body=body
        )
        try:
            with conn.begin_nested():
                conn.execute(
                    update(telehealth_bookings)
                    .where(b.appointment_id == appointment_id)
                    # A new time gets its own reminder.
                    .values(start=slot.start.astimezone(UTC), end=slot.end.astimezone(UTC), reminded_at=None)
                )
        except IntegrityError:
            raise Conflict("that time is already booked") from None
        return stored

    return _audited_update(records, principal, appointment_id, run)


def _audited_update(
    records: RecordService, principal: Principal, appointment_id: str, run: Callable[[Connection], Stored]
) -> Stored:
    """Run ``run`` in one write transaction, audited as an update of the Appointment."""
    with records.trail.event(principal, "update", res_type="Appointment", res_id=appointment_id) as note:
        stored = records.in_write(run)
        note.version_id = stored.version_id
        note.patients.update(p for p in (stored.patient_id,) if p)
        return stored


def lock_calendar(conn: Connection, practitioner_id: str) -> None:
    """Take the practitioner's calendar lock for the rest of the transaction (made on first use)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                "INSERT INTO telehealth_calendars (practitioner_id, bookings) VALUES (:p, 0) "
                "ON CONFLICT (practitioner_id) DO NOTHING"
            ),
            {"p": practitioner_id},
        )
        conn.execute(
            text("SELECT practitioner_id FROM telehealth_calendars WHERE practitioner_id = :p FOR UPDATE"),
            {"p": practitioner_id},
        )
        return
    c = telehealth_calendars.c  # SQLite: the write transaction already holds the database lock
    if conn.execute(select(c.practitioner_id).where(c.practitioner_id == practitioner_id)).first() is None:
        conn.execute(telehealth_calendars.insert().values(practitioner_id=practitioner_id, bookings=0))


def _overlapping(conn: Connection, practitioner_id: str, slot: SlotTime, *, besides: str = "") -> bool:
    b = telehealth_bookings.c
    found = conn.execute(
        select(b.appointment_id)
        .where(
            and_(
                b.practitioner_id == practitioner_id,
                b.appointment_id != besides,
                b.status == "booked",
                b.start < slot.end.astimezone(UTC),
                b.end > slot.start.astimezone(UTC),
            )
        )
        .limit(1)
    ).first()
    return found is not None
