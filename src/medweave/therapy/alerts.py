"""Safety alerts: a ``Flag`` and a ``Task`` on the patient's record, an index row, and notices.

Raising an alert (``raise_alert``) writes, in one transaction and as the system
(``SAFETY``): a ``Flag`` (category "safety", active, the level in its code text) that every chart
shows, and a ``Task`` (intent order, priority ``stat`` for high and ``urgent`` otherwise, "review
suicide risk", ``focus`` the Flag) that a clinician owns once they acknowledge it. Both writes
are audited and committed to the ledger like any record version. The index row
(``therapy_alerts``) holds ids, the level, the source and times, and never the patient's words.

An open alert of the same or a higher level raised in the last day is not repeated: the assistant
may hear the same thing twice in a conversation, and one alert is what a clinician should see. A
request for a person is its own alert, never folded into a risk alert.

Notices (email through SMTP, a webhook POST) say only that an alert of a level is waiting, with a
link to the dashboard: no name, no message text. An unacknowledged ``high`` alert is notified
again every ``renotify_after`` (``renotify``, run by the app's sweep). Every notice is claimed by
a compare-and-set on ``notified_at`` first, so two processes never both send it, and a notice
that fails gives its claim back so that the next sweep tries again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import Connection, or_, select, update

from medweave.db import write_tx
from medweave.errors import NotFound
from medweave.records.keys import is_erased
from medweave.records.service import RecordService
from medweave.records.store import instant
from medweave.security.principal import Principal
from medweave.therapy.tables import therapy_alerts

log = logging.getLogger("medweave.therapy.alerts")
SAFETY = Principal.internal("therapy-safety")
LEVELS = ("concern", "ideation", "high")
FLAG_CATEGORY = {
    "system": "http://terminology.hl7.org/CodeSystem/flag-category",
    "code": "safety",
    "display": "Safety",
}
ALERT_SYSTEM = "urn:medweave:therapy-alert"
TITLES = {
    "high": "High suicide risk: review now",
    "ideation": "Suicidal ideation or self-harm: review today",
    "concern": "Concern raised in the therapy assistant: review",
}
#: Sources whose alert says something more specific than its level.
HUMAN = "human-request"
#: An open alert covers the same thing said again only this long: after a day, a new one is raised
#: (a product choice, so that a risk repeated on another day is seen again; no guideline sets it).
REPEAT_WINDOW = timedelta(hours=24)
SOURCE_TITLES = {
    HUMAN: "The patient asked to talk to a person",
    "chat-other": "The patient reported someone else at risk (safeguarding)",
}


@dataclass(frozen=True)
class Alert:
    id: str
    patient_id: str
    level: str
    source: str
    flag_id: str
    task_id: str
    created_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "patient": self.patient_id,
            "level": self.level,
            "source": self.source,
            "created": instant(self.created_at),
            "acknowledged": instant(self.acknowledged_at) if self.acknowledged_at else None,
        }


def _row(row: Any) -> Alert:
    return Alert(
        row.id, row.patient_id, row.level, row.source, row.flag_id, row.task_id, row.created_at,
        row.acknowledged_at, row.acknowledged_by,
    )  # fmt: skip


def flag_resource(*, patient_id: str, level: str, source: str, now: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Flag",
        "status": "active",
        "category": [{"coding": [FLAG_CATEGORY]}],
        "code": {
            "coding": [{"system": ALERT_SYSTEM, "code": level}],
            "text": SOURCE_TITLES.get(source, TITLES[level]),
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": instant(now)},
        "author": {"display": f"Medweave therapy assistant ({source})"},
    }


def task_resource(*, patient_id: str, level: str, source: str, flag_id: str, now: datetime) -> dict[str, Any]:
    title = SOURCE_TITLES.get(source, TITLES[level])
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": "stat" if level == "high" else "urgent",
        "code": {"coding": [{"system": ALERT_SYSTEM, "code": f"review-{level}"}], "text": title},
        "description": "Review the patient's safety and contact them. Raised by the therapy assistant.",
        "focus": {"reference": f"Flag/{flag_id}"},
        "for": {"reference": f"Patient/{patient_id}"},
        "authoredOn": instant(now),
    }


def open_alert(
    conn: Connection, patient_id: str, *, since: datetime | None = None, human: bool = False
) -> Alert | None:
    """The patient's most serious unacknowledged alert (raised ``since``, if given), of risk
    (``human`` False) or of a request for a person (``human`` True)."""
    query = select(therapy_alerts).where(
        therapy_alerts.c.patient_id == patient_id, therapy_alerts.c.acknowledged_at.is_(None)
    )
    if since is not None:
        query = query.where(therapy_alerts.c.created_at >= since)
    kind = therapy_alerts.c.source == HUMAN
    query = query.where(kind if human else ~kind)
    found = [_row(r) for r in conn.execute(query).all()]
    return max(found, key=lambda a: (LEVELS.index(a.level), a.created_at), default=None)


def raise_alert(
    records: RecordService, *, patient_id: str, level: str, source: str, now: datetime
) -> tuple[Alert, bool]:
    """The alert for this patient at this level: an open one of the last day that covers it (a
    request for a person is covered only by another such request), or a new one.
    Returns ``(alert, created)``."""
    if level not in LEVELS:
        raise ValueError(f"an alert's level is one of {LEVELS}")
    flag_id, task_id, alert_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())

    def run(conn: Connection) -> tuple[Alert, bool]:
        current = open_alert(conn, patient_id, since=now - REPEAT_WINDOW, human=source == HUMAN)
        if current is not None and LEVELS.index(current.level) >= LEVELS.index(level):
            return current, False
        flag = {**flag_resource(patient_id=patient_id, level=level, source=source, now=now), "id": flag_id}
        task = {
            **task_resource(patient_id=patient_id, level=level, source=source, flag_id=flag_id, now=now),
            "id": task_id,
        }
        records.write_in(conn, principal=SAFETY, res_type="Flag", res_id=flag_id, body=flag)
        records.write_in(conn, principal=SAFETY, res_type="Task", res_id=task_id, body=task)
        alert = Alert(alert_id, patient_id, level, source, flag_id, task_id, now)
        conn.execute(
            therapy_alerts.insert().values(
                id=alert_id,
                patient_id=patient_id,
                level=level,
                source=source,
                flag_id=flag_id,
                task_id=task_id,
                created_at=now,
                notifications=0,
            )
        )
        return alert, True

    with (
        records.trail.event(SAFETY, "create", res_type="Flag") as flagged,
        records.trail.event(SAFETY, "create", res_type="Task") as tasked,
    ):
        alert, created = records.in_write(run)
        for note, res_id in ((flagged, alert.flag_id), (tasked, alert.task_id)):
            note.status = 201 if created else 200
            note.res_id = res_id
            note.patients.add(patient_id)
    return alert, created


def acknowledge(records: RecordService, *, principal: Principal, alert_id: str, now: datetime) -> Alert:
    """A clinician takes the alert: its Task becomes theirs (in progress), written as them, so the
    access rules decide whether they may (the patient must be in their care)."""
    with records.engine.connect() as conn:
        row = conn.execute(select(therapy_alerts).where(therapy_alerts.c.id == alert_id)).first()
    if row is None:
        raise NotFound("no such alert")
    alert = _row(row)
    task = records.read(principal=principal, res_type="Task", res_id=alert.task_id).body or {}
    owner = principal.audit_ref
    task = {**task, "status": "in-progress", "lastModified": instant(now)}
    if owner.startswith("Practitioner/"):
        task["owner"] = {"reference": owner}
    records.update(principal=principal, res_type="Task", res_id=alert.task_id, data=task)
    with write_tx(records.engine) as conn:
        conn.execute(
            update(therapy_alerts)
            .where(therapy_alerts.c.id == alert_id, therapy_alerts.c.acknowledged_at.is_(None))
            .values(acknowledged_at=now, acknowledged_by=owner)
        )
    return Alert(
        **{**alert.__dict__, "acknowledged_at": alert.acknowledged_at or now, "acknowledged_by": owner}
    )


def recent_level(
    conn: Connection, patient_id: str, *, since: datetime, sources: tuple[str, ...]
) -> str | None:
    """The highest level of the patient's alerts from ``sources`` raised since ``since``,
    acknowledged or not: acknowledging an alert does not make the risk it reported go away."""
    rows = conn.execute(
        select(therapy_alerts.c.level).where(
            therapy_alerts.c.patient_id == patient_id,
            therapy_alerts.c.created_at >= since,
            therapy_alerts.c.source.in_(sources),
        )
    ).all()
    return max((r.level for r in rows), key=LEVELS.index, default=None)


def alerts_for(conn: Connection, patients: Any, *, open_only: bool = True, limit: int = 200) -> list[Alert]:
    """Alerts of the patients ``patients`` selects (a SQL subquery or a list of ids), newest first."""
    query = select(therapy_alerts).where(therapy_alerts.c.patient_id.in_(patients))
    if open_only:
        query = query.where(therapy_alerts.c.acknowledged_at.is_(None))
    rows = conn.execute(query.order_by(therapy_alerts.c.created_at.desc()).limit(limit)).all()
    return [_row(r) for r in rows]


# -- notices -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notifier:
    """Where alert notices go: e-mail addresses (sent by ``send_email``) and a webhook URL."""

    emails: Sequence[str] = ()
    send_email: Callable[[EmailMessage], None] | None = None
    sender: str = "medweave@localhost"
    webhook: str | None = None
    dashboard_url: str = "http://127.0.0.1:8000/therapy/caseload"
    post: Callable[[str, dict[str, Any]], None] | None = None

    def notify(self, alert: Alert, *, repeat: int = 0) -> bool:
        """Send the notice; True if every configured channel took it."""
        payload = {**alert.as_json(), "repeat": repeat, "dashboard": self.dashboard_url}
        payload.pop("patient")  # a notice names no one
        ok = True
        if self.emails and self.send_email is not None:
            message = EmailMessage()
            message["From"] = self.sender
            message["To"] = ", ".join(self.emails)
            again = " (reminder: not yet acknowledged)" if repeat else ""
            message["Subject"] = f"Medweave: {alert.level} safety alert{again}"
            message.set_content(
                f"A {alert.level} safety alert from the therapy assistant is waiting{again}.\n"
                f"Open the caseload dashboard to review it: {self.dashboard_url}\n"
            )
            try:
                self.send_email(message)
            except Exception as exc:  # smtplib and the network raise many types
                log.error("alert e-mail not sent: %s", type(exc).__name__)
                ok = False
        if self.webhook:
            try:
                (self.post or _post)(self.webhook, payload)
            except Exception as exc:  # httpx raises many types
                log.error("alert webhook not delivered: %s", type(exc).__name__)
                ok = False
        return ok


def _post(url: str, payload: dict[str, Any]) -> None:
    httpx.post(url, json=payload, timeout=10.0).raise_for_status()


def _claim(records: RecordService, alert_id: str, previous: datetime | None, now: datetime) -> bool:
    """Compare-and-set ``notified_at`` from ``previous`` to ``now``: whoever wins sends the notice."""
    column = therapy_alerts.c.notified_at
    was = column.is_(None) if previous is None else column == previous
    with write_tx(records.engine) as conn:
        return bool(
            conn.execute(
                update(therapy_alerts)
                .where(therapy_alerts.c.id == alert_id, therapy_alerts.c.acknowledged_at.is_(None), was)
                .values(notified_at=now, notifications=therapy_alerts.c.notifications + 1)
            ).rowcount
        )


def _release(records: RecordService, alert_id: str, previous: datetime | None, now: datetime) -> None:
    """A notice that did not go out gives its claim back, so the next sweep tries again."""
    with write_tx(records.engine) as conn:
        conn.execute(
            update(therapy_alerts)
            .where(therapy_alerts.c.id == alert_id, therapy_alerts.c.notified_at == now)
            .values(notified_at=previous, notifications=therapy_alerts.c.notifications - 1)
        )


def notify_once(records: RecordService, notifier: Notifier, alert: Alert, *, now: datetime) -> bool:
    """The first notice of a new alert; a sweep running at the same time cannot send it twice."""
    if not _claim(records, alert.id, None, now):
        return False
    if notifier.notify(alert):
        return True
    _release(records, alert.id, None, now)
    return False


def renotify(records: RecordService, notifier: Notifier, *, now: datetime, after: timedelta) -> int:
    """Notify each unacknowledged high alert never notified, or last notified ``after`` ago or
    more (a notice that failed is retried at the next sweep); alerts of erased patients are left."""
    sent = 0
    cutoff = now - after
    with records.engine.connect() as conn:
        due = conn.execute(
            select(therapy_alerts).where(
                therapy_alerts.c.level == "high",
                therapy_alerts.c.acknowledged_at.is_(None),
                or_(therapy_alerts.c.notified_at.is_(None), therapy_alerts.c.notified_at <= cutoff),
            )
        ).all()
        erased = {row.patient_id for row in due if is_erased(conn, patient_id=row.patient_id)}
    for row in due:
        if row.patient_id in erased or not _claim(records, row.id, row.notified_at, now):
            continue
        if notifier.notify(_row(row), repeat=row.notifications):
            sent += 1
        else:
            _release(records, row.id, row.notified_at, now)
    return sent
