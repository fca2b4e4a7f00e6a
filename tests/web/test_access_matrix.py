"""The access matrix (issue 3, "Access matrix"): every role, resource type, operation and relation.

Eleven callers (a patient, clinicians and a therapist in care, consented, with break-glass or with
nothing, a lab technician, a data scientist, an admin with and without break-glass, a backend client)
meet the clinic of ``access_fixtures`` over HTTP. For each of the 21 types and each operation (read,
vread, search, ``_include``, ``_revinclude``, ``_has``, chained search, ``Patient/$everything``,
``_history`` instance/type/system, ``_summary=count``, create, update, delete) the expected answer is
derived from the rules in ``medweave.records.access``'s docstring and issue 3, restated in
``access_fixtures`` (``want_*`` below); it is never read back from the server. What a caller may not
see must answer byte for byte like what does not exist (ids replaced by ``<id>``).

Deletes: a caller without the delete scope, or whose role may never delete the type (AuditEvent for
anyone but a backend client, shared types outside the role's list, patient records for roles outside
care), gets 403 whatever the id. Otherwise deleting a missing or invisible record is a no-op that
answers 204 (``service.deletable``: "Deleting what the caller cannot see answers like deleting what
does not exist (204, nothing done)"), and a visible one is deleted only by a clinician or therapist
with the patient in their care. A Consent or break-glass opens a record for reading only.

Each database gets one clinic (module-scoped), so the whole matrix runs in well under a minute.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from access_fixtures import (
    CALLER_IDS,
    CALLERS,
    CARE_ROLES,
    COMPARTMENT_TYPES,
    PATIENT_WRITABLE,
    PATIENTS,
    SHARED_WRITABLE,
    Caller,
    Record,
    World,
    body_for,
    database,
    owner_of,
    ref,
    seed,
)
from fastapi.testclient import TestClient

from conftest import BASE, TOKEN_SECRET, postgres_url
from medweave.audit import AuditService
from medweave.config import Settings
from medweave.records.fhir import SUPPORTED_TYPES
from medweave.records.service import RecordService
from medweave.security.crypto import MasterKey
from medweave.web.app import create_app
from medweave.web.auth import Authenticator

#: Every assertion of the matrix, and the distinct (role, type, operation, relation) cells they cover.
TALLY: dict[str, Any] = {"assertions": 0, "cells": set()}


# -- expectations: the rules of access.py's docstring, applied to the clinic's bookkeeping ----------


def want_read(w: World, c: Caller, rec: Record, op: str) -> int:
    if not w.visible(c, rec.owner):
        return 404
    return 410 if rec.deleted and op == "read" else 200


def want_create(w: World, c: Caller, res_type: str, owner: str | None) -> int:
    if c.system:
        return 201
    if not c.may("create", res_type) or res_type == "AuditEvent":
        return 403
    if res_type == "Patient":  # registration: a clinician or therapist may add a patient
        return 201 if c.role in CARE_ROLES else 403
    if owner is None:
        return 201 if res_type in SHARED_WRITABLE.get(c.role or "", ()) else 403
    rel = w.relation(c, owner)
    if c.role == "patient":
        return 201 if res_type in PATIENT_WRITABLE and rel == "own" else 403
    return 201 if c.role in CARE_ROLES and rel == "care" else 403


def want_update(w: World, c: Caller, rec: Record) -> int:
    if c.system:
        return 200
    if not c.may("update", rec.res_type):
        return 403
    if not w.visible(c, rec.owner):
        return 404
    if rec.res_type == "AuditEvent":
        return 403
    if rec.owner is None:
        return 200 if rec.res_type in SHARED_WRITABLE.get(c.role or "", ()) else 403
    rel = w.relation(c, rec.owner)
    if c.role == "patient":
        return 200 if rec.res_type in PATIENT_WRITABLE and rel == "own" else 403
    return 200 if c.role in CARE_ROLES and rel == "care" else 403


def want_delete(w: World, c: Caller, res_type: str, owner: str | None, *, exists: bool) -> int:
    """``owner`` None: a shared record; for a missing id pass any non-None owner when the type has a
    patient compartment (the caller cannot know whose it would be)."""
    if c.system:
        return 204
    if not c.may("delete", res_type) or res_type == "AuditEvent":
        return 403
    shared_ok = res_type in SHARED_WRITABLE.get(c.role or "", ())
    if owner is None:
        return 204 if shared_ok else 403
    if not exists or not w.visible(c, owner):  # nothing done, exactly as for a missing record
        return 204 if shared_ok or c.role in CARE_ROLES else 403
    return 204 if c.role in CARE_ROLES and w.relation(c, owner) == "care" else 403


def missing_id() -> str:
    return f"nx-{uuid.uuid4().hex[:16]}"


MISSING = missing_id()  # only ever read, never written


# -- plumbing -----------------------------------------------------------------------------------------


@dataclass
class Clinic:
    http: TestClient
    world: World
    seeded: list[Record] = field(default_factory=list)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def clinic(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    if request.param == "postgres" and postgres_url() is None:
        pytest.skip("MEDWEAVE_TEST_POSTGRES is not set")
    tmp: Path = tmp_path_factory.mktemp(f"clinic-{request.param}")
    db = database(request.param, tmp)
    engine = next(db)
    records = RecordService(
        engine=engine, master=MasterKey.generate(), base_url=BASE, audit=AuditService(engine)
    )
    world = World()
    auth = Authenticator(secret=TOKEN_SECRET, issuer="http://testserver", audience=BASE, enrich=world.enrich)
    app = create_app(
        Settings(data_dir=tmp / "data", base_url="http://testserver"), records=records, authenticator=auth
    )
    with TestClient(app) as http:
        seed(http, world)
        yield Clinic(http, world, list(world.records.values()))
    next(db, None)


@pytest.fixture(scope="module", autouse=True)
def _print_matrix_size(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    cells = TALLY["cells"]
    line = (
        f"access matrix: {TALLY['assertions']} assertions over {len(cells)} cells "
        f"({len({c[0] for c in cells})} roles x {len({c[1] for c in cells})} types x "
        f"{len({c[2] for c in cells})} operations x {len({c[3] for c in cells})} relations)"
    )
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print(f"\n{line}")
    else:
        print(line)


class Check:
    """Soft assertions for one caller: every mismatch is collected, then reported together."""

    def __init__(self, clinic: Clinic, caller: Caller):
        self.clinic, self.caller, self.world = clinic, caller, clinic.world
        self.failures: list[str] = []

    def eq(self, got: Any, want: Any, res_type: str, op: str, relation: str, what: str = "") -> bool:
        TALLY["assertions"] += 1
        TALLY["cells"].add((self.caller.role or "system", res_type, op, relation))
        if got != want:
            self.failures.append(
                f"{self.caller.name} {op} {res_type} [{relation}] {what}: got {got!r}, want {want!r}"
            )
            return False
        return True

    def done(self) -> None:
        if self.failures:
            shown = "\n".join(self.failures[:80])
            more = f"\n... and {len(self.failures) - 80} more" if len(self.failures) > 80 else ""
            pytest.fail(f"{len(self.failures)} access mismatches:\n{shown}{more}", pytrace=False)

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return self.world.headers(self.caller) | (extra or {})

    def get(self, path: str, params: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.clinic.http.get(path, params=params, headers=self.headers(headers))

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.clinic.http.put(path, json=body, headers=self.headers())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.clinic.http.post(path, json=body, headers=self.headers())

    def delete(self, path: str) -> Any:
        return self.clinic.http.delete(path, headers=self.headers())

    def relation(self, owner: str | None) -> str:
        return self.world.relation(self.caller, owner)

    def bundle_all(self, path: str, params: dict[str, str] | None = None) -> tuple[int, int, list[dict]]:
        """Every entry of a search or history, following ``next`` links: (status, total, entries)."""
        r = self.get(path, {**(params or {}), "_count": "1000"})
        if r.status_code != 200:
            return r.status_code, -1, []
        first = r.json()
        entries = list(first.get("entry", []))
        nxt = [link["url"] for link in first.get("link", []) if link["relation"] == "next"]
        while nxt:
            page = self.clinic.http.get(nxt[0], headers=self.headers()).json()
            entries += page.get("entry", [])
            nxt = [link["url"] for link in page.get("link", []) if link["relation"] == "next"]
        return 200, first.get("total", -1), entries


def sample(clinic: Clinic, caller: Caller, res_type: str) -> list[Record]:
    """One seeded record of ``res_type`` per relation the caller has to its owner (own, care, none...)."""
    out: dict[str, Record] = {}
    for rec in clinic.seeded:
        if rec.res_type == res_type and not rec.deleted:
            out.setdefault(clinic.world.relation(caller, rec.owner), rec)
    return list(out.values())


def shape(r: Any, *ids: str) -> tuple[int, str]:
    """Status and body with the ids asked about replaced, for comparing answers byte for byte."""
    text = r.text
    for i in ids:
        text = text.replace(i, "<id>")
    return r.status_code, text


def keys(entries: list[dict], mode: str | None = None) -> set[tuple[str, str]]:
    return {
        (e["resource"]["resourceType"], e["resource"]["id"])
        for e in entries
        if "resource" in e
        and e["resource"]["resourceType"] != "OperationOutcome"
        and (mode is None or e.get("search", {}).get("mode") == mode)
    }


def history_keys(entries: list[dict]) -> set[tuple[str, str]]:
    out = set()
    for e in entries:
        m = re.search(r"/([A-Za-z]+)/([A-Za-z0-9\-.]+)$", e["fullUrl"])
        assert m, e["fullUrl"]
        out.add((m[1], m[2]))
    return out


def references(node: Any) -> Iterator[tuple[str, str]]:
    """Every ``Type/id`` a resource points at (references and canonical ``questionnaire``)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("reference", "questionnaire") and isinstance(v, str) and v.count("/") == 1:
                t, i = v.split("/")
                yield t, i
            else:
                yield from references(v)
    elif isinstance(node, list):
        for v in node:
            yield from references(v)


