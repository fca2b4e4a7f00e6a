"""FHIR R4 AuditEvents in the IHE Basic Audit Log Patterns, and the row and ledger leaf they become.

Pure: no I/O. Builders return AuditEvent JSON dicts shaped as IHE BALP
(https://profiles.ihe.net/ITI/BALP/) describes: agents ``client`` (DICOM 110153 Source Role ID),
``server`` (110152 Destination Role ID) and the ``user`` (v3-ParticipationType IRCP, requestor),
a ``source`` observer (security-source-type 4, Application Server) and entities ``patient``
(object-role 1), ``data`` (object-role 4, Domain Resource), ``query`` (object-role 24, base64 query)
and ``transaction`` (BALP XrequestId). ``AuditRecord`` is one stored row; ``leaf_bytes`` is the
PHI-free commitment the ledger hashes.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
BALP_ENTITY = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
OPERATION_SYSTEM = "urn:medweave:operation"  # local: names the FHIR operation ($export, $everything)
USER_SYSTEM = "urn:medweave:user"  # local: a user without a FHIR resource (admin, client, unknown login)
DEFAULT_OBSERVER = "medweave"


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    return {"system": system, "code": code} | ({"display": display} if display else {})


# AuditEvent.action per interaction (BALP: a query is E); the subtype is the interaction's own
# restful-interaction code, except that export is the "operation" $export.
_ACTIONS = {"C": "create", "R": "read vread history", "U": "update patch", "D": "delete"}
_ACTIONS["E"] = "search operation transaction batch export"
REST_ACTIONS = {name: action for action, names in _ACTIONS.items() for name in names.split()}
_REST = _coding(EVENT_TYPE, "rest", "Restful Operation")
_USER_AUTHENTICATION = _coding(DCM, "110114", "User Authentication")
_LOGIN, _LOGOUT = _coding(DCM, "110122", "Login"), _coding(DCM, "110123", "Logout")
_SECURITY_ALERT = _coding(DCM, "110113", "Security Alert")
_OVERRIDE_STARTED = _coding(DCM, "110127", "Emergency Override Started")
_OVERRIDE_STOPPED = _coding(DCM, "110138", "Emergency Override Stopped")
_ROLES_CHANGED = _coding(DCM, "110136", "Security Roles Changed")
_OBJECT_SECURITY_CHANGED = _coding(DCM, "110135", "Object Security Attributes Changed")
_SECURITY_SUBTYPES = {
    "110122": "login",
    "110123": "logout",
    "110127": "break-glass",
    "110138": "break-glass-end",
    "110136": "roles-changed",
    "110135": "security-changed",
}
_BTG = _coding(ACT_REASON, "BTG", "break the glass")
_APPLICATION_SERVER = _coding(SOURCE_TYPE, "4", "Application Server")
_USER = _coding(PARTICIPATION, "IRCP", "information recipient")
_CLIENT, _SERVER = _coding(DCM, "110153", "Source Role ID"), _coding(DCM, "110152", "Destination Role ID")
_PERSON, _OBJECT = _coding(ENTITY_TYPE, "1", "Person"), _coding(ENTITY_TYPE, "2", "System Object")
_PATIENT, _DOMAIN_RESOURCE = (
    _coding(OBJECT_ROLE, "1", "Patient"),
    _coding(OBJECT_ROLE, "4", "Domain Resource"),
)
_SECURITY_RESOURCE = _coding(OBJECT_ROLE, "13", "Security Resource")
_QUERY, _XREQUEST_ID = _coding(OBJECT_ROLE, "24", "Query"), _coding(BALP_ENTITY, "XrequestId")
_REFERENCE = re.compile(
    r"^(Practitioner|PractitionerRole|Patient|RelatedPerson|Device|Organization)/[A-Za-z0-9\-.]{1,64}$"
)


@dataclass(frozen=True)
class Actor:
    """Who acted: ``who`` is ``Practitioner/x``, ``Patient/x``, ``Device/x``... or a plain user identifier
    (a login name, an OAuth client); ``address`` is the client's network address."""

    who: str
    address: str | None = None
    client_id: str | None = None


def outcome_for_status(status: int) -> int:
    """AuditEvent.outcome from an HTTP status: 0 success (1xx-3xx), 4 minor failure (4xx, the client's
    fault, e.g. denied), 8 serious failure (5xx), 12 major failure (no valid response was produced)."""
    if 100 <= status < 400:
        return 0
    if 400 <= status < 500:
        return 4
    return 8 if 500 <= status < 600 else 12


