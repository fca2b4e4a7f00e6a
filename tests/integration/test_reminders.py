"""Visit reminders through a real SMTP server (aiosmtpd on loopback), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest
from mail_support import Inbox, free_port, smtp_server

from medweave.records.service import RecordService
from medweave.security.principal import Principal
from medweave.telehealth import visits
from medweave.telehealth.availability import SlotTime, VisitType
from medweave.telehealth.booking import book, reschedule
from medweave.telehealth.reminders import Mailer, email_of, send_due

OPERATOR = Principal.internal("test")
VIDEO = VisitType("standard", 20, 0, "video")
NOW = datetime(2027, 3, 1, 8, tzinfo=UTC)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as server:
        yield server


def patient(records: RecordService, address: str | None) -> str:
    body: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": "Liddell"}]}
    if address:
        body["telecom"] = [{"system": "phone", "value": "0123"}, {"system": "email", "value": address}]
    return records.create(principal=OPERATOR, res_type="Patient", data=body).res_id


def booked(records: RecordService, pid: str, practitioner: str, start: datetime) -> str:
    return book(
        records,
        principal=OPERATOR,
        patient_id=pid,
        practitioner_id=practitioner,
        slot=SlotTime(start, start + timedelta(minutes=20)),
        visit=VIDEO,
    ).res_id


def run(records: RecordService, mailer: Mailer) -> int:
    return send_due(
        records,
        send=mailer.send,
        sender=mailer.sender,
        base_url="https://clinic.example",
        now=NOW,
        ahead=timedelta(hours=24),
    )


def test_due_reminders_go_out_once_with_a_calendar_file(
    records: RecordService, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    mailer = Mailer(host="127.0.0.1", port=port, tls="none", sender="clinic@clinic.example")
    grey = records.create(
        principal=OPERATOR, res_type="Practitioner", data={"resourceType": "Practitioner"}
    ).res_id
    alice = patient(records, "alice@example.org")
    soon = booked(records, alice, grey, NOW + timedelta(hours=3))
    booked(records, alice, grey, NOW + timedelta(hours=30))  # not due yet
    booked(records, patient(records, None), grey, NOW + timedelta(hours=2))  # no address

    assert run(records, mailer) == 1
    assert run(records, mailer) == 0  # once only
    [message] = inbox.messages
    assert message["To"] == "alice@example.org" and message["From"] == "clinic@clinic.example"
    assert message["Subject"] == "Reminder: your video visit on 01 Mar 2027 at 11:00"
    parts = {part.get_content_type(): part for part in message.walk()}
    text = parts["text/plain"].get_payload(decode=True).decode()
    assert "https://clinic.example/visits" in text and "Liddell" not in text
    event = next(
        iter(icalendar.Calendar.from_ical(parts["text/calendar"].get_payload(decode=True)).walk("VEVENT"))
    )
    assert event.decoded("dtstart") == NOW + timedelta(hours=3)
    assert str(event["uid"]) == f"{soon}@clinic.example"


def test_a_failed_send_is_retried(records: RecordService, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    grey = records.create(
        principal=OPERATOR, res_type="Practitioner", data={"resourceType": "Practitioner"}
    ).res_id
    aid = booked(records, patient(records, "bob@example.org"), grey, NOW + timedelta(hours=1))
    down = Mailer(host="127.0.0.1", port=free_port(), tls="none", timeout=2)  # nothing listens there
    assert run(records, down) == 0
    assert visits.load(records.engine, aid).state == "scheduled"
    assert run(records, Mailer(host="127.0.0.1", port=port, tls="none")) == 1
    assert [m["To"] for m in inbox.messages] == ["bob@example.org"]


def test_email_of_reads_telecom() -> None:
    assert (
        email_of(
            {
                "telecom": [
                    {"system": "email", "value": "a@b.org", "use": "old"},
                    {"system": "email", "value": "c@d.org"},
                ]
            }
        )
        == "c@d.org"
    )
    assert email_of({"telecom": [{"system": "email", "value": "not an address"}]}) is None
    assert email_of({"telecom": "junk"}) is None and email_of({}) is None


def test_a_moved_visit_gets_a_new_reminder(records: RecordService, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    mailer = Mailer(host="127.0.0.1", port=port, tls="none")
    grey = records.create(
        principal=OPERATOR, res_type="Practitioner", data={"resourceType": "Practitioner"}
    ).res_id
    aid = booked(records, patient(records, "carol@example.org"), grey, NOW + timedelta(hours=2))
    assert run(records, mailer) == 1
    later = NOW + timedelta(hours=5)
    reschedule(
        records, principal=OPERATOR, appointment_id=aid, slot=SlotTime(later, later + timedelta(minutes=20))
    )
    assert run(records, mailer) == 1
    assert [m["Subject"] for m in inbox.messages][-1] == "Reminder: your video visit on 01 Mar 2027 at 13:00"