def field_refs(body: dict[str, Any], *names: str) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for name in names:
        value = body.get(name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.count("/") == 1:
                t, i = item.split("/")
                out.add((t, i))
            elif isinstance(item, dict):
                out.update(references(item))
    return out


callers = pytest.mark.parametrize("caller", CALLERS, ids=CALLER_IDS)


# -- reads ----------------------------------------------------------------------------------------------


@callers
def test_read_vread_and_instance_history(clinic: Clinic, caller: Caller) -> None:
    ck, w = Check(clinic, caller), clinic.world
    paths = {
        "read": "/fhir/{t}/{i}",
        "vread": "/fhir/{t}/{i}/_history/1",
        "history-instance": "/fhir/{t}/{i}/_history",
    }
    for t in SUPPORTED_TYPES:
        missing = {op: shape(ck.get(p.format(t=t, i=MISSING)), MISSING) for op, p in paths.items()}
        for op, (status, _) in missing.items():
            ck.eq(status, 404, t, op, "missing")
        for rec in sample(clinic, caller, t):
            rel = ck.relation(rec.owner)
            for op, p in paths.items():
                r = ck.get(p.format(t=t, i=rec.res_id))
                want = want_read(w, caller, rec, op)
                ck.eq(r.status_code, want, t, op, rel, rec.res_id)
                if want == 404:
                    ck.eq(
                        shape(r, rec.res_id),
                        missing[op],
                        t,
                        op,
                        rel,
                        f"{rec.res_id} answers unlike a missing id",
                    )
                elif want == 200 and op != "history-instance":
                    ck.eq(r.json().get("id"), rec.res_id, t, op, rel, "body id")
                elif want == 200:
                    ck.eq(history_keys(r.json().get("entry", [])), {rec.key}, t, op, rel, "history entries")
    ck.done()


@callers
def test_search_totals_and_type_history(clinic: Clinic, caller: Caller) -> None:
    ck, w = Check(clinic, caller), clinic.world
    for t in SUPPORTED_TYPES:
        everyone = w.of_type(t, live=False)
        live = {r.key for r in w.of_type(t) if w.visible(caller, r.owner)}
        rel = "all"
        status, total, entries = ck.bundle_all(f"/fhir/{t}")
        ck.eq(status, 200, t, "search", rel)
        ck.eq(keys(entries, "match"), live, t, "search", rel, "matches")
        ck.eq(total, len(live), t, "search", rel, "total")
        r = ck.get(f"/fhir/{t}", {"_summary": "count"})
        ck.eq(
            (r.status_code, r.json().get("total"), "entry" in r.json()),
            (200, len(live), False),
            t,
            "_summary=count",
            rel,
        )
        by_id = ",".join([*[r.res_id for r in everyone][:90], MISSING])
        status, total, entries = ck.bundle_all(f"/fhir/{t}", {"_id": by_id})
        ck.eq(
            (keys(entries, "match"), total),
            (live & {(t, i) for i in by_id.split(",")}, len(live & {(t, i) for i in by_id.split(",")})),
            t,
            "search _id",
            rel,
        )
        ever = {r.key for r in everyone if w.visible(caller, r.owner)}
        status, total, entries = ck.bundle_all(f"/fhir/{t}/_history")
        ck.eq(status, 200, t, "history-type", rel)
        ck.eq(history_keys(entries), ever, t, "history-type", rel, "resources in history")
        ck.eq(total, len(entries), t, "history-type", rel, "total counts only visible versions")
    ck.done()


@callers
def test_system_history(clinic: Clinic, caller: Caller) -> None:
    ck, w = Check(clinic, caller), clinic.world
    ever = {r.key for r in w.records.values() if w.visible(caller, r.owner)}
    status, total, entries = ck.bundle_all("/fhir/_history")
    ck.eq(status, 200, "*", "history-system", "all")
    got = history_keys(entries)
    for t in SUPPORTED_TYPES:
        rel = "all"
        ck.eq({k for k in got if k[0] == t}, {k for k in ever if k[0] == t}, t, "history-system", rel)
    ck.eq(total, len(entries), "*", "history-system", "all", "total counts only visible versions")
    ck.done()


@callers
def test_patient_everything(clinic: Clinic, caller: Caller) -> None:
    ck, w = Check(clinic, caller), clinic.world
    missing = shape(ck.get(f"/fhir/Patient/{MISSING}/$everything"), MISSING)
    ck.eq(missing[0], 404, "Patient", "$everything", "missing")
    for label in PATIENTS:
        pid = w.patients[label]
        rel = ck.relation(pid)
        r = ck.get(f"/fhir/Patient/{pid}/$everything")
        if not w.visible(caller, pid):
            ck.eq(shape(r, pid), missing, "Patient", "$everything", rel, "answers unlike a missing patient")
            continue
        ck.eq(r.status_code, 200, "Patient", "$everything", rel)
        entries = r.json().get("entry", [])
        got = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in entries]
        ck.eq(got[:1], [("Patient", pid)], "Patient", "$everything", rel, "patient first")
        live = [x for x in w.records.values() if not x.deleted]
        mine = {x.key for x in live if x.owner == pid}
        pointing = {
            x.key for x in live if ("Patient", pid) in set(references(x.body)) and w.visible(caller, x.owner)
        }
        pointed = {
            k
            for x in live
            if x.owner == pid
            for k in references(x.body)
            if k[0] in ("Practitioner", "PractitionerRole", "Device", "Questionnaire") and k in w.records
        }
        ck.eq(set(got), mine | pointing | pointed, "Patient", "$everything", rel, "resources")
        for k in set(got):
            rec = w.records.get(k)
            seen = rec is not None and w.visible(caller, rec.owner)
            ck.eq(seen, True, k[0], "$everything", ck.relation(rec.owner if rec else None), f"{k} is visible")
    ck.done()


