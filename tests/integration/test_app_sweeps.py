"""The app runs its chores by itself, with nobody calling them: a running server marks no-shows,
mails the reminders that are due (a real SMTP server on loopback) and clears expired sessions
(SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from mail_support import smtp_server
from sqlalchemy import func, select

from conftest import BASE, TOKEN_SECRET
from medweave.config import Settings
from medweave.identity import IdentityService
from medweave.identity.tables import user_sessions
from medweave.records.service import RecordService
from medweave.security.principal import Principal
from medweave.telehealth import visits
from medweave.telehealth.availability import SlotTime, VisitType
from medweave.telehealth.booking import book
from medweave.web.app import create_app
from medweave.web.auth import Authenticator

OPERATOR = Principal.internal("test")
VIDEO = VisitType("standard", 20, 0, "video")


def create(records: RecordService, body: dict[str, object]) -> str:
    return records.create(principal=OPERATOR, res_type=str(body["resourceType"]), data=body).res_id


def booked(records: RecordService, pid: str, practitioner: str, start: datetime) -> str:
    slot = SlotTime(start, start + timedelta(minutes=20))
    return book(
        records, principal=OPERATOR, patient_id=pid, practitioner_id=practitioner, slot=slot, visit=VIDEO
    ).res_id


def test_a_running_server_marks_no_shows_and_sends_reminders(records: RecordService, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    grey = create(records, {"resourceType": "Practitioner", "name": [{"family": "Grey"}]})
    alice = create(
        records,
        {"resourceType": "Patient", "telecom": [{"system": "email", "value": "alice@example.org"}]},
    )
    bob = create(records, {"resourceType": "Patient", "name": [{"family": "Builder"}]})
    missed = booked(records, bob, grey, now - timedelta(minutes=40))  # 15-minute grace: a no-show
    recent = booked(records, bob, grey, now - timedelta(minutes=10))  # still within the grace
    soon = booked(records, alice, grey, now + timedelta(hours=3))  # its reminder is due

    with smtp_server() as (inbox, port):
        settings = Settings(
            data_dir=tmp_path / "data",
            base_url="http://testserver",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_tls="none",
            smtp_from="clinic@clinic.example",
            telehealth_no_show_minutes=15,
            ledger_interval_ms=0,
        )
        auth = Authenticator(secret=TOKEN_SECRET, issuer="http://testserver", audience=BASE)
        app = create_app(settings, records=records, authenticator=auth)
        with TestClient(app):  # starts the app's lifespan, as `medweave serve` does
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if visits.load(records.engine, missed).state == "no-show" and inbox.messages:
                    break
                time.sleep(0.1)
        assert visits.load(records.engine, missed).state == "no-show"
        assert visits.load(records.engine, recent).state == "scheduled"
        assert visits.load(records.engine, soon).state == "scheduled"
        assert [m["To"] for m in inbox.messages] == ["alice@example.org"]


def test_a_running_server_clears_expired_sessions(records: RecordService, tmp_path: Path) -> None:
    identity = IdentityService(engine=records.engine, master=records.master)
    users = [
        identity.create_user(
            username=name,
            role="patient",
            password="a long password 4711",
            patient_id=create(records, {"resourceType": "Patient"}),
        )
        for name in ("alice", "bob")
    ]
    identity.create_session(users[0].id, mfa=False, now=datetime.now(UTC) - timedelta(days=30))  # over
    live, _ = identity.create_session(users[1].id, mfa=False)

    def sessions() -> int:
        with records.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(user_sessions)).scalar_one())

    assert sessions() == 2
    settings = Settings(data_dir=tmp_path / "data", base_url="http://testserver", ledger_interval_ms=0)
    auth = Authenticator(secret=TOKEN_SECRET, issuer="http://testserver", audience=BASE)
    with TestClient(create_app(settings, records=records, authenticator=auth, identity=identity)):
        deadline = time.monotonic() + 20
        while sessions() > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert sessions() == 1
    assert identity.load_session(live) is not None  # the live one stays
