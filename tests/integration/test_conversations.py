"""The therapy assistant on the record, on SQLite and PostgreSQL: a turn's actions carried out,
alerts raised once and noticed by e-mail (a real SMTP server) and webhook (a real HTTP server),
re-notified until acknowledged, and the transcript readable only by whom the access rules allow."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from mail_support import Inbox, smtp_server
from sqlalchemy import select

from medweave.errors import InvalidInput, NotFound
from medweave.records.service import RecordService
from medweave.security.principal import Principal, Role
from medweave.security.scopes import ScopeSet
from medweave.telehealth.reminders import Mailer
from medweave.therapy import alerts
from medweave.therapy.conversations import Conversations
from medweave.therapy.risk import Detector
from medweave.therapy.tables import therapy_alerts

OPERATOR = Principal.internal("test")
NOW = datetime(2027, 4, 1, 21, 0, tzinfo=UTC)
RULES_ONLY = Detector(model=False)  # the model has its own tests; these are about the record


def patient_principal(pid: str) -> Principal:
    scopes = ScopeSet.parse("patient/*.rs patient/QuestionnaireResponse.cu")
    return Principal(kind="user", subject=f"u-{pid}", scopes=scopes, role=Role.PATIENT, patient_id=pid)


def clinician_principal(practitioner: str) -> Principal:
    scopes = ScopeSet.parse("user/*.cruds")
    return Principal(
        kind="user",
        subject=f"c-{practitioner}",
        scopes=scopes,
        role=Role.CLINICIAN,
        practitioner_id=practitioner,
    )


def create(records: RecordService, body: dict[str, object]) -> str:
    return records.create(principal=OPERATOR, res_type=str(body["resourceType"]), data=body).res_id


@pytest.fixture
def clinic(records: RecordService) -> dict[str, str]:
    grey = create(records, {"resourceType": "Practitioner", "name": [{"family": "Grey"}]})
    yang = create(records, {"resourceType": "Practitioner", "name": [{"family": "Yang"}]})
    alice = create(records, {"resourceType": "Patient", "name": [{"family": "Liddell"}]})
    create(
        records,
        {
            "resourceType": "CareTeam",
            "status": "active",
            "subject": {"reference": f"Patient/{alice}"},
            "participant": [{"member": {"reference": f"Practitioner/{grey}"}}],
        },
    )
    return {"grey": grey, "yang": yang, "alice": alice}


@pytest.fixture
def notices() -> Iterator[tuple[alerts.Notifier, Inbox, list[dict[str, Any]]]]:
    hooks: list[dict[str, Any]] = []
    with smtp_server() as (inbox, smtp_port):
        yield from _with_webhook(inbox, smtp_port, hooks)


def _with_webhook(
    inbox: Inbox, smtp_port: int, hooks: list[dict[str, Any]]
) -> Iterator[tuple[alerts.Notifier, Inbox, list[dict[str, Any]]]]:

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hooks.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mailer = Mailer(host="127.0.0.1", port=smtp_port, tls="none")
    notifier = alerts.Notifier(
        emails=("duty@clinic.example",),
        send_email=mailer.send,
        webhook=f"http://127.0.0.1:{server.server_address[1]}/alerts",
    )
    yield notifier, inbox, hooks
    server.shutdown()


def test_a_risky_message_raises_one_alert_and_notices_that_name_no_one(
    records: RecordService,
    clinic: dict[str, str],
    notices: tuple[alerts.Notifier, Inbox, list[dict[str, Any]]],
) -> None:
    notifier, inbox, hooks = notices
    talk = Conversations(records, RULES_ONLY, notifier=notifier)
    alice = patient_principal(clinic["alice"])

    first = talk.say(principal=alice, patient_id=clinic["alice"], text="hello", now=NOW)
    assert "not a human" in first.messages[1].text  # the disclosure opens the conversation
    reply = talk.say(
        principal=alice, patient_id=clinic["alice"], text="I’m going to end my life tonight", now=NOW
    )
    assert reply.risk == "high" and reply.alert is not None
    assert any(m.safety and "911" in m.text and "988" in m.text for m in reply.messages)

    flag = records.read(principal=OPERATOR, res_type="Flag", res_id=reply.alert.flag_id).body or {}
    task = records.read(principal=OPERATOR, res_type="Task", res_id=reply.alert.task_id).body or {}
    assert flag["status"] == "active" and flag["subject"] == {"reference": f"Patient/{clinic['alice']}"}
    assert task["priority"] == "stat" and task["focus"] == {"reference": f"Flag/{reply.alert.flag_id}"}

    # Said again: the open alert covers it, nothing new is raised or sent.
    again = talk.say(principal=alice, patient_id=clinic["alice"], text="I want to die", now=NOW)
    assert again.alert is not None and again.alert.id == reply.alert.id
    with records.engine.connect() as conn:
        assert len(conn.execute(select(therapy_alerts)).all()) == 1

    assert len(inbox.messages) == 1 and len(hooks) == 1
    mail = inbox.messages[0].get_payload()
    assert (
        "high" in inbox.messages[0]["Subject"]
        and "Liddell" not in str(mail)
        and "end my life" not in str(mail)
    )
    assert (
        hooks[0]["level"] == "high"
        and "patient" not in hooks[0]
        and "end my life" not in json.dumps(hooks[0])
    )


def test_an_unacknowledged_high_alert_is_notified_again_until_acknowledged(
    records: RecordService,
    clinic: dict[str, str],
    notices: tuple[alerts.Notifier, Inbox, list[dict[str, Any]]],
) -> None:
    notifier, inbox, hooks = notices
    alert, created = alerts.raise_alert(
        records, patient_id=clinic["alice"], level="high", source="chat", now=NOW
    )
    assert created
    every = timedelta(minutes=15)
    assert alerts.renotify(records, notifier, now=NOW, after=every) == 1  # never notified yet
    assert alerts.renotify(records, notifier, now=NOW + timedelta(minutes=5), after=every) == 0
    assert alerts.renotify(records, notifier, now=NOW + timedelta(minutes=16), after=every) == 1
    assert "not yet acknowledged" in inbox.messages[-1]["Subject"] and hooks[-1]["repeat"] == 1

    with pytest.raises(NotFound):  # Yang does not look after Alice
        alerts.acknowledge(
            records,
            principal=clinician_principal(clinic["yang"]),
            alert_id=alert.id,
            now=NOW + timedelta(minutes=20),
        )
    done = alerts.acknowledge(
        records,
        principal=clinician_principal(clinic["grey"]),
        alert_id=alert.id,
        now=NOW + timedelta(minutes=20),
    )
    assert done.acknowledged_by == f"Practitioner/{clinic['grey']}"
    task = records.read(principal=OPERATOR, res_type="Task", res_id=alert.task_id).body or {}
    assert task["status"] == "in-progress" and task["owner"] == {
        "reference": f"Practitioner/{clinic['grey']}"
    }
    assert alerts.renotify(records, notifier, now=NOW + timedelta(hours=2), after=every) == 0


def test_a_questionnaire_in_chat_lands_on_the_record_and_item_9_alerts(
    records: RecordService, clinic: dict[str, str]
) -> None:
    talk = Conversations(records, RULES_ONLY)
    alice, pid = patient_principal(clinic["alice"]), clinic["alice"]
    for text in ["PHQ-9", "several days", "1", "2", "0", "0", "1", "1", "0", "several days"]:
        reply = talk.say(principal=alice, patient_id=pid, text=text, now=NOW)
    assert reply.alert is not None and reply.alert.source == "phq9-item9" and reply.alert.level == "ideation"
    bundle = records.search(
        principal=alice, res_type="Observation", params=[("code", "http://loinc.org|44261-6")]
    )
    assert [e["resource"]["valueInteger"] for e in bundle["entry"]] == [7]
    # The transcript is the patient's to read, and nobody else's outside their care.
    said, choices = talk.transcript(principal=alice, patient_id=pid)
    assert choices == ["Yes", "No"]  # the screener is offered: the page shows these as buttons
    assert said[0]["who"] == "patient" and said[0]["text"] == "PHQ-9"
    with pytest.raises(NotFound):
        talk.transcript(principal=clinician_principal(clinic["yang"]), patient_id=pid)
    assert talk.transcript(principal=clinician_principal(clinic["grey"]), patient_id=pid)[0] == said


def test_bad_messages_write_nothing(records: RecordService, clinic: dict[str, str]) -> None:
    talk = Conversations(records, RULES_ONLY)
    for text in ("", "   ", "x" * 20_001):
        with pytest.raises(InvalidInput):
            talk.say(
                principal=patient_principal(clinic["alice"]), patient_id=clinic["alice"], text=text, now=NOW
            )
    assert talk.transcript(principal=OPERATOR, patient_id=clinic["alice"]) == ([], [])


def test_a_long_message_is_assessed_whole_and_kept_cut(
    records: RecordService, clinic: dict[str, str]
) -> None:
    talk = Conversations(records, RULES_ONLY)
    text = "work has been busy. " * 110 + "I want to kill myself"  # the risk is past 2,000 characters
    reply = talk.say(
        principal=patient_principal(clinic["alice"]), patient_id=clinic["alice"], text=text, now=NOW
    )
    assert reply.risk == "ideation" and reply.alert is not None
    kept = talk.transcript(principal=OPERATOR, patient_id=clinic["alice"])[0][0]["text"]
    assert len(kept) == 2000 + len(" [...]") and kept.endswith("[...]")


def test_a_failing_alert_still_gives_the_safety_message(
    records: RecordService, clinic: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: object, **kwargs: object) -> None:
        raise OSError("database unreachable")

    monkeypatch.setattr(alerts, "raise_alert", down)  # the database, not our code, fails here
    talk = Conversations(records, RULES_ONLY)
    reply = talk.say(
        principal=patient_principal(clinic["alice"]),
        patient_id=clinic["alice"],
        text="I want to die",
        now=NOW,
    )
    texts = [m.text for m in reply.messages]
    assert any("call 911 now" in t for t in texts)
    assert any("could not reach your care team" in t for t in texts)


def test_two_tabs_at_once_lose_no_message(records: RecordService, clinic: dict[str, str]) -> None:
    import threading

    talk = Conversations(records, RULES_ONLY)
    alice, pid = patient_principal(clinic["alice"]), clinic["alice"]
    talk.say(principal=alice, patient_id=pid, text="hello", now=NOW)
    said = ["first tab", "second tab", "third tab", "fourth tab"]
    threads = [
        threading.Thread(
            target=talk.say, kwargs={"principal": alice, "patient_id": pid, "text": t, "now": NOW}
        )
        for t in said
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept = {m["text"] for m in talk.transcript(principal=alice, patient_id=pid)[0] if m["who"] == "patient"}
    assert kept == {"hello", *said}


def test_an_alert_covers_repeats_for_a_day_and_a_request_for_a_person_is_its_own(
    records: RecordService,
    clinic: dict[str, str],
    notices: tuple[alerts.Notifier, Inbox, list[dict[str, Any]]],
) -> None:
    notifier, inbox, _hooks = notices
    pid = clinic["alice"]
    first, created = alerts.raise_alert(records, patient_id=pid, level="ideation", source="chat", now=NOW)
    assert created
    same, created = alerts.raise_alert(
        records, patient_id=pid, level="ideation", source="chat", now=NOW + timedelta(hours=23)
    )
    assert not created and same.id == first.id
    later, created = alerts.raise_alert(
        records, patient_id=pid, level="ideation", source="chat", now=NOW + timedelta(hours=25)
    )
    assert created and later.id != first.id  # a day on, the same words raise a new alert
    human, created = alerts.raise_alert(
        records, patient_id=pid, level="concern", source=alerts.HUMAN, now=NOW
    )
    assert created and human.id not in (first.id, later.id)

    talk = Conversations(records, RULES_ONLY, notifier=notifier)
    talk.say(
        principal=patient_principal(clinic["alice"]),
        patient_id=pid,
        text="human",
        now=NOW + timedelta(days=2),
    )
    assert any("concern" in m["Subject"] for m in inbox.messages)  # the person asked for is told


def test_a_notice_that_fails_is_tried_again_at_the_next_sweep(
    records: RecordService, clinic: dict[str, str]
) -> None:
    from mail_support import free_port

    alert, _ = alerts.raise_alert(records, patient_id=clinic["alice"], level="high", source="chat", now=NOW)
    down = alerts.Notifier(webhook=f"http://127.0.0.1:{free_port()}/nobody-listens")
    every = timedelta(minutes=15)
    assert alerts.renotify(records, down, now=NOW, after=every) == 0
    hooks: list[dict[str, Any]] = []
    up = alerts.Notifier(webhook="http://unused", post=lambda url, payload: hooks.append(payload))
    assert (
        alerts.renotify(records, up, now=NOW + timedelta(minutes=1), after=every) == 1
    )  # not a full interval
    assert hooks[0]["id"] == alert.id and hooks[0]["repeat"] == 0


def test_a_failing_risk_check_still_gives_the_crisis_lines(
    records: RecordService, clinic: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = Detector(model=False)

    def fails(text: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(broken, "assess", fails)
    talk = Conversations(records, broken)
    reply = talk.say(
        principal=patient_principal(clinic["alice"]), patient_id=clinic["alice"], text="hi", now=NOW
    )
    assert any("could not check that message" in m.text and "911" in m.text for m in reply.messages)