@callers
def test_include_and_revinclude_bring_only_visible(clinic: Clinic, caller: Caller) -> None:
    ck, w = Check(clinic, caller), clinic.world

    def live_visible(k: tuple[str, str]) -> bool:
        rec = w.records.get(k)
        return rec is not None and not rec.deleted and w.visible(caller, rec.owner)

    searches = [
        (
            "Observation",
            ["Observation:subject", "Observation:has-member", "Observation:focus"],
            ["subject", "hasMember", "focus"],
        ),
        ("Condition", ["Condition:subject"], ["subject"]),
        (
            "QuestionnaireResponse",
            ["QuestionnaireResponse:subject", "QuestionnaireResponse:questionnaire"],
            ["subject", "questionnaire"],
        ),
        ("CareTeam", ["CareTeam:participant"], ["participant"]),
    ]
    for t, specs, fields in searches:
        matches = {r.key for r in w.of_type(t) if w.visible(caller, r.owner)}
        targets = {
            k for m in matches for k in field_refs(w.records[m].body, *fields) if live_visible(k)
        } - matches
        status, _, entries = ck.bundle_all(f"/fhir/{t}", {"_include": specs})  # type: ignore[dict-item]
        rel = "all"
        ck.eq(status, 200, t, "_include", rel)
        ck.eq(keys(entries, "match"), matches, t, "_include", rel, "matches")
        ck.eq(keys(entries, "include"), targets, t, "_include", rel, "included")
    revs = [("Observation", ["subject", "focus"]), ("Condition", ["subject"]), ("CareTeam", ["subject"])]
    patients = {r.key for r in w.of_type("Patient") if w.visible(caller, r.owner)}
    specs = [f"{t}:{p}" for t, ps in revs for p in ps]
    back = {
        r.key
        for t, ps in revs
        for r in w.of_type(t)
        if any(k in patients for k in field_refs(r.body, *ps)) and w.visible(caller, r.owner)
    }
    status, _, entries = ck.bundle_all("/fhir/Patient", {"_revinclude": specs})  # type: ignore[dict-item]
    rel = "all"
    ck.eq(status, 200, "Patient", "_revinclude", rel)
    ck.eq(keys(entries, "match"), patients, "Patient", "_revinclude", rel, "matches")
    ck.eq(keys(entries, "include"), back, "Patient", "_revinclude", rel, "revincluded")
    # the two probes, by name: P1's panel points at P2's Observation; P2's Observation focuses on P1
    p1 = w.patients["P1"]
    status, _, entries = ck.bundle_all("/fhir/Patient", {"_id": p1, "_revinclude": "Observation:focus"})
    leak = w.named["Obs-P2-focus-P1"].key
    ck.eq(
        leak in keys(entries),
        live_visible(leak) and live_visible(("Patient", p1)),
        "Observation",
        "_revinclude",
        ck.relation(w.patients["P2"]),
    )
    panel = w.named["Obs-P1-hasMember-P2"]
    status, _, entries = ck.bundle_all(
        "/fhir/Observation", {"_id": panel.res_id, "_include": "Observation:has-member"}
    )
    member = ("Observation", "obs-2")
    want = live_visible(member) and live_visible(panel.key)
    ck.eq(
        member in keys(entries), want, "Observation", "_include", ck.relation(w.patients["P2"]), "has-member"
    )
    ck.done()


