"""The day of a video visit on SQLite and PostgreSQL: check-in, admission, hang-up, the note,
no-shows, reschedule, one-time links, and who may do each."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from medweave.audit.tables import audit_log
from medweave.errors import Conflict, InvalidInput, NotFound
from medweave.records.service import RecordService
from medweave.security.principal import Principal, Role
from medweave.security.scopes import ScopeSet
from medweave.telehealth import schedule, visits
from medweave.telehealth.availability import Availability, Hours, SlotTime, VisitType
from medweave.telehealth.booking import book, cancel, reschedule
from medweave.telehealth.tables import telehealth_bookings
from race_support import all_at_once

OPERATOR = Principal.internal("test")
VIDEO = VisitType("standard", 20, 10, "video")
IN_PERSON = VisitType("clinic", 20, 0, "in-person")


def patient_principal(pid: str) -> Principal:
    scopes = ScopeSet.parse("patient/*.rs patient/Appointment.cu")
    return Principal(kind="user", subject=f"u-{pid}", scopes=scopes, role=Role.PATIENT, patient_id=pid)


def clinician_principal(practitioner: str) -> Principal:
    scopes = ScopeSet.parse("user/*.cruds")
    return Principal(
        kind="user",
        subject=f"u-{practitioner}",
        scopes=scopes,
        role=Role.CLINICIAN,
        practitioner_id=practitioner,
    )


def create(records: RecordService, body: dict[str, object]) -> str:
    return records.create(principal=OPERATOR, res_type=str(body["resourceType"]), data=body).res_id


@pytest.fixture
def clinic(records: RecordService) -> dict[str, str]:
    practitioner = create(records, {"resourceType": "Practitioner", "name": [{"family": "Grey"}]})
    other_practitioner = create(records, {"resourceType": "Practitioner", "name": [{"family": "Yang"}]})
    alice = create(records, {"resourceType": "Patient", "name": [{"family": "Liddell"}]})
    bob = create(records, {"resourceType": "Patient", "name": [{"family": "Builder"}]})
    for pid in (alice, bob):
        create(
            records,
            {
                "resourceType": "CareTeam",
                "status": "active",
                "subject": {"reference": f"Patient/{pid}"},
                "participant": [{"member": {"reference": f"Practitioner/{practitioner}"}}],
            },
        )
    return {"practitioner": practitioner, "other": other_practitioner, "alice": alice, "bob": bob}


def booked(records: RecordService, pid: str, practitioner: str, start: datetime) -> str:
    return book(
        records,
        principal=patient_principal(pid),
        patient_id=pid,
        practitioner_id=practitioner,
        slot=SlotTime(start, start + timedelta(minutes=20)),
        visit=VIDEO,
    ).res_id


def test_a_visit_from_check_in_to_note(records: RecordService, clinic: dict[str, str]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    aid = booked(records, clinic["alice"], clinic["practitioner"], now + timedelta(minutes=10))
    alice, grey = patient_principal(clinic["alice"]), clinician_principal(clinic["practitioner"])

    with pytest.raises(NotFound):  # Bob is not part of Alice's visit
        visits.check_in(records, principal=patient_principal(clinic["bob"]), appointment_id=aid, now=now)
    with pytest.raises(Conflict):  # nobody is waiting yet
        visits.admit(records, principal=grey, appointment_id=aid, now=now)

    waiting = visits.check_in(records, principal=alice, appointment_id=aid, now=now)
    assert waiting.state == "waiting" and waiting.checked_in_at == now
    assert records.read(principal=OPERATOR, res_type="Appointment", res_id=aid).body["status"] == "checked-in"  # type: ignore[index]
    assert [v.appointment_id for v in visits.queue(records.engine, clinic["practitioner"])] == [aid]
    assert visits.queue(records.engine, clinic["practitioner"])[0].waited(
        now + timedelta(minutes=3)
    ) == timedelta(minutes=3)

    with pytest.raises(NotFound):  # a patient cannot admit, nor can another clinician
        visits.admit(records, principal=alice, appointment_id=aid, now=now)
    with pytest.raises(NotFound):
        visits.admit(records, principal=clinician_principal(clinic["other"]), appointment_id=aid, now=now)

    admitted = visits.admit(records, principal=grey, appointment_id=aid, now=now + timedelta(minutes=1))
    assert admitted.state == "in-call" and admitted.encounter_id
    encounter = (
        records.read(principal=OPERATOR, res_type="Encounter", res_id=admitted.encounter_id).body or {}
    )
    assert encounter["status"] == "in-progress" and encounter["class"]["code"] == "VR"
    assert encounter["subject"]["reference"] == f"Patient/{clinic['alice']}"
    assert encounter["appointment"][0]["reference"] == f"Appointment/{aid}"

    done = visits.end(
        records, principal=grey, appointment_id=aid, now=now + timedelta(minutes=13, seconds=30)
    )
    assert done.state == "finished"
    encounter = (
        records.read(principal=OPERATOR, res_type="Encounter", res_id=admitted.encounter_id).body or {}
    )
    assert encounter["status"] == "finished" and encounter["length"]["value"] == 12.5
    assert encounter["period"]["end"] > encounter["period"]["start"]
    assert records.read(principal=OPERATOR, res_type="Appointment", res_id=aid).body["status"] == "fulfilled"  # type: ignore[index]

    soap = visits.Soap(
        "Headache for 3 days", "Alert, no neck stiffness", "Tension headache", "Paracetamol, review"
    )
    first = visits.save_note(records, principal=grey, appointment_id=aid, soap=soap)
    second = visits.save_note(
        records,
        principal=grey,
        appointment_id=aid,
        soap=visits.Soap(soap.subjective, soap.objective, soap.assessment, "Review in 2 weeks"),
    )
    assert (first.res_id, first.version_id, second.version_id) == (second.res_id, 1, 2)
    note = second.body or {}
    assert note["resourceType"] == "DocumentReference" and note["docStatus"] == "final"
    assert note["context"]["encounter"][0]["reference"] == f"Encounter/{admitted.encounter_id}"
    assert "Review in 2 weeks" in base64.b64decode(note["content"][0]["attachment"]["data"]).decode()
    assert visits.read_note(records, principal=grey, visit=done) == visits.Soap(
        soap.subjective, soap.objective, soap.assessment, "Review in 2 weeks"
    )
    with pytest.raises(NotFound):
        visits.save_note(records, principal=alice, appointment_id=aid, soap=soap)
    with pytest.raises(InvalidInput):
        visits.Soap("", " ", "", "")

    with records.engine.connect() as conn:
        rows = conn.execute(select(audit_log.c.body)).all()
        notes = conn.execute(
            select(audit_log.c.patient_id).where(
                audit_log.c.entity_type == "DocumentReference", audit_log.c.entity_id == first.res_id
            )
        ).all()
    operations = " ".join(str(r.body) for r in rows)
    for operation in ("check-in", "admit", "end"):
        assert operation in operations
    assert len(notes) >= 2 and {n.patient_id for n in notes} == {clinic["alice"]}  # each save audited


def test_one_patient_at_a_time(records: RecordService, clinic: dict[str, str]) -> None:
    now = datetime.now(UTC)
    first = booked(records, clinic["alice"], clinic["practitioner"], now)
    second = booked(records, clinic["bob"], clinic["practitioner"], now + timedelta(minutes=25))
    grey = clinician_principal(clinic["practitioner"])
    visits.check_in(records, principal=patient_principal(clinic["alice"]), appointment_id=first, now=now)
    visits.check_in(records, principal=patient_principal(clinic["bob"]), appointment_id=second, now=now)
    assert [v.appointment_id for v in visits.queue(records.engine, clinic["practitioner"])] == [first, second]
    visits.admit(records, principal=grey, appointment_id=first, now=now)
    with pytest.raises(Conflict, match="finish the visit"):
        visits.admit(records, principal=grey, appointment_id=second, now=now)
    visits.end(records, principal=grey, appointment_id=first, now=now)
    assert visits.admit(records, principal=grey, appointment_id=second, now=now).state == "in-call"


def test_concurrent_admits_let_one_patient_in(records: RecordService, clinic: dict[str, str]) -> None:
    """Eight waiting patients admitted at once by one clinician (eight browser tabs): one goes in."""
    start = datetime.now(UTC).replace(microsecond=0)
    grey = clinician_principal(clinic["practitioner"])
    waiting = []
    for n in range(8):
        pid = create(records, {"resourceType": "Patient", "name": [{"family": f"Queue{n}"}]})
        at = start + timedelta(minutes=30 * n)
        aid = booked(records, pid, clinic["practitioner"], at)
        visits.check_in(records, principal=patient_principal(pid), appointment_id=aid, now=at)
        waiting.append(aid)
    outcomes = all_at_once(
        lambda aid: visits.admit(records, principal=grey, appointment_id=aid, now=start), waiting
    )
    admitted = [o for o in outcomes.values() if isinstance(o, visits.Visit)]
    refused = [o for o in outcomes.values() if isinstance(o, Conflict)]
    assert (len(admitted), len(refused)) == (1, 7), [type(o).__name__ for o in outcomes.values()]
    in_call = [aid for aid in waiting if visits.load(records.engine, aid).state == "in-call"]
    assert in_call == [admitted[0].appointment_id]  # type: ignore[attr-defined]


def test_the_database_holds_one_call_per_practitioner(records: RecordService, clinic: dict[str, str]) -> None:
    """Even a path that skips the lock cannot put a practitioner in two calls."""
    now = datetime.now(UTC)
    first = booked(records, clinic["alice"], clinic["practitioner"], now)
    second = booked(records, clinic["bob"], clinic["practitioner"], now + timedelta(minutes=30))
    third = booked(records, clinic["bob"], clinic["other"], now)
    b = telehealth_bookings.c
    with records.engine.begin() as conn:
        conn.execute(
            update(telehealth_bookings)
            .where(b.appointment_id.in_([first, third]))
            .values(visit_state="in-call")
        )  # two practitioners, one call each: allowed
    with pytest.raises(IntegrityError), records.engine.begin() as conn:
        conn.execute(
            update(telehealth_bookings).where(b.appointment_id == second).values(visit_state="in-call")
        )
    assert visits.load(records.engine, second).state == "scheduled"


def test_in_person_visits_have_no_waiting_room(records: RecordService, clinic: dict[str, str]) -> None:
    now = datetime.now(UTC)
    at = now - timedelta(minutes=40)
    aid = book(
        records,
        principal=patient_principal(clinic["alice"]),
        patient_id=clinic["alice"],
        practitioner_id=clinic["practitioner"],
        slot=SlotTime(at, at + timedelta(minutes=20)),
        visit=IN_PERSON,
    ).res_id
    body = records.read(principal=OPERATOR, res_type="Appointment", res_id=aid).body or {}
    assert body["appointmentType"]["coding"][0]["code"] == "clinic"
    assert body["serviceType"] == [{"text": "in-person visit"}]
    assert visits.load(records.engine, aid).modality == "in-person"
    with pytest.raises(Conflict, match="video"):
        visits.check_in(records, principal=patient_principal(clinic["alice"]), appointment_id=aid, now=at)
    # The no-show sweep is for video visits; the front desk records in-person attendance.
    assert visits.mark_no_shows(records, now=now, grace=timedelta(minutes=15)) == []
    assert visits.load(records.engine, aid).state == "scheduled"


def test_a_visit_in_progress_cannot_be_cancelled(records: RecordService, clinic: dict[str, str]) -> None:
    """A stale page's Cancel must not strand the call: the clinician could never end it."""
    now = datetime.now(UTC)
    aid = booked(records, clinic["alice"], clinic["practitioner"], now)
    alice, grey = patient_principal(clinic["alice"]), clinician_principal(clinic["practitioner"])
    visits.check_in(records, principal=alice, appointment_id=aid, now=now)
    with pytest.raises(Conflict, match="waiting"):
        cancel(records, principal=alice, appointment_id=aid)
    visits.admit(records, principal=grey, appointment_id=aid, now=now)
    with pytest.raises(Conflict, match="in-call"):
        cancel(records, principal=alice, appointment_id=aid)
    assert visits.end(records, principal=grey, appointment_id=aid, now=now).state == "finished"


