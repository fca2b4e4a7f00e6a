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
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from medweave.db import write_tx
from medweave.errors import Conflict, Gone, InvalidInput, NotFound
from medweave.records.service import RecordService
from medweave.records.store import instant
from medweave.security.principal import Principal
from medweave.therapy import alerts, assessments, risk, safety
from medweave.therapy.assistant import Assistant, Context, State, Turn
from medweave.therapy.instruments import INSTRUMENTS
from medweave.therapy.risk import Detector, Result
from medweave.therapy.tables import therapy_conversations

log = logging.getLogger("medweave.therapy.conversations")
ASSISTANT = Principal.internal("therapy-assistant")
DOC_SYSTEM = "urn:medweave:document-type"
DOC_CODE = "assistant-conversation"
OBS_SYSTEM = "urn:medweave:therapy"
MAX_MESSAGE = 2000  # kept on the record; a longer message is assessed whole, then cut
MAX_INPUT = 20_000  # refused beyond this
_LOCKS = tuple(threading.Lock() for _ in range(64))


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
    version: int | None = None  # of the document, for the version check on save


def _document(
    patient_id: str,
    day: str,
    state: State,
    messages: list[dict[str, Any]],
    now: datetime,
    choices: tuple[str, ...] = (),
) -> dict[str, Any]:
    body = {"state": state.as_json(), "messages": messages, "choices": list(choices)}
    payload = json.dumps(body, separators=(",", ":"))
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

    def transcript(self, *, principal: Principal, patient_id: str) -> tuple[list[dict[str, Any]], list[str]]:
        """Today's (or the latest day's) messages and the quick replies on offer, read as
        ``principal`` (access-checked)."""
        doc_id = self._pointer(patient_id)
        if doc_id is None:
            return [], []
        body = self.records.read(principal=principal, res_type="DocumentReference", res_id=doc_id).body or {}
        payload = _payload(body)
        return list(payload.get("messages", [])), [str(c) for c in payload.get("choices", [])]

    def _load(self, patient_id: str, now: datetime) -> Transcript:
        day = now.date().isoformat()
        doc_id = self._pointer(patient_id)
        if doc_id is None:
            return Transcript(None, day, State())
        try:
            stored = self.records.read(principal=ASSISTANT, res_type="DocumentReference", res_id=doc_id)
        except (NotFound, Gone):  # erased or deleted: start again
            return Transcript(None, day, State())
        body = stored.body or {}
        payload = _payload(body)
        state = State.from_json(payload.get("state", {}))
        if body.get("description", "").endswith(day):
            return Transcript(doc_id, day, state, list(payload.get("messages", [])), stored.version_id)
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
        """One turn. The risk is assessed on the whole message first; whatever fails after that,
        a message that escalates still gets the safety message back."""
        text = text.replace("\r\n", "\n").strip()
        if not text:
            raise InvalidInput("say something first")
        if len(text) > MAX_INPUT:
            raise InvalidInput(f"a message is at most {MAX_MESSAGE} characters")
        try:
            risk = self.detector.assess(text)
            unassessed = False
        except Exception as exc:  # a bug in the detector must not leave a patient without the lines
            log.error("therapy turn: the risk assessment failed (%s)", type(exc).__name__)
            risk, unassessed = Result("none", model_error="the risk assessment failed"), True
        kept = text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " [...]"
        with _LOCKS[hash(patient_id) % len(_LOCKS)]:  # one turn at a time per patient in this process
            return self._turn(principal, patient_id, kept, risk, now, unassessed=unassessed)

    def _turn(
        self,
        principal: Principal,
        patient_id: str,
        text: str,
        risk: Result,
        now: datetime,
        *,
        unassessed: bool,
    ) -> Reply:
        try:
            transcript = self._load(patient_id, now)
            context = Context(
                self.place,
                phq9=self._latest_total(patient_id, "phq9"),
                gad7=self._latest_total(patient_id, "gad7"),
            )
        except Exception as exc:  # an unreadable transcript must not silence the safety layer
            log.error("therapy turn: the conversation could not be read (%s)", type(exc).__name__)
            transcript, context = Transcript(None, now.date().isoformat(), State()), Context(self.place)
        turn = self.assistant.turn(transcript.state, text, risk=risk, context=context, now=now)
        alert, problems = self._carry_out(turn, principal=principal, patient_id=patient_id, now=now)
        at = instant(now)
        replies = list(turn.replies)
        if problems and turn.safety:
            replies.append(
                "I could not reach your care team just now. Please use the numbers above: "
                + safety.reach_now(self.place)
            )
        elif problems:
            replies.append("Sorry, I could not save that just now. Please try again in a moment.")
        if unassessed:
            replies.append(
                "I could not check that message properly just now. " + safety.reach_now(self.place)
            )
        said = [Message("patient", text, at, risk=risk.level)]
        said += [Message("assistant", r, at, safety=turn.safety) for r in replies]
        try:
            self._save(patient_id, transcript, turn.state, [m.as_json() for m in said], turn.choices, now)
        except Exception as exc:
            log.error("therapy turn: the transcript could not be saved (%s)", type(exc).__name__)
        return Reply(tuple(said), turn.choices, risk.level, alert, risk.model_error)

    def _carry_out(
        self, turn: Turn, *, principal: Principal, patient_id: str, now: datetime
    ) -> tuple[alerts.Alert | None, list[str]]:
        """Each action on its own, the alert first; the kinds of action that failed are returned."""
        raised: alerts.Alert | None = None
        problems: list[str] = []
        for action in sorted(turn.actions, key=lambda a: a.kind not in ("alert", "human")):
            try:
                found = self._action(
                    action.kind, action.data, principal=principal, patient_id=patient_id, now=now
                )
            except Exception as exc:  # logged without PHI; the patient is told
                log.error("therapy turn: %s failed (%s)", action.kind, type(exc).__name__)
                problems.append(action.kind)
                continue
            raised = raised or found
        return raised, problems

    def _action(
        self, kind: str, data: Mapping[str, Any], *, principal: Principal, patient_id: str, now: datetime
    ) -> alerts.Alert | None:
        if kind in ("alert", "human"):
            level = str(data.get("level", "concern"))
            source = str(data.get("source", alerts.HUMAN))
            alert, created = alerts.raise_alert(
                self.records, patient_id=patient_id, level=level, source=source, now=now
            )
            if created and self.notifier is not None and (level != "concern" or source == alerts.HUMAN):
                alerts.notify_once(self.records, self.notifier, alert, now=now)
            return alert
        if kind == "questionnaire":
            assessments.record(
                self.records,
                principal=principal,
                patient_id=patient_id,
                instrument=INSTRUMENTS[str(data["instrument"])],
                answers=list(data["answers"]),
                now=now,
            )
        elif kind == "mood":
            body = observation(patient_id, "mood", "Mood rating, 0 (very low) to 10 (very good)", now,
                               valueInteger=int(data["value"]))  # fmt: skip
            self.records.create(principal=ASSISTANT, res_type="Observation", data=body)
        elif kind == "cssrs":
            answers = {k: bool(v) for k, v in dict(data["answers"]).items()}
            body = observation(
                patient_id, "cssrs-screen", "C-SSRS screener (recent), triage level", now,
                valueString=str(data["level"]),
                component=[_component(f"cssrs-{key}", yes) for key, yes in answers.items()],
            )  # fmt: skip
            self.records.create(principal=ASSISTANT, res_type="Observation", data=body)
        return None

    def _save(
        self,
        patient_id: str,
        transcript: Transcript,
        state: State,
        said: list[dict[str, Any]],
        choices: tuple[str, ...],
        now: datetime,
    ) -> None:
        """Append the turn to the day's document. Another process may have written it since it
        was read: the version check notices, and the turn is appended to what is there now."""
        for _ in range(3):
            doc_id = transcript.doc_id or str(uuid.uuid4())  # a new day starts a new document
            messages = transcript.messages + said
            body = {**_document(patient_id, transcript.day, state, messages, now, choices), "id": doc_id}
            try:
                self.records.update(
                    principal=ASSISTANT,
                    res_type="DocumentReference",
                    res_id=doc_id,
                    data=body,
                    if_match=transcript.version,
                )
                break
            except Conflict:
                transcript = self._load(patient_id, now)
        else:
            raise Conflict("the conversation kept changing while this turn was saved")
        self._point(patient_id, doc_id, now)

    def _point(self, patient_id: str, doc_id: str, now: datetime) -> None:
        values = {"state_id": doc_id, "updated_at": now}
        with write_tx(self.records.engine) as conn:
            done = conn.execute(
                therapy_conversations.update()
                .where(therapy_conversations.c.patient_id == patient_id)
                .values(values)
            ).rowcount
        if done:
            return
        try:
            with write_tx(self.records.engine) as conn:
                conn.execute(therapy_conversations.insert().values(patient_id=patient_id, **values))
        except IntegrityError:  # another process pointed first: point at this turn's document
            with write_tx(self.records.engine) as conn:
                conn.execute(
                    therapy_conversations.update()
                    .where(therapy_conversations.c.patient_id == patient_id)
                    .values(values)
                )
