"""The audit trail over HTTP (issue 3, "Audit"): every API call leaves its AuditEvents, gaplessly.

A mix of calls (reads, searches, creates, updates, deletes, transactions, and failures: 401, 404,
400, 403) goes through one client that records, for each call, the trail's head before and after it.
Events are committed before a response is sent, so the events of call *n* are exactly the rows
between those heads: each call must have at least one, all with its outcome (0 success, 4 failure)
and its agent, and a search answering for several patients must leave one event per patient.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import bearer
from medweave.audit import AuditService
from medweave.audit.events import AuditRecord


@dataclass
class Call:
    method: str
    path: str
    status: int
    agent: str
    events: list[AuditRecord]
    body: Any = None


@dataclass
class Recorder:
    """Sends requests and keeps, per request, the audit rows written while it was served."""

    http: TestClient
    audit: AuditService
    calls: list[Call] = field(default_factory=list)

    def __call__(self, method: str, path: str, agent: str, headers: dict[str, str], **kw: Any) -> Any:
        before = self.audit.head()
        r = self.http.request(method, path, headers=headers, **kw)
        after = self.audit.head()
        events = [e for e in self.audit.since(before, limit=10_000) if e.seq is not None and e.seq <= after]
        body = r.json() if r.content else None
        self.calls.append(Call(method, path, r.status_code, agent, events, body))
        return r


def _obs(pid: str, code: str = "x") -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": code},
            "subject": {"reference": f"Patient/{pid}"}}  # fmt: skip


@pytest.fixture
def trail(app: Any, client: Any, audit: AuditService) -> Recorder:
    """A recorder on a client without credentials of its own (``client`` runs the app's lifespan)."""
    return Recorder(TestClient(app), audit)  # type: ignore[arg-type]


def _drive(call: Recorder) -> dict[str, Any]:
    """The mix of calls; returns the ids and agents it made."""
    sys_h, sys_agent = bearer(), "client:test-suite"
    ids: dict[str, Any] = {}
    ok = call("POST", "/fhir/Practitioner", sys_agent, sys_h, json={"resourceType": "Practitioner"})
    doc = ok.json()["id"]
    for label in ("P1", "P2", "P3"):
        ids[label] = call("POST", "/fhir/Patient", sys_agent, sys_h, json={"resourceType": "Patient"}).json()[
            "id"
        ]
        ids[f"obs-{label}"] = call(
            "POST", "/fhir/Observation", sys_agent, sys_h, json=_obs(ids[label])
        ).json()["id"]
    team = {"resourceType": "CareTeam", "status": "active", "subject": {"reference": f"Patient/{ids['P1']}"},
            "participant": [{"member": {"reference": f"Practitioner/{doc}"}}]}  # fmt: skip
    call("POST", "/fhir/CareTeam", sys_agent, sys_h, json=team)
    a_h = bearer(
        "user/*.cruds", kind="user", subject="dr-a", role="clinician", fhir_user=f"Practitioner/{doc}"
    )
    a = f"Practitioner/{doc}"
    p_h = bearer("patient/*.rs", kind="user", subject="pat-1", role="patient", patient=ids["P1"])
    ds_h = bearer("user/*.rs", kind="user", subject="ds", role="data_scientist")
    p1, p2, o1, o2 = ids["P1"], ids["P2"], ids["obs-P1"], ids["obs-P2"]
    # the clinician at work on P1 (in care) and probing P2 (not)
    call("GET", f"/fhir/Patient/{p1}", a, a_h)
    call("GET", f"/fhir/Observation/{o1}", a, a_h)
    call("GET", f"/fhir/Observation/{o1}/_history/1", a, a_h)
    call("GET", "/fhir/Observation", a, a_h, params={"subject": f"Patient/{p1}"})
    call("GET", f"/fhir/Patient/{p1}/$everything", a, a_h)
    call("GET", f"/fhir/Observation/{o2}", a, a_h)  # 404: not in care
    call("GET", f"/fhir/Patient/{p2}/$everything", a, a_h)  # 404
    upd = call("PUT", f"/fhir/Observation/{o1}", a, a_h, json=_obs(p1, "changed") | {"id": o1})
    assert upd.status_code == 200, upd.text
    made = call("POST", "/fhir/Observation", a, a_h, json=_obs(p1, "new"))
    call("DELETE", f"/fhir/Observation/{made.json()['id']}", a, a_h)
    call("GET", f"/fhir/Observation/{o1}/_history", a, a_h)
    # the patient looks at their own record
    call("GET", "/fhir/Observation", f"Patient/{p1}", p_h)
    call("GET", f"/fhir/Patient/{p1}", f"Patient/{p1}", p_h)
    # the integration: a multi-patient search, history, a transaction over two patients, a delete
    call("GET", "/fhir/Observation", sys_agent, sys_h)
    call("GET", "/fhir/Patient", sys_agent, sys_h, params={"_revinclude": "Observation:subject"})
    call("GET", "/fhir/_history", sys_agent, sys_h)
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": _obs(p1, "tx"), "request": {"method": "POST", "url": "Observation"}},
        {"resource": _obs(p2, "tx"), "request": {"method": "POST", "url": "Observation"}}]}  # fmt: skip
    assert call("POST", "/fhir", sys_agent, sys_h, json=tx).status_code == 200
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Observation/{o2}"}}]}  # fmt: skip
    call("POST", "/fhir", sys_agent, sys_h, json=batch)
    call("DELETE", f"/fhir/Observation/{ids['obs-P3']}", sys_agent, sys_h)
    # failures
    call("GET", "/fhir/Observation", "anonymous", {})  # 401
    call("GET", f"/fhir/Observation/{o1}", "anonymous", {"Authorization": "Bearer forged.token.here"})  # 401
    call("GET", "/fhir/Observation/does-not-exist", sys_agent, sys_h)  # 404
    call("GET", "/fhir/NoSuchType", sys_agent, sys_h)  # 404
    call("POST", "/fhir/Observation", sys_agent, sys_h | {"Content-Type": "application/fhir+json"},
         content=b"{not json")  # fmt: skip  # 400
    call("POST", "/fhir/Observation", sys_agent, sys_h, json={"resourceType": "Patient"})  # 400: wrong type
    bad_tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": _obs(p1), "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Observation"}, "request": {"method": "POST", "url": "Observation"}},
    ]}  # fmt: skip
    call("POST", "/fhir", sys_agent, sys_h, json=bad_tx)  # 4xx: nothing stored
    call("POST", "/fhir/Observation", "user:ds", ds_h, json=_obs(p1))  # 403 scope
    call("DELETE", f"/fhir/Observation/{o1}", f"Patient/{p1}", p_h)  # 403 scope
    ids["agent-A"] = a
    return ids