@callers
def test_has_and_chained_search_are_unsupported_and_reveal_nothing(clinic: Clinic, caller: Caller) -> None:
    ck, w = Check(clinic, caller), clinic.world
    cases = [
        ("Patient", "_has:Observation:subject:code", "code-P2"),
        ("Patient", "_has:Observation:subject:code", "no-such-code"),
        ("Patient", "_has:Condition:subject:code", "cond-P3"),
        ("Observation", "subject.name", "Patient-P2"),
        ("Observation", "subject:Patient.name", "Patient-P5"),
        ("Condition", "patient.name", "no-such-name"),
    ]
    for t, name, value in cases:
        live = {r.key for r in w.of_type(t) if w.visible(caller, r.owner)}
        rel = "all"
        op = "_has" if name.startswith("_has") else "chained"
        status, total, entries = ck.bundle_all(f"/fhir/{t}", {name: value})
        ck.eq(status, 200, t, op, rel, f"{name}={value}")
        ck.eq((keys(entries, "match"), total), (live, len(live)), t, op, rel, f"{name}={value} is ignored")
        issues = [
            i["code"]
            for e in entries
            if e.get("search", {}).get("mode") == "outcome"
            for i in e["resource"]["issue"]
        ]
        ck.eq(issues, ["not-supported"], t, op, rel, f"{name} reported unsupported")
        r = ck.get(f"/fhir/{t}", {name: value, "_summary": "count"})
        ck.eq(r.json().get("total"), len(live), t, op, rel, "_summary=count")
        r = ck.get(f"/fhir/{t}", {name: value}, headers={"Prefer": "handling=strict"})
        codes = [i["code"] for i in r.json().get("issue", [])]
        ck.eq((r.status_code, codes), (400, ["not-supported"]), t, op, rel, "strict")
    ck.done()