def instant(dt: datetime) -> str:
    """A FHIR instant in UTC with microseconds: the one spelling used in bodies and leaves."""
    if dt.tzinfo is None:
        raise ValueError("recorded must be timezone-aware")
    # isoformat, not strftime: this runs for every audited request, and strftime costs ten times more.
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def canonical_json(event: Mapping[str, Any]) -> str:
    """Sorted keys, no whitespace, UTF-8 as is: one text per event, stored and hashed as is.

    The same text as ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
    (a hypothesis test holds them equal), from orjson, which takes a fifth of the time on the
    audited request path. Events carry no floats, so orjson's float spelling never comes up.
    """
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS).decode()


def _who(who: str) -> dict[str, Any]:
    if _REFERENCE.match(who):
        return {"reference": who}
    return {"identifier": {"system": USER_SYSTEM, "value": who}}


@functools.lru_cache(maxsize=1024)
def _address_type(address: str) -> str:
    """AuditEvent network type: "2" for an IP address, "1" for a machine name (cached: per request)."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "1"
    return "2"


def _agent(type_: dict[str, str], who: dict[str, Any], requestor: bool, **extra: Any) -> dict[str, Any]:
    return {"type": {"coding": [type_]}, "who": who, "requestor": requestor, **extra}


def _agents(actor: Actor, observer: str, reason: str | None) -> list[dict[str, Any]]:
    """BALP's user (the requestor), client (with its network address) and server agents."""
    purpose = {"purposeOfUse": [{"coding": [_BTG], "text": reason}]} if reason is not None else {}
    client: dict[str, Any] = {}
    if actor.address:
        client["network"] = {"address": actor.address, "type": _address_type(actor.address)}
    ident = {"identifier": {"system": USER_SYSTEM, "value": actor.client_id or actor.address or "unknown"}}
    return [
        _agent(_USER, _who(actor.who), True, **purpose),
        _agent(_CLIENT, ident, False, **client),
        _agent(_SERVER, {"display": observer}, False),
    ]


def _base(
    type_: dict[str, str], subtype: list[dict[str, str]], action: str, outcome: int, actor: Actor,
    observer: str, recorded: datetime | None, reason: str | None = None, outcome_desc: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": type_,
        "subtype": subtype,
        "action": action,
        "recorded": instant(recorded or datetime.now(UTC)),
        "outcome": str(outcome),
        "agent": _agents(actor, observer, reason),
        "source": {"observer": {"display": observer}, "type": [_APPLICATION_SERVER]},
        "entity": [],
    }
    if outcome_desc:
        event["outcomeDesc"] = outcome_desc
    if reason is not None:
        event["purposeOfEvent"] = [{"coding": [_BTG], "text": reason}]
    return event


def _entity(type_: dict[str, str], role: dict[str, str], **fields: Any) -> dict[str, Any]:
    return {"type": type_, "role": role, **fields}


def rest_event(
    interaction: str,
    *,
    status: int,
    actor: Actor,
    resource_type: str | None = None,
    resource_id: str | None = None,
    version_id: str | None = None,
    patient_id: str | None = None,
    query: str | None = None,
    operation: str | None = None,
    request_id: str | None = None,
    break_glass_reason: str | None = None,
    observer: str = DEFAULT_OBSERVER,
    recorded: datetime | None = None,
) -> dict[str, Any]:
    """A RESTful interaction in the BALP Create/Read/Update/Delete/Query patterns (Patient* when
    ``patient_id`` is known): type audit-event-type ``rest``, subtype restful-interaction.

    ``query`` (the search query string or the POSTed search body) is carried base64-encoded in the
    ``query`` entity as BALP's Query pattern says; it may contain PHI, so it lives in the database row
    only, never in a log line nor in ``leaf_bytes``. ``export`` is the ``operation`` subtype with
    ``$export``; ``operation`` names other operations. ``break_glass_reason`` sets purposeOfEvent BTG.
    """
    if interaction not in REST_ACTIONS:
        raise ValueError(f"unknown RESTful interaction {interaction!r}")
    code = "operation" if interaction == "export" else interaction
    subtype = [_coding(RESTFUL, code, code)]
    operation = "$export" if interaction == "export" and operation is None else operation
    if operation:
        subtype.append(_coding(OPERATION_SYSTEM, operation))
    outcome = outcome_for_status(status)
    desc = None if outcome == 0 else f"HTTP {status}"
    action, reason = REST_ACTIONS[interaction], break_glass_reason
    event = _base(_REST, subtype, action, outcome, actor, observer, recorded, reason, desc)
    entities = event["entity"]
    if patient_id:
        entities.append(_entity(_PERSON, _PATIENT, what={"reference": f"Patient/{patient_id}"}))
    if resource_type and resource_id:
        ref = f"{resource_type}/{resource_id}" + (f"/_history/{version_id}" if version_id else "")
        entities.append(_entity(_OBJECT, _DOMAIN_RESOURCE, what={"reference": ref}))
    if query is not None:
        what = {"what": {"type": resource_type}} if resource_type else {}
        entities.append(_entity(_OBJECT, _QUERY, query=base64.b64encode(query.encode()).decode(), **what))
    if request_id:
        entities.append({"type": _XREQUEST_ID, "what": {"identifier": {"value": request_id}}})
    return event