def test_every_api_call_leaves_its_audit_events(trail: Recorder, audit: AuditService) -> None:
    start = audit.head()
    ids = _drive(trail)
    statuses = {c.status for c in trail.calls}
    assert {200, 201, 204, 400, 401, 403, 404} <= statuses, statuses
    problems: list[str] = []
    for c in trail.calls:
        what = f"{c.method} {c.path} -> {c.status}"
        if not c.events:
            problems.append(f"{what}: no AuditEvent")
            continue
        outcome = 0 if c.status < 400 else 4
        if {e.outcome for e in c.events} != {outcome}:
            problems.append(f"{what}: outcomes {[e.outcome for e in c.events]}, want {outcome}")
        if {e.user_ref for e in c.events} != {c.agent}:
            problems.append(f"{what}: agents {[e.user_ref for e in c.events]}, want {c.agent}")
        for e in c.events:
            requestor = [a for a in e.event()["agent"] if a.get("requestor")]
            who = requestor[0]["who"] if requestor else {}
            if c.agent not in (who.get("reference"), who.get("identifier", {}).get("value")):
                problems.append(f"{what}: requestor agent {who}, want {c.agent}")
    assert not problems, "\n".join(problems)
    written = audit.since(start, limit=100_000)
    assert len(written) >= len(trail.calls)
    assert audit.count() == audit.head() == start + len(written)
    assert audit.check_gapless() == []
    assert [e.seq for e in written] == list(range(start + 1, audit.head() + 1))
    assert ids  # the mix ran to the end