def test_check_in_window_and_no_shows(records: RecordService, clinic: dict[str, str]) -> None:
    now = datetime.now(UTC)
    later = booked(records, clinic["alice"], clinic["practitioner"], now + timedelta(hours=2))
    with pytest.raises(Conflict, match="30 minutes"):
        visits.check_in(records, principal=patient_principal(clinic["alice"]), appointment_id=later, now=now)
    missed = booked(records, clinic["bob"], clinic["practitioner"], now - timedelta(minutes=16))
    came = booked(records, clinic["alice"], clinic["practitioner"], now - timedelta(minutes=40))
    visits.check_in(
        records,
        principal=patient_principal(clinic["alice"]),
        appointment_id=came,
        now=now - timedelta(minutes=39),
    )
    marked = visits.mark_no_shows(records, now=now, grace=timedelta(minutes=15))
    assert marked == [missed]  # not the later visit, not the one who checked in
    assert visits.load(records.engine, missed).state == "no-show"
    assert records.read(principal=OPERATOR, res_type="Appointment", res_id=missed).body["status"] == "noshow"  # type: ignore[index]
    assert visits.mark_no_shows(records, now=now, grace=timedelta(minutes=15)) == []


def test_reschedule_moves_the_booking_and_frees_the_old_time(
    records: RecordService, clinic: dict[str, str]
) -> None:
    start = datetime(2027, 1, 4, 9, tzinfo=UTC)
    aid = booked(records, clinic["alice"], clinic["practitioner"], start)
    other = booked(records, clinic["bob"], clinic["practitioner"], start + timedelta(hours=1))
    alice = patient_principal(clinic["alice"])
    with pytest.raises(Conflict):
        reschedule(
            records,
            principal=alice,
            appointment_id=aid,
            slot=SlotTime(start + timedelta(hours=1), start + timedelta(minutes=80)),
        )
    moved = reschedule(
        records,
        principal=alice,
        appointment_id=aid,
        slot=SlotTime(start + timedelta(hours=2), start + timedelta(minutes=140)),
    )
    assert (moved.body or {})["start"] == "2027-01-04T11:00:00Z"
    assert booked(records, clinic["bob"], clinic["practitioner"], start)  # the old time is free again
    with pytest.raises(NotFound):  # Bob cannot move Alice's visit, nor see that it exists
        reschedule(
            records,
            principal=patient_principal(clinic["bob"]),
            appointment_id=aid,
            slot=SlotTime(start + timedelta(hours=3), start + timedelta(minutes=200)),
        )
    assert (records.read(principal=OPERATOR, res_type="Appointment", res_id=aid).body or {})[
        "start"
    ] == "2027-01-04T11:00:00Z"  # untouched
    assert visits.load(records.engine, other).start == start + timedelta(hours=1)  # Bob's stays put


