"""Visit reminders by email, through SMTP, when ``MEDWEAVE_SMTP_HOST`` is set.

``send_due`` runs every minute (the app's sweeper). A booked visit that starts within
``MEDWEAVE_REMINDER_HOURS`` and has no reminder yet is claimed by a compare-and-set on
``reminded_at`` (so two app processes never both send one), then the patient's e-mail address is
read from their ``Patient.telecom`` as the system (an audited read), and one message goes out:
the time in the clinic's zone, where to check in, and the visit as an ``.ics`` attachment. It
names no clinician, reason or diagnosis. If sending fails the claim is released and the next run
tries again; a patient without an e-mail address is skipped for good.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import and_, update

from medweave.db import write_tx
from medweave.errors import MedweaveError
from medweave.records.service import RecordService
from medweave.security.principal import Principal
from medweave.telehealth import schedule
from medweave.telehealth.calendar_file import appointment_ics
from medweave.telehealth.tables import telehealth_bookings
from medweave.telehealth.visits import Visit, due_ids, find

log = logging.getLogger("medweave.telehealth.reminders")
SYSTEM = Principal.internal("reminders")


@dataclass(frozen=True)
class Mailer:
    """An SMTP submission server: ``tls`` is ``starttls`` (port 587), ``tls`` (465) or ``none``."""

    host: str
    port: int = 587
    tls: str = "starttls"
    username: str | None = None
    password_file: Path | None = None
    sender: str = "medweave@localhost"
    timeout: float = 20.0

    def send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.tls == "tls":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.tls == "starttls":
                smtp.starttls(context=context)
            if self.username:
                password = self.password_file.read_text().strip() if self.password_file else ""
                smtp.login(self.username, password)
            smtp.send_message(message)


def email_of(patient: dict[str, object]) -> str | None:
    """The patient's e-mail address: a ``telecom`` with system ``email`` (the first in use)."""
    telecom = patient.get("telecom")
    for contact in telecom if isinstance(telecom, list) else []:
        if (
            isinstance(contact, dict)
            and contact.get("system") == "email"
            and contact.get("use") != "old"
            and isinstance(contact.get("value"), str)
            and "@" in contact["value"]
        ):
            return str(contact["value"]).strip()
    return None


def message_for(visit: Visit, *, to: str, sender: str, zone: str, base_url: str) -> EmailMessage:
    local = visit.start.astimezone(ZoneInfo(zone))
    when = f"{local:%A %d %B %Y at %H:%M} ({local.tzname()})"
    kind = "video visit" if visit.modality == "video" else "visit"
    message = EmailMessage()
    message["From"], message["To"] = sender, to
    message["Subject"] = f"Reminder: your {kind} on {local:%d %b %Y at %H:%M}"
    base = base_url.rstrip("/")
    how = (
        f"Open {base}/visits up to 30 minutes before to check your camera and microphone and check in."
        if visit.modality == "video"
        else "Please arrive a few minutes early."
    )
    message.set_content(
        f"You have a {kind} on {when}.\n\n{how}\n\nTo move or cancel it, use {base}/visits.\n"
    )
    ics = appointment_ics(
        uid=f"{visit.appointment_id}@{urlsplit(base).netloc or 'medweave'}",
        start=visit.start,
        end=visit.end,
        summary=kind.capitalize(),
    )
    message.add_attachment(ics.encode(), maintype="text", subtype="calendar", filename="visit.ics")
    return message


def send_due(
    records: RecordService,
    *,
    send: Callable[[EmailMessage], None],
    sender: str,
    base_url: str,
    now: datetime,
    ahead: timedelta,
) -> int:
    """Send the reminders that are due; returns how many went out."""
    b = telehealth_bookings.c
    due = due_ids(records.engine, b.reminded_at.is_(None), b.start > now, b.start <= now + ahead)
    sent = 0
    for appointment_id in due:
        with write_tx(records.engine) as conn:
            claimed = conn.execute(
                update(telehealth_bookings)
                .where(and_(b.appointment_id == appointment_id, b.reminded_at.is_(None)))
                .values(reminded_at=now)
            ).rowcount
            visit = find(conn, appointment_id)
        if claimed != 1 or visit.patient_id is None:
            continue
        try:
            patient = records.read(principal=SYSTEM, res_type="Patient", res_id=visit.patient_id).body or {}
        except MedweaveError:
            continue  # erased or gone: nobody to remind
        address = email_of(patient)
        if address is None:
            continue
        try:
            zone = schedule.load(records.engine, visit.practitioner_id).availability.timezone
        except MedweaveError:
            zone = "UTC"
        try:
            send(message_for(visit, to=address, sender=sender, zone=zone, base_url=base_url))
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("a visit reminder was not sent (will retry): %s", type(exc).__name__)
            with write_tx(records.engine) as conn:
                conn.execute(
                    update(telehealth_bookings)
                    .where(b.appointment_id == appointment_id)
                    .values(reminded_at=None)
                )
            continue
        sent += 1
    return sent