@callers
def test_reference_forms_and_totals(clinic: Clinic, caller: Caller) -> None:
    ck, w = Check(clinic, caller), clinic.world
    for label in PATIENTS:
        pid = w.patients[label]
        rel = ck.relation(pid)
        for t, param in (("Observation", "subject"), ("Condition", "patient")):
            want = {
                r.key
                for r in w.of_type(t)
                if ("Patient", pid) in field_refs(r.body, "subject") and w.visible(caller, r.owner)
            }
            forms = [{param: f"{BASE}/Patient/{pid}"}, {f"{param}:Patient": pid}]
            if t == "Observation":
                forms += [{param: f"Patient/{pid}"}, {param: pid}, {"patient": f"{BASE}/Patient/{pid}"}]
            for form in forms:
                status, total, entries = ck.bundle_all(f"/fhir/{t}", form)
                ck.eq(
                    (status, keys(entries, "match"), total),
                    (200, want, len(want)),
                    t,
                    "search ref",
                    rel,
                    str(form),
                )
                r = ck.get(f"/fhir/{t}", {**form, "_summary": "count"})
                ck.eq(r.json().get("total"), len(want), t, "_summary=count", rel, str(form))
    ck.done()


@callers
def test_guessed_and_sequential_ids_answer_like_missing_ones(clinic: Clinic, caller: Caller) -> None:
    ck, w = Check(clinic, caller), clinic.world
    body = body_for("Observation", w.patients["P1"], tag="guess")
    guesses = [f"obs-{i}" for i in range(1, 8)] + ["00000000-0000-0000-0000-000000000001"]
    guesses += [w.named[f"Condition-{p}"].res_id for p in PATIENTS[1:4]] + [
        w.patients["P2"],
        w.patients["P5"],
    ]

    def probe(i: str) -> dict[str, tuple[int, str]]:
        count = ck.get("/fhir/Observation", {"_id": i, "_summary": "count"}).json().get("total")
        out = {
            "read": shape(ck.get(f"/fhir/Observation/{i}"), i),
            "vread": shape(ck.get(f"/fhir/Observation/{i}/_history/1"), i),
            "history-instance": shape(ck.get(f"/fhir/Observation/{i}/_history"), i),
            "search _id": (200, str(count)),
            "update": shape(put := ck.put(f"/fhir/Observation/{i}", body | {"id": i}), i),
            "delete": shape(ck.delete(f"/fhir/Observation/{i}"), i),
        }
        if put.status_code == 201:  # a create by PUT (wrong for a caller who is not a backend client)
            rec = w.add("Observation", i, w.patients["P1"], body | {"id": i})
            rec.deleted = (
                clinic.http.get(f"/fhir/Observation/{i}", headers=w.headers(CALLERS[-1])).status_code == 410
            )
        return out

    if caller.system:
        return
    baseline = probe(missing_id())
    for i in guesses:
        rec = w.records.get(("Observation", i))
        if rec is not None and w.visible(caller, rec.owner):  # visible: readable, and left alone
            status = ck.get(f"/fhir/Observation/{i}").status_code
            ck.eq(status, 200, "Observation", "read", ck.relation(rec.owner), i)
            continue
        rel = ck.relation(rec.owner) if rec else "missing"
        for op, answer in probe(i).items():
            ck.eq(
                answer, baseline[op], "Observation", op, rel, f"guessed id {i!r} answers unlike a missing one"
            )
    want_put = 403 if not caller.may("update", "Observation") else 404
    ck.eq(baseline["update"][0], want_put, "Observation", "update", "missing")
    want = want_delete(w, caller, "Observation", "?", exists=False)
    ck.eq(baseline["delete"][0], want, "Observation", "delete", "missing")
    ck.eq(baseline["read"][0], 404, "Observation", "read", "missing")
    ck.done()


