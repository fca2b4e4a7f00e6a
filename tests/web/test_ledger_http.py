"""The ledger over HTTP: public checkpoint, proofs and key; receipts for patients and the API;
the access history marks each event verified by the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pages_support import Clinic, build_clinic, sign_in

from medweave.ledger import store
from medweave.ledger.checkpoint import open_checkpoint
from medweave.ledger.hashing import leaf_hash
from medweave.ledger.note import parse_vkey
from medweave.ledger.receipt_check import check_receipt
from medweave.ledger.service import LedgerService
from medweave.ledger.verify import verify_consistency, verify_inclusion
from medweave.records.service import RecordService


@pytest.fixture
def clinic(records: RecordService, tmp_path: Path) -> Clinic:
    return build_clinic(records, tmp_path)


@pytest.fixture
def browser(clinic: Clinic) -> Iterator[TestClient]:
    with TestClient(clinic.app) as c:
        yield c


def _ledger(app: Any) -> LedgerService:
    ledger: LedgerService = app.state.ledger
    return ledger


def test_public_checkpoint_proofs_and_key(client: Any, app: Any) -> None:
    ledger = _ledger(app)
    assert client.get("/ledger/checkpoint").status_code == 404  # nothing sequenced yet
    for n in range(5):
        client.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": f"P{n}"}]})
    ledger.sequence_all()
    first = ledger.latest()
    client.get("/fhir/Patient")
    ledger.sequence_all()
    anonymous = TestClient(app)  # no token: the ledger is public
    vkey = anonymous.get("/ledger/vkey").text.strip()
    note = anonymous.get("/ledger/checkpoint").text
    checkpoint, _ = open_checkpoint(note, log=parse_vkey(vkey))
    assert first is not None and checkpoint.size > first.size
    r = anonymous.get("/ledger/proof/inclusion", params={"index": 3, "size": checkpoint.size})
    assert r.status_code == 200
    proof = [bytes.fromhex(h) for h in r.json()["proof"]]
    with ledger.engine.connect() as conn:  # the leaf itself, as the log stores it
        leaf = store.entry_at(conn, 3)
    assert leaf is not None
    verify_inclusion(3, checkpoint.size, leaf.leaf_hash, proof, checkpoint.root)
    r = anonymous.get("/ledger/proof/consistency", params={"old": first.size, "new": checkpoint.size})
    verify_consistency(
        first.size,
        checkpoint.size,
        [bytes.fromhex(h) for h in r.json()["proof"]],
        first.root,
        checkpoint.root,
    )
    page = anonymous.get("/ledger")
    assert page.status_code == 200 and vkey in page.text
    # bad input: a clear 4xx OperationOutcome, never a 500
    for params in ({"index": -1, "size": 2}, {"index": "x", "size": 2}, {"size": 2}):
        r = anonymous.get("/ledger/proof/inclusion", params=params)
        assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
    assert (
        anonymous.get("/ledger/proof/inclusion", params={"index": 0, "size": checkpoint.size + 1}).status_code
        == 404
    )
    assert (
        anonymous.get(
            "/ledger/proof/inclusion", params={"index": checkpoint.size, "size": checkpoint.size}
        ).status_code
        == 400
    )
    assert (
        anonymous.get(
            "/ledger/proof/consistency", params={"old": checkpoint.size + 1, "new": checkpoint.size}
        ).status_code
        == 400
    )


def test_a_version_receipt_through_the_api(client: Any, app: Any) -> None:
    pid = client.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "R"}]}).json()[
        "id"
    ]
    assert client.get(f"/fhir/Patient/{pid}/_history/1/$receipt").status_code == 404  # not sequenced yet
    _ledger(app).sequence_all()
    r = client.get(f"/fhir/Patient/{pid}/_history/1/$receipt")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    _, entry = check_receipt(r.text, log=_ledger(app).verifier)
    assert entry.startswith(b"medweave-version/v1\n") and pid.encode() not in entry
    assert client.get(f"/fhir/Patient/{pid}/_history/9/$receipt").status_code == 404
    unauthenticated = TestClient(app).get(f"/fhir/Patient/{pid}/_history/1/$receipt")
    assert unauthenticated.status_code == 401


def test_access_history_is_verified_and_receipts_download(browser: TestClient, clinic: Clinic) -> None:
    sign_in(browser, clinic, "alice")
    browser.get("/me")  # reads alice's record: events about her
    ledger = _ledger(clinic.app)
    ledger.sequence_all()
    html = browser.get("/me").text.split('id="access-history"')[1]
    assert "Verified" in html and "NOT verified" not in html
    seqs = [int(part.split("/", 1)[0]) for part in html.split('href="/me/access/')[1:]]
    assert seqs
    r = browser.get(f"/me/access/{seqs[0]}/receipt")
    assert r.status_code == 200
    _, entry = check_receipt(r.text, log=ledger.verifier)
    assert entry.startswith(b"medweave-audit/v1\n")
    assert leaf_hash(entry) == ledger.entry(kind="audit", ref=str(seqs[0])).leaf_hash
    audit = clinic.records.trail.audit
    assert audit is not None
    bobs = [e.seq for e in audit.since(0) if e.patient_id == clinic.other_id]
    assert bobs, "the seeded records of bob left audit events"
    assert browser.get(f"/me/access/{bobs[0]}/receipt").status_code == 404  # not hers
    assert browser.get("/me/access/999999/receipt").status_code == 404