def test_one_time_links(records: RecordService, clinic: dict[str, str]) -> None:
    now = datetime.now(UTC)
    aid = booked(records, clinic["alice"], clinic["practitioner"], now)
    visit = visits.load(records.engine, aid)
    grey = clinician_principal(clinic["practitioner"])
    with pytest.raises(NotFound):
        visits.invite(
            records.engine, principal=patient_principal(clinic["alice"]), visit=visit, label="Mum", now=now
        )
    with pytest.raises(InvalidInput):
        visits.invite(records.engine, principal=grey, visit=visit, label="  ", now=now)
    secret = visits.invite(records.engine, principal=grey, visit=visit, label="Interpreter (Polish)", now=now)
    guest = visits.redeem(records.engine, secret, now=now)
    assert (
        guest.appointment_id == aid
        and guest.label == "Interpreter (Polish)"
        and guest.who.startswith("guest:")
    )
    with pytest.raises(NotFound):  # once only
        visits.redeem(records.engine, secret, now=now)
    late = visits.invite(records.engine, principal=grey, visit=visit, label="Daughter", now=now)
    with pytest.raises(NotFound):  # expired
        visits.redeem(records.engine, late, now=now + timedelta(days=2))
    with pytest.raises(NotFound):
        visits.redeem(records.engine, "not-a-real-invitation-secret-at-all", now=now)