# -- writes ---------------------------------------------------------------------------------------------


def _owners(w: World, caller: Caller, res_type: str) -> list[str | None]:
    return list(w.representatives(caller)) if res_type in COMPARTMENT_TYPES else [None]


def _put_missing(ck: Check, res_type: str, body: dict[str, Any], owner: str | None) -> tuple[int, str]:
    rid = missing_id()
    r = ck.put(f"/fhir/{res_type}/{rid}", body | {"id": rid})
    if r.status_code == 201:  # created by PUT: keep the books straight for the other tests
        ck.world.add(res_type, rid, owner_of(res_type, owner, rid), body | {"id": rid})
    return shape(r, rid)


@callers
def test_create(clinic: Clinic, caller: Caller) -> None:
    ck, w = Check(clinic, caller), clinic.world
    schedule = w.named["schedule"].res_id
    for t in SUPPORTED_TYPES:
        for owner in _owners(w, caller, t):
            body = body_for(t, owner, tag=f"by-{caller.name}", schedule=schedule)
            r = ck.post(f"/fhir/{t}", body)
            rel = ck.relation(owner) if t != "Patient" else "new"
            want = want_create(w, caller, t, owner)
            ck.eq(r.status_code, want, t, "create", rel)
            if r.status_code == 201:
                rid = r.json()["id"]
                w.add(t, rid, owner_of(t, owner, rid), body | {"id": rid})
            elif want == 403:
                ck.eq([i["code"] for i in r.json()["issue"]], ["forbidden"], t, "create", rel, "issue code")
    ck.done()