def _patients_of(bundle: dict[str, Any]) -> set[str]:
    out = set()
    for e in bundle.get("entry", []):
        res = e.get("resource", {})
        if res.get("resourceType") == "Patient":
            out.add(res["id"])
        ref = res.get("subject", {}).get("reference", "")
        if ref.startswith("Patient/"):
            out.add(ref.split("/")[1])
    return out


def test_a_search_over_several_patients_leaves_one_event_per_patient(trail: Recorder) -> None:
    ids = _drive(trail)
    searches = [
        c
        for c in trail.calls
        if c.method == "GET" and c.status == 200 and c.body and c.body.get("type") == "searchset"
    ]
    several = [c for c in searches if len(_patients_of(c.body)) > 1]
    assert len(several) >= 2, [c.path for c in searches]  # Observation and Patient?_revinclude by the system
    for c in searches:
        want = _patients_of(c.body)
        got = [e.patient_id for e in c.events if e.patient_id is not None]
        assert sorted(got) == sorted(want), (c.path, got, want)
        # The query may name other people, so it rides on exactly one event that names no patient.
        carriers = [e for e in c.events if e.patient_id is None]
        assert len(carriers) == (0 if "$" in c.path else 1), (c.path, carriers)
        assert all('"query"' not in e.body for e in c.events if e.patient_id is not None), c.path
    tx = next(c for c in trail.calls if c.method == "POST" and c.path == "/fhir" and c.status == 200)
    assert sorted(e.patient_id for e in tx.events) == sorted([ids["P1"], ids["P2"]])


def test_who_looked_at_my_record(trail: Recorder, audit: AuditService) -> None:
    ids = _drive(trail)
    p1, p2, a = ids["P1"], ids["P2"], ids["agent-A"]
    mine = audit.for_patient(p1, limit=1000)
    assert mine and all(e.patient_id == p1 for e in mine)
    seen = {(e.user_ref, e.interaction, e.entity_type, e.entity_id) for e in mine}
    for expected in [
        (a, "read", "Patient", p1),
        (a, "read", "Observation", ids["obs-P1"]),
        (a, "vread", "Observation", ids["obs-P1"]),
        (a, "update", "Observation", ids["obs-P1"]),
        (a, "history", "Observation", ids["obs-P1"]),
    ]:
        assert expected in seen, (expected, sorted(map(str, seen)))
    assert any(e.user_ref == a and e.interaction == "search" for e in mine)
    assert any(e.user_ref == f"Patient/{p1}" for e in mine)  # the patient's own look
    p2_things = {p2, ids["obs-P2"]}
    assert not [e for e in mine if e.entity_id in p2_things or e.patient_id == p2]
    # and P2's list has the clinician's refused probe, as a failure, but none of P1's reads
    theirs = audit.for_patient(p2, limit=1000)
    assert all(e.patient_id == p2 for e in theirs)
    assert not [e for e in theirs if e.entity_id in {p1, ids["obs-P1"]}]


def test_a_patients_trail_names_no_other_patient(trail: Recorder, audit: AuditService) -> None:
    """What P1 is shown must not mention P2, not even inside a recorded query string."""
    ids = _drive(trail)
    doc = ids["agent-A"].split("/")[1]
    h = bearer("user/*.cruds", kind="user", subject="dr-a", role="clinician", fhir_user=f"Practitioner/{doc}")
    trail("GET", "/fhir/Observation", ids["agent-A"], h,
          params={"subject": f"Patient/{ids['P1']},Patient/{ids['P2']}"})  # fmt: skip
    for e in audit.for_patient(ids["P1"], limit=1000):
        text = json.dumps(e.event())
        for ent in e.event().get("entity", []):
            if "query" in ent:
                text += base64.b64decode(ent["query"]).decode()
        assert ids["P2"] not in text and ids["obs-P2"] not in text, e.event()