def login_event(
    *,
    actor: Actor,
    success: bool,
    failure: str | None = None,
    logout: bool = False,
    observer: str = DEFAULT_OBSERVER,
    recorded: datetime | None = None,
) -> dict[str, Any]:
    """A sign-in (or, with ``logout``, a sign-out): DICOM PS3.15 A.5.3 User Authentication, type
    ``DCM|110114``, subtype ``DCM|110122`` Login or ``DCM|110123`` Logout, action E; a failed sign-in
    has outcome 4 and ``failure`` (our fixed text, e.g. "bad credentials", "locked") as outcomeDesc."""
    desc = None if success else (failure or "authentication failed")
    subtype = [_LOGOUT if logout else _LOGIN]
    outcome = 0 if success else 4
    return _base(_USER_AUTHENTICATION, subtype, "E", outcome, actor, observer, recorded, None, desc)


def break_glass_event(
    *,
    actor: Actor,
    patient_id: str,
    reason: str,
    expires: datetime | None = None,
    end: bool = False,
    observer: str = DEFAULT_OBSERVER,
    recorded: datetime | None = None,
) -> dict[str, Any]:
    """Break-glass (emergency access) to a patient: DICOM ``DCM|110113`` Security Alert with subtype
    ``DCM|110127`` Emergency Override Started (``DCM|110138`` Emergency Override Stopped with ``end``),
    purposeOfEvent ``v3-ActReason|BTG`` whose text is the stated reason (PHI-prone: row only)."""
    subtype = [_OVERRIDE_STOPPED if end else _OVERRIDE_STARTED]
    event = _base(_SECURITY_ALERT, subtype, "E", 0, actor, observer, recorded, reason)
    if expires is not None:
        event["period"] = {"start": event["recorded"], "end": instant(expires)}
    event["entity"].append(_entity(_PERSON, _PATIENT, what={"reference": f"Patient/{patient_id}"}))
    return event


def security_change_event(
    *,
    actor: Actor,
    target: str,
    roles: bool,
    action: str = "U",
    patient_id: str | None = None,
    failure: str | None = None,
    observer: str = DEFAULT_OBSERVER,
    recorded: datetime | None = None,
) -> dict[str, Any]:
    """An administrator's change to who may do what: DICOM ``DCM|110113`` Security Alert with subtype
    ``DCM|110136`` Security Roles Changed (``roles``: an account created with its role) or
    ``DCM|110135`` Object Security Attributes Changed (a break-glass grant marked reviewed), both
    from DICOM PS3.16 CID 403 (Security Alert Type Codes). ``target`` names what changed
    (``user:<id>``, ``grant:<id>``) as a System Object in role Security Resource; ``patient_id``
    adds the patient a grant was for, so the review shows in their access history. A refused
    change has outcome 4 and ``failure`` (our fixed text) as outcomeDesc."""
    subtype = [_ROLES_CHANGED if roles else _OBJECT_SECURITY_CHANGED]
    outcome = 4 if failure else 0
    event = _base(_SECURITY_ALERT, subtype, action, outcome, actor, observer, recorded, None, failure)
    event["entity"].append(_entity(_OBJECT, _SECURITY_RESOURCE, what={"identifier": {"value": target}}))
    if patient_id:
        event["entity"].append(_entity(_PERSON, _PATIENT, what={"reference": f"Patient/{patient_id}"}))
    return event