def test_published_availability_is_a_schedule_and_gives_free_slots(
    records: RecordService, clinic: dict[str, str]
) -> None:
    grey = clinician_principal(clinic["practitioner"])
    hours = Availability(
        "Europe/London",
        (Hours(datetime.min.time().replace(hour=9), datetime.min.time().replace(hour=10), weekday=0),),
    )
    now = datetime(2027, 1, 1, tzinfo=UTC)
    published = schedule.publish(
        records,
        principal=grey,
        practitioner_id=clinic["practitioner"],
        availability=hours,
        visit_types=(VIDEO,),
        now=now,
    )
    resource = records.read(principal=OPERATOR, res_type="Schedule", res_id=published.schedule_id).body or {}
    assert (
        resource["actor"] == [{"reference": f"Practitioner/{clinic['practitioner']}"}]
        and resource["active"] is True
    )
    again = schedule.publish(
        records,
        principal=grey,
        practitioner_id=clinic["practitioner"],
        availability=hours,
        visit_types=(VIDEO,),
        now=now,
    )
    assert again.schedule_id == published.schedule_id  # one Schedule per practitioner, versioned
    loaded = schedule.load(records.engine, clinic["practitioner"])
    assert loaded == published
    monday = datetime(2027, 1, 4, tzinfo=UTC)
    free = schedule.free_slots(records.engine, loaded, VIDEO, start=monday, end=monday + timedelta(days=1))
    assert [s.start.hour * 60 + s.start.minute for s in free] == [9 * 60, 9 * 60 + 30]  # 20 min + 10 buffer
    booked(records, clinic["alice"], clinic["practitioner"], free[0].start)
    left = schedule.free_slots(records.engine, loaded, VIDEO, start=monday, end=monday + timedelta(days=1))
    assert left == free[1:]
    slots = schedule.slot_resources(loaded, left)
    assert (
        slots[0]["schedule"] == {"reference": f"Schedule/{published.schedule_id}"}
        and slots[0]["status"] == "free"
    )
