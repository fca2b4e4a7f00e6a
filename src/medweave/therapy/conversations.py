"""A patient's conversations with the assistant, on their record, and each turn carried out.

The transcript and the dialog state of each day are one ``DocumentReference`` on the patient's
record (type ``assistant-conversation``, a JSON attachment), written by the assistant
(``ASSISTANT``) as a new version every turn: encrypted under the patient's key, audited and
committed to the ledger like any record. ``therapy_conversations`` points at the latest one.

A turn (``Conversations.say``), in this order:

1. the message is assessed for risk (``risk.Detector``), before anything else;
2. the dialog engine (``assistant``) answers with replies, a new state and actions;
3. the actions are carried out, the alert first: a Flag and a Task (``alerts``), notified by
   e-mail or webhook when configured; a completed questionnaire as a QuestionnaireResponse (as
   the patient) with its score Observation; a mood rating or a C-SSRS screen as an Observation;
4. the turn is appended to the day's transcript.

The patient reads their own transcript as themselves, through the record store's access rules.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from medweave.db import write_tx
from medweave.errors import InvalidInput, NotFound
from medweave.records.service import RecordService
from medweave.records.store import instant
from medweave.security.principal import Principal
from medweave.therapy import alerts, assessments, risk, safety
from medweave.therapy.assistant import Assistant, Context, State, Turn
from medweave.therapy.instruments import INSTRUMENTS
from medweave.therapy.risk import Detector
from medweave.therapy.tables import therapy_conversations

log = logging.getLogger("medweave.therapy.conversations")
ASSISTANT = Principal.internal("therapy-assistant")
DOC_SYSTEM = "urn:medweave:document-type"
DOC_CODE = "assistant-conversation"
OBS_SYSTEM = "urn:medweave:therapy"
MAX_MESSAGE = 2000


@dataclass(frozen=True)
class Message:
    who: str  # "patient" or "assistant"
    text: str
    at: str
    risk: str | None = None
    safety: bool = False

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"who": self.who, "text": self.text, "at": self.at}
        if self.risk:
            out["risk"] = self.risk
        if self.safety:
            out["safety"] = True
        return out


@dataclass(frozen=True)
class Reply:
    messages: tuple[Message, ...]
    choices: tuple[str, ...]
    risk: str
    alert: alerts.Alert | None = None
    model_error: str | None = None


@dataclass
class Transcript:
    doc_id: str | None
    day: str
    state: State
    messages: list[dict[str, Any]] = field(default_factory=list)


def _document(
    patient_id: str, day: str, state: State, messages: list[dict[str, Any]], now: datetime
) -> dict[str, Any]:
    payload = json.dumps({"state": state.as_json(), "messages": messages}, separators=(",", ":"))
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {
            "coding": [{"system": DOC_SYSTEM, "code": DOC_CODE}],
            "text": "Conversation with the therapy assistant",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "date": instant(now),
        "description": f"Therapy assistant conversation, {day}",
        "content": [
            {
                "attachment": {
                    "contentType": "application/json",
                    "data": base64.b64encode(payload.encode()).decode(),
                    "title": f"assistant-{day}.json",
                }
            }
        ],
    }


def _payload(body: Mapping[str, Any]) -> dict[str, Any]:
    data = body["content"][0]["attachment"]["data"]
    out: dict[str, Any] = json.loads(base64.b64decode(data))
    return out


def observation(patient_id: str, code: str, text: str, now: datetime, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [assessments.SURVEY]}],
        "code": {"coding": [{"system": OBS_SYSTEM, "code": code}], "text": text},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": instant(now),
        **value,
    }


def _component(code: str, yes: bool) -> dict[str, Any]:
    return {"code": {"coding": [{"system": OBS_SYSTEM, "code": code}]}, "valueBoolean": yes}


class Conversations:
    def __init__(
        self,
        records: RecordService,
        detector: Detector | None = None,
        *,
        model: bool = True,
        lines: Mapping[str, safety.Locale] | None = None,
        locale: str = safety.DEFAULT_LOCALE,
        notifier: alerts.Notifier | None = None,
        assistant: Assistant | None = None,
    ) -> None:
        self.records = records
        self._detector = detector
        self._model = model
        self.place = safety.locale_for(lines or safety.DEFAULT_LINES, locale)
        self.notifier = notifier
        self.assistant = assistant or Assistant()

    @property
    def detector(self) -> Detector:
        """The given detector, else the process's shared one, loaded on first use."""
        if self._detector is None:
            self._detector = risk.shared(model=self._model)
        return self._detector

    # -- reading -------------------------------------------------------------------------------

    def _pointer(self, patient_id: str) -> str | None:
        with self.records.engine.connect() as conn:
            row = conn.execute(
                select(therapy_conversations.c.state_id).where(
                    therapy_conversations.c.patient_id == patient_id
                )
            ).first()
        return row[0] if row else None

    def transcript(self, *, principal: Principal, patient_id: str) -> list[dict[str, Any]]:
        """Today's (or the latest day's) messages, read as ``principal`` (access-checked)."""
        doc_id = self._pointer(patient_id)
        if doc_id is None:
            return []
        body = self.records.read(principal=principal, res_type="DocumentReference", res_id=doc_id).body or {}
        messages: list[dict[str, Any]] = _payload(body)["messages"]
        return messages

    def _load(self, patient_id: str, now: datetime) -> Transcript:
        day = now.date().isoformat()
        doc_id = self._pointer(patient_id)
        if doc_id is None:
            return Transcript(None, day, State())
        try:
            body = (
                self.records.read(principal=ASSISTANT, res_type="DocumentReference", res_id=doc_id).body or {}
            )
        except NotFound:  # erased or deleted: start again
            return Transcript(None, day, State())
        payload = _payload(body)
        state = State.from_json(payload.get("state", {}))
        if body.get("description", "").endswith(day):
            return Transcript(doc_id, day, state, list(payload.get("messages", [])))
        return Transcript(None, day, state)  # a new day: a new document, the same state

    def _latest_total(self, patient_id: str, code: str) -> int | None:
        loinc = INSTRUMENTS[code].total_loinc
        bundle = self.records.search(
            principal=ASSISTANT,
            res_type="Observation",
            params=[
                ("subject", f"Patient/{patient_id}"),
                ("code", f"http://loinc.org|{loinc}"),
                ("_sort", "-date"),
                ("_count", "1"),
            ],
        )
        for entry in bundle.get("entry", []):
            value = entry.get("resource", {}).get("valueInteger")
            if isinstance(value, int):
                return value
        return None

    # -- a turn --------------------------------------------------------------------------------

    def say(self, *, principal: Principal, patient_id: str, text: str, now: datetime) -> Reply:
        text = text.strip()
        if not text:
            raise InvalidInput("say something first")
        if len(text) > MAX_MESSAGE:
            raise InvalidInput(f"a message is at most {MAX_MESSAGE} characters")
        risk = self.detector.assess(text)
        transcript = self._load(patient_id, now)
        context = Context(
            self.place,
            phq9=self._latest_total(patient_id, "phq9"),
            gad7=self._latest_total(patient_id, "gad7"),
        )
        turn = self.assistant.turn(transcript.state, text, risk=risk, context=context, now=now)
        alert = self._carry_out(turn, principal=principal, patient_id=patient_id, now=now)
        at = instant(now)
        said = [Message("patient", text, at, risk=risk.level)]
        said += [Message("assistant", r, at, safety=turn.safety) for r in turn.replies]
        messages = transcript.messages + [m.as_json() for m in said]
        self._save(patient_id, transcript, turn.state, messages, now)
        return Reply(tuple(said), turn.choices, risk.level, alert, risk.model_error)

    def _carry_out(
        self, turn: Turn, *, principal: Principal, patient_id: str, now: datetime
    ) -> alerts.Alert | None:
        raised: alerts.Alert | None = None
        for action in sorted(turn.actions, key=lambda a: a.kind != "alert"):  # the alert first
            data = action.data
            if action.kind in ("alert", "human"):
                level = str(data.get("level", "concern"))
                source = str(data.get("source", "human-request"))
                alert, created = alerts.raise_alert(
                    self.records, patient_id=patient_id, level=level, source=source, now=now
                )
                raised = alert
                notify = created and self.notifier is not None and level != "concern"
                if notify and self.notifier is not None and self.notifier.notify(alert):
                    alerts.mark_notified(self.records, alert.id, now=now)
            elif action.kind == "questionnaire":
                assessments.record(
                    self.records,
                    principal=principal,
                    patient_id=patient_id,
                    instrument=INSTRUMENTS[str(data["instrument"])],
                    answers=list(data["answers"]),
                    now=now,
                )
            elif action.kind == "mood":
                body = observation(patient_id, "mood", "Mood rating, 0 (very low) to 10 (very good)", now,
                                   valueInteger=int(data["value"]))  # fmt: skip
                self.records.create(principal=ASSISTANT, res_type="Observation", data=body)
            elif action.kind == "cssrs":
                answers = {k: bool(v) for k, v in dict(data["answers"]).items()}
                body = observation(
                    patient_id, "cssrs-screen", "C-SSRS screener (recent), triage level", now,
                    valueString=str(data["level"]),
                    component=[_component(f"cssrs-{key}", yes) for key, yes in answers.items()],
                )  # fmt: skip
                self.records.create(principal=ASSISTANT, res_type="Observation", data=body)
        return raised

    def _save(
        self,
        patient_id: str,
        transcript: Transcript,
        state: State,
        messages: list[dict[str, Any]],
        now: datetime,
    ) -> None:
        doc_id = transcript.doc_id or str(uuid.uuid4())  # a new day starts a new document
        body = {**_document(patient_id, transcript.day, state, messages, now), "id": doc_id}
        self.records.update(principal=ASSISTANT, res_type="DocumentReference", res_id=doc_id, data=body)
        with write_tx(self.records.engine) as conn:
            updated = conn.execute(
                therapy_conversations.update()
                .where(therapy_conversations.c.patient_id == patient_id)
                .values(state_id=doc_id, updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(
                    therapy_conversations.insert().values(
                        patient_id=patient_id, state_id=doc_id, updated_at=now
                    )
                )