def interaction_of(event: Mapping[str, Any]) -> str:
    """The short name stored in ``audit_log.interaction``: a REST interaction or a security event."""
    codes = {(c.get("system"), c.get("code")) for c in event.get("subtype", [])}
    if event["type"].get("code") == "rest":
        if (OPERATION_SYSTEM, "$export") in codes:
            return "export"
        return str(next(code for system, code in codes if system == RESTFUL))
    found = (_SECURITY_SUBTYPES[c] for s, c in codes if s == DCM and c in _SECURITY_SUBTYPES)
    return next(found, str(event["type"].get("code")))


@dataclass(frozen=True)
class AuditRecord:
    """One ``audit_log`` row: the indexable fields plus ``body``, the AuditEvent as canonical JSON.

    ``seq`` is None until the audit service has committed the row."""

    recorded: datetime
    interaction: str
    action: str
    outcome: int
    user_ref: str | None
    patient_id: str | None
    entity_type: str | None
    entity_id: str | None
    body: str
    seq: int | None = None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> AuditRecord:
        user = next((a for a in event.get("agent", []) if a.get("requestor")), None)
        who = (user or {}).get("who", {})
        user_ref = who.get("reference") or who.get("identifier", {}).get("value")
        patient_id = entity_type = entity_id = None
        for ent in event.get("entity", []):
            role, what = ent.get("role", {}).get("code"), ent.get("what") or {}
            ref = str(what.get("reference", ""))
            if role == "1" and ref.startswith("Patient/"):
                patient_id = ref.split("/")[1]
            elif role == "4" and "/" in ref:
                entity_type, entity_id = ref.split("/")[:2]
            elif role == "24" and entity_type is None:
                entity_type = what.get("type")
        return cls(
            recorded=datetime.fromisoformat(event["recorded"]),
            interaction=interaction_of(event),
            action=str(event.get("action", "E")),
            outcome=int(event.get("outcome", "0")),
            user_ref=user_ref,
            patient_id=patient_id,
            entity_type=entity_type,
            entity_id=entity_id,
            body=canonical_json(event),
        )

    def drifted(self) -> list[str]:
        """The indexed fields that no longer say what ``body`` says ([] for a whole row).

        They are copies made by ``from_event``, and what "who looked at my record" shows, so a
        row edited behind its own AuditEvent shows here. ValueError if the body is unreadable."""
        try:
            rebuilt = AuditRecord.from_event(json.loads(self.body))
        except (KeyError, TypeError, AttributeError, StopIteration):
            raise ValueError("the AuditEvent body is unreadable") from None
        names = [f.name for f in dataclasses.fields(self) if f.name not in ("seq", "body")]
        return [name for name in names if getattr(rebuilt, name) != getattr(self, name)]

    def event(self) -> dict[str, Any]:
        """The AuditEvent resource, with ``id`` set to the sequence number once there is one."""
        out: dict[str, Any] = json.loads(self.body)
        return out if self.seq is None else {**out, "id": str(self.seq)}


def leaf_bytes(record: AuditRecord, *, salt: bytes | None = None) -> bytes:
    """The canonical, PHI-free commitment the ledger hashes into a leaf (RFC 9162 adds the 0x00).

    Lines: a version tag, seq, recorded (UTC, microseconds), interaction, outcome, and a digest of
    the canonical body: SHA-256, or HMAC-SHA-256 keyed with ``salt`` (e.g. a per-patient salt kept
    with the encrypted record, so the leaf cannot be linked to the person once it is shredded).
    Names, the query, user and patient ids are never in it; every field comes from the row.
    """
    if record.seq is None:
        raise ValueError("a record has a leaf only once it has a sequence number")
    body = record.body.encode()
    if salt is None:
        tag, digest = "sha256", hashlib.sha256(body).hexdigest()
    else:
        tag, digest = "hmac-sha256", hmac.new(salt, body, hashlib.sha256).hexdigest()
    if not re.fullmatch(r"[a-z$-]{1,32}", record.interaction):
        raise ValueError("interaction must be a short code")
    lines = [
        "medweave-audit/v1",
        str(record.seq),
        instant(record.recorded),
        record.interaction,
        str(record.outcome),
    ]
    return "".join(f"{line}\n" for line in [*lines, f"{tag}:{digest}"]).encode("ascii")