@callers
def test_update(clinic: Clinic, caller: Caller) -> None:
    ck, w = Check(clinic, caller), clinic.world
    p1 = w.patients["P1"]
    for t in SUPPORTED_TYPES:
        body = body_for(t, p1, schedule=w.named["schedule"].res_id)
        missing = None
        if not caller.system:
            missing = _put_missing(ck, t, body, p1)
            want = 403 if not caller.may("update", t) else 404
            ck.eq(missing[0], want, t, "update", "missing", "PUT to an id that does not exist")
        for rec in sample(clinic, caller, t):
            rel = ck.relation(rec.owner)
            r = ck.put(f"/fhir/{t}/{rec.res_id}", rec.body)
            want = want_update(w, caller, rec)
            ck.eq(r.status_code, want, t, "update", rel, rec.res_id)
            if missing is not None and not w.visible(caller, rec.owner):
                missing = _put_missing(ck, t, body, p1)
                ck.eq(shape(r, rec.res_id), missing, t, "update", rel, "answers unlike a missing id")
    ck.done()


def _related_patient(clinic: Clinic, caller: Caller, relation: str) -> str:
    """A new patient that ``caller`` has ``relation`` (care or consent) with, made by the backend client."""
    w, system = clinic.world, next(c for c in CALLERS if c.system)
    body = body_for("Patient", None, tag=f"related-{relation}")
    pid = clinic.http.post("/fhir/Patient", json=body, headers=w.headers(system)).json()["id"]
    w.add("Patient", pid, pid, body | {"id": pid})
    actor = ref("Practitioner", w.practitioners[caller.practitioner or ""])
    if relation == "care":
        link = body_for("CareTeam", pid) | {"participant": [{"member": actor}]}
    else:
        role = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}
            ]
        }
        provision = {"type": "permit", "actor": [{"role": role, "reference": actor}]}
        link = body_for("Consent", pid) | {"provision": provision}
    r = clinic.http.post(f"/fhir/{link['resourceType']}", json=link, headers=w.headers(system))
    assert r.status_code == 201, r.text
    w.add(link["resourceType"], r.json()["id"], pid, link | {"id": r.json()["id"]})
    w.extra[(caller.name, pid)] = relation
    return pid


