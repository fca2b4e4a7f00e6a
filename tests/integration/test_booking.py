"""Booking on SQLite and PostgreSQL: no double booking under concurrency, overlaps refused,
cancelling frees the slot, and patients book only for themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from medweave.errors import Conflict, MedweaveError, PermissionDenied
from medweave.records.service import RecordService
from medweave.security.principal import Principal, Role
from medweave.security.scopes import ScopeSet
from medweave.telehealth.availability import SlotTime, VisitType
from medweave.telehealth.booking import book, cancel
from race_support import all_at_once

OPERATOR = Principal.internal("test")
VISIT = VisitType("consult", 30)
NINE = datetime(2026, 12, 7, 9, tzinfo=UTC)


def slot(start: datetime, minutes: int = 30) -> SlotTime:
    return SlotTime(start, start + timedelta(minutes=minutes))


def patient_principal(pid: str) -> Principal:
    scopes = ScopeSet.parse("patient/*.cruds")
    return Principal(kind="user", subject=f"user:{pid}", scopes=scopes, role=Role.PATIENT, patient_id=pid)


def new_patient(records: RecordService, n: int) -> str:
    body = {"resourceType": "Patient", "name": [{"family": f"Booker{n}"}]}
    return records.create(principal=OPERATOR, res_type="Patient", data=body).res_id


def book_as(
    records: RecordService, pid: str, practitioner: str, start: datetime, *, for_pid: str | None = None
) -> Any:
    """``pid`` books a visit starting at ``start`` (for themselves, or for ``for_pid``)."""
    return book(
        records,
        principal=patient_principal(pid),
        patient_id=for_pid or pid,
        practitioner_id=practitioner,
        slot=slot(start),
        visit=VISIT,
    )


@pytest.fixture
def practitioner(records: RecordService) -> str:
    body = {"resourceType": "Practitioner", "name": [{"family": "Grey"}]}
    return records.create(principal=OPERATOR, res_type="Practitioner", data=body).res_id


def test_fifty_patients_one_slot_exactly_one_booking(records: RecordService, practitioner: str) -> None:
    patients = [new_patient(records, n) for n in range(50)]
    outcomes = all_at_once(lambda pid: book_as(records, pid, practitioner, NINE), patients)
    booked = [o for o in outcomes.values() if not isinstance(o, Exception)]
    refused = [o for o in outcomes.values() if isinstance(o, Conflict)]
    assert (len(booked), len(refused)) == (1, 49), [type(o).__name__ for o in outcomes.values()]
    body = booked[0].body  # type: ignore[attr-defined]
    assert body["status"] == "booked" and body["start"] == "2026-12-07T09:00:00Z"


def test_overlaps_are_refused_and_cancelling_frees_the_slot(
    records: RecordService, practitioner: str
) -> None:
    a, b = new_patient(records, 1), new_patient(records, 2)
    first = book_as(records, a, practitioner, NINE)
    with pytest.raises(Conflict):  # 09:15-09:45 overlaps 09:00-09:30
        book_as(records, b, practitioner, NINE + timedelta(minutes=15))
    book_as(records, b, practitioner, NINE + timedelta(minutes=30))
    cancelled = cancel(records, principal=patient_principal(a), appointment_id=first.res_id)
    assert cancelled.body is not None and cancelled.body["status"] == "cancelled"
    again = book_as(records, b, practitioner, NINE)
    assert again.res_id != first.res_id
    with pytest.raises(MedweaveError):  # a cancelled booking cannot be cancelled twice
        cancel(records, principal=patient_principal(a), appointment_id=first.res_id)


def test_a_patient_books_only_for_themselves(records: RecordService, practitioner: str) -> None:
    me, other = new_patient(records, 1), new_patient(records, 2)
    with pytest.raises(PermissionDenied):
        book_as(records, me, practitioner, NINE, for_pid=other)
    # ...and the refused attempt left no booking behind: the slot is still free
    assert book_as(records, other, practitioner, NINE)


def test_a_booking_is_audited(records: RecordService, practitioner: str) -> None:
    pid = new_patient(records, 1)
    stored = book_as(records, pid, practitioner, NINE)
    audit = records.trail.audit
    assert audit is not None
    events = [e for e in audit.since(0) if e.entity_id == stored.res_id]
    assert [(e.interaction, e.patient_id, e.user_ref) for e in events] == [("create", pid, f"Patient/{pid}")]


def test_staff_book_for_patients_in_their_care_only(records: RecordService, practitioner: str) -> None:
    mine, stranger = new_patient(records, 1), new_patient(records, 2)
    team = {
        "resourceType": "CareTeam",
        "status": "active",
        "subject": {"reference": f"Patient/{mine}"},
        "participant": [{"member": {"reference": f"Practitioner/{practitioner}"}}],
    }
    records.create(principal=OPERATOR, res_type="CareTeam", data=team)
    clinician = Principal(
        kind="user",
        subject="user:grey",
        scopes=ScopeSet.parse("user/*.cruds"),
        role=Role.CLINICIAN,
        practitioner_id=practitioner,
    )
    stored = book(
        records,
        principal=clinician,
        patient_id=mine,
        practitioner_id=practitioner,
        slot=slot(NINE),
        visit=VISIT,
    )
    assert stored.patient_id == mine
    with pytest.raises(PermissionDenied):
        book(
            records,
            principal=clinician,
            patient_id=stranger,
            practitioner_id=practitioner,
            slot=slot(NINE + timedelta(hours=1)),
            visit=VISIT,
        )
