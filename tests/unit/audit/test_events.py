"""AuditEvent builders (IHE BALP shapes, valid R4) and the PHI-free ledger leaf."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from medweave.audit.events import (
    REST_ACTIONS,
    Actor,
    AuditRecord,
    break_glass_event,
    canonical_json,
    leaf_bytes,
    login_event,
    outcome_for_status,
    rest_event,
    security_change_event,
)

NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
DOC = Actor("Practitioner/doc-1", address="10.0.0.7", client_id="medweave-web")
ACTIONS = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "search": "E",
    "history": "R",
    "operation": "E",
    "transaction": "E",
    "batch": "E",
    "export": "E",
}


def codes(event: dict, key: str) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in event[key]}


def role(event: dict, code: str) -> dict:
    (entity,) = [e for e in event["entity"] if e.get("role", {}).get("code") == code]
    return entity


@pytest.mark.parametrize("interaction", sorted(REST_ACTIONS))
def test_every_rest_interaction_is_a_valid_balp_event(interaction: str) -> None:
    event = rest_event(
        interaction,
        status=200,
        actor=DOC,
        resource_type="Observation",
        resource_id="o1",
        patient_id="p1",
        query="code=1234-5" if interaction == "search" else None,
        request_id="req-1",
        recorded=NOW,
    )
    AuditEvent.model_validate(event)
    assert event["type"] == {
        "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
        "code": "rest",
        "display": "Restful Operation",
    }
    expected = "operation" if interaction == "export" else interaction
    assert ("http://hl7.org/fhir/restful-interaction", expected) in codes(event, "subtype")
    assert event["action"] == ACTIONS[interaction]
    assert event["outcome"] == "0" and "outcomeDesc" not in event
    assert role(event, "1")["what"] == {"reference": "Patient/p1"}
    assert role(event, "4")["what"] == {"reference": "Observation/o1"}
    user, client, server = event["agent"]
    assert user["who"] == {"reference": "Practitioner/doc-1"} and user["requestor"] is True
    assert client["network"] == {"address": "10.0.0.7", "type": "2"} and client["requestor"] is False
    assert client["type"]["coding"][0]["code"] == "110153" and server["type"]["coding"][0]["code"] == "110152"
    assert event["source"]["type"][0]["code"] == "4"
    record = AuditRecord.from_event(event)
    assert (record.interaction, record.action, record.outcome) == (interaction, ACTIONS[interaction], 0)
    assert (record.user_ref, record.patient_id, record.entity_type, record.entity_id) == (
        "Practitioner/doc-1",
        "p1",
        "Observation",
        "o1",
    )
    assert record.recorded == NOW


def test_search_carries_the_query_base64_and_its_type() -> None:
    query = "name=Jane Doe&birthdate=1970-01-01"
    event = rest_event("search", status=200, actor=DOC, resource_type="Patient", query=query, recorded=NOW)
    AuditEvent.model_validate(event)
    entity = role(event, "24")
    assert base64.b64decode(entity["query"]).decode() == query
    assert entity["type"]["code"] == "2" and entity["what"] == {"type": "Patient"}
    record = AuditRecord.from_event(event)
    assert record.entity_type == "Patient" and record.entity_id is None and record.patient_id is None


def test_vread_names_the_version_and_export_names_the_operation() -> None:
    vread = rest_event(
        "vread",
        status=200,
        actor=DOC,
        resource_type="Condition",
        resource_id="c",
        version_id="3",
        patient_id="p",
        recorded=NOW,
    )
    assert role(vread, "4")["what"]["reference"] == "Condition/c/_history/3"
    assert AuditRecord.from_event(vread).entity_id == "c"
    export = rest_event("export", status=202, actor=Actor("analytics-client"), recorded=NOW)
    AuditEvent.model_validate(export)
    assert ("urn:medweave:operation", "$export") in codes(export, "subtype")
    assert export["agent"][0]["who"] == {
        "identifier": {"system": "urn:medweave:user", "value": "analytics-client"}
    }
    assert "network" not in export["agent"][1]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, 0), (201, 0), (304, 0), (400, 4), (403, 4), (404, 4), (500, 8), (503, 8), (0, 12), (700, 12)],
)
def test_outcome_from_http_status(status: int, outcome: int) -> None:
    assert outcome_for_status(status) == outcome
    event = rest_event(
        "read", status=status, actor=DOC, resource_type="Patient", resource_id="p", recorded=NOW
    )
    AuditEvent.model_validate(event)
    assert event["outcome"] == str(outcome)
    assert ("outcomeDesc" in event) is (outcome != 0)


def test_login_success_failure_and_logout() -> None:
    ok = login_event(actor=Actor("Practitioner/doc-1", address="192.0.2.1"), success=True, recorded=NOW)
    bad = login_event(
        actor=Actor("mallory", address="host.example"), success=False, failure="bad credentials", recorded=NOW
    )
    out = login_event(actor=Actor("Patient/p1"), success=True, logout=True, recorded=NOW)
    for event in (ok, bad, out):
        AuditEvent.model_validate(event)
        assert event["type"]["system"] == "http://dicom.nema.org/resources/ontology/DCM"
        assert event["type"]["code"] == "110114" and event["action"] == "E"
    assert codes(ok, "subtype") == {("http://dicom.nema.org/resources/ontology/DCM", "110122")}
    assert codes(out, "subtype") == {("http://dicom.nema.org/resources/ontology/DCM", "110123")}
    assert (ok["outcome"], bad["outcome"], bad["outcomeDesc"]) == ("0", "4", "bad credentials")
    assert bad["agent"][1]["network"] == {"address": "host.example", "type": "1"}
    assert [AuditRecord.from_event(e).interaction for e in (ok, bad, out)] == ["login", "login", "logout"]
    assert AuditRecord.from_event(bad).user_ref == "mallory"
    assert AuditRecord.from_event(out).patient_id is None  # a sign-in is not an access to a record


def test_break_glass_carries_btg_and_the_reason() -> None:
    until = NOW + timedelta(hours=1)
    event = break_glass_event(
        actor=DOC, patient_id="p9", reason="unconscious in ED", expires=until, recorded=NOW
    )
    AuditEvent.model_validate(event)
    btg = {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
        "code": "BTG",
        "display": "break the glass",
    }
    assert event["purposeOfEvent"] == [{"coding": [btg], "text": "unconscious in ED"}]
    assert event["agent"][0]["purposeOfUse"] == event["purposeOfEvent"]
    assert (event["type"]["code"], event["subtype"][0]["code"]) == ("110113", "110127")
    assert event["period"]["end"] == "2024-05-06T08:08:09.123456Z"
    record = AuditRecord.from_event(event)
    assert (record.interaction, record.patient_id) == ("break-glass", "p9")
    end = break_glass_event(actor=DOC, patient_id="p9", reason="done", end=True, recorded=NOW)
    assert AuditRecord.from_event(end).interaction == "break-glass-end"
    read = rest_event(
        "read",
        status=200,
        actor=DOC,
        resource_type="Patient",
        resource_id="p9",
        patient_id="p9",
        break_glass_reason="unconscious in ED",
        recorded=NOW,
    )
    AuditEvent.model_validate(read)
    assert read["purposeOfEvent"][0]["coding"] == [btg]


def test_an_admins_security_changes_are_dicom_security_alerts() -> None:
    created = security_change_event(actor=DOC, target="user:u7", roles=True, action="C", recorded=NOW)
    reviewed = security_change_event(actor=DOC, target="grant:g1", roles=False, patient_id="p9", recorded=NOW)
    refused = security_change_event(actor=DOC, target="grant:g2", roles=False, failure="review refused")
    for event in (created, reviewed, refused):
        AuditEvent.model_validate(event)
        assert event["type"]["code"] == "110113"
    assert [e["subtype"][0]["code"] for e in (created, reviewed)] == ["110136", "110135"]
    assert created["entity"][0]["what"] == {"identifier": {"value": "user:u7"}}
    assert created["entity"][0]["role"]["code"] == "13"  # Security Resource
    records = [AuditRecord.from_event(e) for e in (created, reviewed, refused)]
    assert [(r.interaction, r.action, r.outcome, r.patient_id) for r in records] == [
        ("roles-changed", "C", 0, None),
        ("security-changed", "U", 0, "p9"),
        ("security-changed", "U", 4, None),
    ]
    assert refused["outcomeDesc"] == "review refused"


def test_recorded_is_utc_with_microseconds_and_must_be_aware() -> None:
    cet = timezone(timedelta(hours=2))
    event = rest_event(
        "read", status=200, actor=DOC, resource_type="Patient", resource_id="p", recorded=NOW.astimezone(cet)
    )
    assert event["recorded"] == "2024-05-06T07:08:09.123456Z"
    with pytest.raises(ValueError, match="timezone"):
        rest_event("read", status=200, actor=DOC, recorded=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="interaction"):
        rest_event("peek", status=200, actor=DOC)


def test_body_is_canonical_json() -> None:
    event = rest_event("read", status=200, actor=DOC, resource_type="Patient", resource_id="p", recorded=NOW)
    record = AuditRecord.from_event(event)
    assert record.body == canonical_json(event)
    assert record.body == json.dumps(
        json.loads(record.body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert '", "' not in record.body and '": ' not in record.body
    assert dataclasses.replace(record, seq=7).event() == {**event, "id": "7"}


def _searched(query: str, seq: int = 42) -> AuditRecord:
    event = rest_event(
        "search",
        status=200,
        actor=Actor("Practitioner/doc-1", address="10.0.0.7"),
        resource_type="Patient",
        patient_id="pat-123",
        query=query,
        recorded=NOW,
    )
    return dataclasses.replace(AuditRecord.from_event(event), seq=seq)


def test_leaf_bytes_has_no_phi_and_is_deterministic() -> None:
    record = _searched("name=Zebulon Quixote&birthdate=1970-01-01")
    leaf = leaf_bytes(record)
    assert leaf == leaf_bytes(_searched("name=Zebulon Quixote&birthdate=1970-01-01"))
    for secret in (
        b"Zebulon",
        b"Quixote",
        b"1970-01-01",
        b"pat-123",
        b"doc-1",
        b"10.0.0.7",
        base64.b64encode(b"name=Zebulon Quixote&birthdate=1970-01-01")[:12],
    ):
        assert secret not in leaf
    digest = hashlib.sha256(record.body.encode()).hexdigest()
    assert (
        leaf == f"medweave-audit/v1\n42\n2024-05-06T07:08:09.123456Z\nsearch\n0\nsha256:{digest}\n".encode()
    )
    # Any change of the body, the number or the order changes the leaf.
    assert leaf != leaf_bytes(_searched("name=Zebulon Quixote&birthdate=1970-01-02"))
    assert leaf != leaf_bytes(_searched("name=Zebulon Quixote&birthdate=1970-01-01", seq=43))


def test_salted_leaf_cannot_be_recomputed_without_the_salt() -> None:
    record = _searched("name=x")
    salted = leaf_bytes(record, salt=b"\x01" * 32)
    assert salted == leaf_bytes(record, salt=b"\x01" * 32)
    assert salted != leaf_bytes(record, salt=b"\x02" * 32) and salted != leaf_bytes(record)
    assert b"hmac-sha256:" in salted
    with pytest.raises(ValueError, match="sequence"):
        leaf_bytes(dataclasses.replace(record, seq=None))