@callers
def test_delete(clinic: Clinic, caller: Caller) -> None:
    ck, w = Check(clinic, caller), clinic.world
    system = next(c for c in CALLERS if c.system)
    schedule = w.named["schedule"].res_id
    for t in SUPPORTED_TYPES:
        patient_type = t in COMPARTMENT_TYPES or t == "Patient"
        missing = shape(ck.delete(f"/fhir/{t}/{missing_id()}"), "")
        want = want_delete(w, caller, t, "?" if patient_type else None, exists=False)
        ck.eq(missing[0], want, t, "delete", "missing")
        owners: list[str | None]
        if t == "Patient":
            owners = [p for p in w.representatives(caller) if ck.relation(p) in ("none", "glass")]
            if caller.role in CARE_ROLES:
                owners += [_related_patient(clinic, caller, rel) for rel in ("care", "consent")]
        else:
            owners = _owners(w, caller, t)
        for owner in owners:
            rel = ck.relation(owner)
            want = want_delete(w, caller, t, owner, exists=True)
            if t == "Patient":
                rec = w.records[("Patient", owner or "")]
            else:
                body = body_for(t, owner, tag="to-delete", schedule=schedule)
                r = clinic.http.post(f"/fhir/{t}", json=body, headers=w.headers(system))
                assert r.status_code == 201, r.text
                rec = w.add(t, r.json()["id"], owner, body | {"id": r.json()["id"]})
            before = rec.deleted
            r = ck.delete(f"/fhir/{t}/{rec.res_id}")
            ck.eq(r.status_code, want, t, "delete", rel, rec.res_id)
            if not w.visible(caller, owner):
                rid = missing_id()
                gone = shape(ck.delete(f"/fhir/{t}/{rid}"), rid)
                ck.eq(shape(r, rec.res_id), gone, t, "delete", rel, "answers unlike a missing id")
            after = clinic.http.get(f"/fhir/{t}/{rec.res_id}", headers=w.headers(system)).status_code
            removed = before or (want == 204 and w.visible(caller, owner))
            ck.eq(after, 410 if removed else 200, t, "delete", rel, "record state afterwards")
            rec.deleted = after == 410
    ck.done()
