"""The ledger on SQLite and PostgreSQL: sequencing, checkpoints, proofs, erasure, tampering, and
publishing (a witness that hangs or is down holds up neither sealing nor the other witnesses)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from sqlalchemy import Engine, text

from medweave.audit import Actor, AuditService, rest_event
from medweave.audit.service import read_one
from medweave.ledger import selfcheck, store
from medweave.ledger.checkpoint import Checkpoint, open_checkpoint
from medweave.ledger.commitment import audit_leaf, version_leaf
from medweave.ledger.compact import CompactRange
from medweave.ledger.hashing import leaf_hash
from medweave.ledger.note import Signer, generate, parse_skey, parse_vkey, sign
from medweave.ledger.service import LedgerCorrupt, LedgerService, Sequencer
from medweave.ledger.sources import Salts, SourceRows, source
from medweave.ledger.verify import verify_consistency, verify_inclusion
from medweave.ledger.witnessing import Cosigner, Witness
from medweave.records import feed
from medweave.records.service import RecordService
from medweave.security.principal import Principal

OPERATOR = Principal.internal("test")


@pytest.fixture(scope="module")
def log_key() -> Signer:
    skey, _ = generate("test.example/ledger")
    return parse_skey(skey)


@pytest.fixture
def ledger(records: RecordService, log_key: Signer) -> LedgerService:
    return LedgerService(records.engine, master=records.master, signer=log_key, batch=50)


def patient(records: RecordService, family: str) -> str:
    body = {"resourceType": "Patient", "name": [{"family": family, "given": ["Ada"]}]}
    return records.create(principal=OPERATOR, res_type="Patient", data=body).res_id


def observation(records: RecordService, pid: str, value: float) -> str:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": value, "unit": "/min"},
    }
    return records.create(principal=OPERATOR, res_type="Observation", data=body).res_id


def clinic(records: RecordService) -> list[str]:
    """Two patients with a few versions each, plus their audit trail."""
    pids = [patient(records, "Lovelace"), patient(records, "Hopper")]
    for n, pid in enumerate(pids):
        oid = observation(records, pid, 60 + n)
        records.read(principal=OPERATOR, res_type="Observation", res_id=oid)
        current = records.read(principal=OPERATOR, res_type="Patient", res_id=pid).body or {}
        records.update(
            principal=OPERATOR, res_type="Patient", res_id=pid, data={**current, "gender": "female"}
        )
    records.delete(principal=OPERATOR, res_type="Observation", res_id=oid)
    return pids


def check(ledger: LedgerService) -> selfcheck.Report:
    return selfcheck.check(ledger.engine, master=ledger.master, log=ledger.verifier, tag_key=ledger.tag_key)


def test_sequencing_commits_every_audit_row_and_version(
    records: RecordService, ledger: LedgerService
) -> None:
    clinic(records)
    before = check(ledger)  # nothing committed yet: every row is queued, which is no fault
    assert before.ok and before.entries == 0 and before.queued_versions == 7 and before.queued_audit > 0
    total = ledger.sequence_all()
    with records.engine.connect() as conn:
        audit_rows = conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
        versions = conn.execute(text("SELECT count(*) FROM resource_versions")).scalar_one()
    # Sequencing itself is not audited, and audit rows written after the last batch wait.
    assert total == audit_rows + versions == ledger.size()
    report = check(ledger)
    assert report.ok, report.problems
    assert (report.entries, report.queued_versions, report.queued_audit) == (total, 0, 0)
    assert report.checkpoints >= total // 50  # one signed checkpoint per batch


def test_checkpoints_sign_the_tree_and_proofs_verify(records: RecordService, ledger: LedgerService) -> None:
    clinic(records)
    ledger.sequence()
    first = ledger.latest()
    clinic(records)
    ledger.sequence_all()
    latest = ledger.latest()
    assert first is not None and latest is not None and latest.size > first.size
    cp, _ = open_checkpoint(latest.note, log=ledger.verifier)
    assert (cp.origin, cp.size, cp.root) == (ledger.origin, latest.size, latest.root)
    with ledger.engine.connect() as conn:
        leaves = [e.leaf_hash for e in store.entries(conn)]
    for index in (0, 1, first.size - 1, first.size, latest.size - 1):
        proof = ledger.inclusion_proof(index=index, size=latest.size)
        verify_inclusion(index, latest.size, leaves[index], proof, latest.root)
    proof = ledger.consistency_proof(old=first.size, new=latest.size)
    verify_consistency(first.size, latest.size, proof, first.root, latest.root)


def test_a_version_leaf_commits_to_the_version_and_carries_no_phi(
    records: RecordService, ledger: LedgerService
) -> None:
    pid = patient(records, "Zyxwvut")
    ledger.sequence_all()
    entry = ledger.entry(kind="version", ref=f"Patient/{pid}/_history/1")
    with ledger.engine.connect() as conn:
        facts = feed.version(conn, res_type="Patient", res_id=pid, version_id=1)
        assert facts is not None
        from medweave.records import keys

        salt = keys.ledger_salts(conn, master=ledger.master, patient_ids=[pid])[pid]
    assert salt is not None and entry.salt is None  # the patient's salt lives with their key
    commitment = version_leaf(facts, salt=salt)
    assert leaf_hash(commitment) == entry.leaf_hash
    assert pid.encode() not in commitment and b"Zyxwvut" not in commitment and b"Patient" not in commitment


def test_after_crypto_shredding_the_log_verifies_but_cannot_link(
    records: RecordService, ledger: LedgerService
) -> None:
    pids = clinic(records)
    ledger.sequence_all()
    records.erase_patient(principal=OPERATOR, patient_id=pids[0])
    ledger.sequence_all()
    report = check(ledger)
    assert report.ok, report.problems
    assert report.unlinkable > 0


def test_sources_read_together_are_the_sources_read_one_by_one(
    records: RecordService, ledger: LedgerService
) -> None:
    """verify reads sources in batches; receipts read one. Both must see the same commitment."""
    pids = clinic(records)
    ledger.sequence_all()
    records.erase_patient(principal=OPERATOR, patient_id=pids[1])  # some entries become unlinkable
    ledger.sequence_all()
    with records.engine.connect() as conn:
        entries = list(store.entries(conn))
        one_by_one = [source(conn, e, Salts(conn, records.master)) for e in entries]
        salts = Salts(conn, records.master)
        rows = SourceRows.read(conn, entries, salts)
        together = [source(conn, e, salts, rows) for e in entries]
    assert together == one_by_one
    assert {e.kind for e in entries} == {"audit", "version"}
    assert any(s.commitment is not None for s in together)
    assert any(s.commitment is None for s in together)


def test_an_audit_row_of_no_patient_keeps_its_own_salt(engine: Engine, ledger: LedgerService) -> None:
    with AuditService(engine) as audit:
        audit.record(
            rest_event("search", status=200, actor=Actor("u"), resource_type="Patient", query="name=x")
        )
    ledger.sequence_all()
    entry = ledger.entry(kind="audit", ref="1")
    assert entry.salt is not None and len(entry.salt) == 32
    assert check(ledger).ok


# -- tampering: each edit is found, and the first bad index named --------------------------------


def _entries(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(store.entries(conn))


def _run(engine: Engine, sql: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


@pytest.fixture
def sealed(records: RecordService, ledger: LedgerService) -> list[Any]:
    clinic(records)
    clinic(records)
    ledger.sequence_all()
    assert check(ledger).ok
    return _entries(ledger.engine)


def _first(entries: list[Any], kind: str, skip: int = 0) -> Any:
    return [e for e in entries if e.kind == kind][skip]


def test_tampering_with_an_audit_row_is_found(sealed: list[Any], ledger: LedgerService) -> None:
    target = _first(sealed, "audit", 3)
    _run(ledger.engine, "UPDATE audit_log SET outcome = 4 WHERE seq = :s", s=int(target.ref))
    report = check(ledger)
    assert not report.ok and report.first_bad_index == target.idx


@pytest.mark.parametrize(
    "column, value",
    [
        ("user_ref", "Practitioner/innocent"),
        ("entity_type", "Consent"),
        ("action", "D"),
        ("patient_id", "nobody"),
    ],
)
def test_editing_what_the_access_history_shows_is_found(
    sealed: list[Any], ledger: LedgerService, column: str, value: str
) -> None:
    """The indexed columns are what "who looked at my record" shows: they must agree with the
    AuditEvent the leaf commits to, and an event moved to another patient must show."""
    target = next(e for e in sealed if e.kind == "audit" and e.patient_tag is not None)
    _run(ledger.engine, f"UPDATE audit_log SET {column} = :v WHERE seq = :s", v=value, s=int(target.ref))
    report = check(ledger)
    assert not report.ok and report.first_bad_index == target.idx, report.problems


def test_moving_an_event_to_an_erased_patient_is_found(
    records: RecordService, sealed: list[Any], ledger: LedgerService
) -> None:
    """Body and columns both retargeted to a patient whose key is gone: the leaf cannot be
    recomputed any more, but the entry's patient tag still names the original patient."""
    gone = patient(records, "Erased")
    records.erase_patient(principal=OPERATOR, patient_id=gone)
    ledger.sequence_all()
    target = next(e for e in sealed if e.kind == "audit" and e.patient_tag is not None)
    with ledger.engine.begin() as conn:
        row = conn.execute(
            text("SELECT patient_id, body FROM audit_log WHERE seq = :s"), {"s": int(target.ref)}
        ).one()
        conn.execute(
            text("UPDATE audit_log SET patient_id = :p, body = :b WHERE seq = :s"),
            {
                "p": gone,
                "b": row.body.replace(f"Patient/{row.patient_id}", f"Patient/{gone}"),
                "s": int(target.ref),
            },
        )
    report = check(ledger)
    assert not report.ok and report.first_bad_index == target.idx, report.problems


def test_deleting_every_checkpoint_is_found_and_stops_sequencing(
    records: RecordService, sealed: list[Any], ledger: LedgerService
) -> None:
    _run(ledger.engine, "DELETE FROM ledger_checkpoints")
    report = check(ledger)
    assert not report.ok and any("no checkpoint signed" in p for p in report.problems)
    patient(records, "More")  # new entries wait...
    with pytest.raises(LedgerCorrupt):  # ...but the log will not sign on over a tree it cannot vouch for
        ledger.sequence()


def test_a_pinned_checkpoint_catches_a_rewritten_log(sealed: list[Any], ledger: LedgerService) -> None:
    """Checkpoints kept elsewhere (a witness's copy) still hold when the stored ones are rewritten."""
    latest = ledger.latest()
    assert latest is not None
    pinned = [latest.note]
    assert selfcheck.check(
        ledger.engine, master=ledger.master, log=ledger.verifier, tag_key=ledger.tag_key, pinned=pinned
    ).ok
    # What a witness holds if the operator (with the log key) signed another tree of that size:
    forged = sign(Checkpoint(ledger.origin, latest.size, bytes(32)).text(), [ledger.signer])
    report = selfcheck.check(
        ledger.engine, master=ledger.master, log=ledger.verifier, tag_key=ledger.tag_key, pinned=[forged]
    )
    assert not report.ok and any("not the pinned one" in p for p in report.problems)


def test_deleting_an_audit_row_is_found(sealed: list[Any], ledger: LedgerService) -> None:
    target = _first(sealed, "audit", 2)
    _run(ledger.engine, "DELETE FROM audit_log WHERE seq = :s", s=int(target.ref))
    report = check(ledger)
    assert not report.ok and report.first_bad_index == target.idx


def test_editing_a_stored_version_is_found(sealed: list[Any], ledger: LedgerService) -> None:
    target = _first(sealed, "version", 1)
    rtype, rid, _, vid = target.ref.split("/")
    _run(
        ledger.engine,
        "UPDATE resource_versions SET method = 'PUT' WHERE res_type = :t AND res_id = :i AND version_id = :v",
        t=rtype,
        i=rid,
        v=int(vid),
    )
    report = check(ledger)
    assert not report.ok and report.first_bad_index == target.idx


def test_editing_a_leaf_is_found(sealed: list[Any], ledger: LedgerService) -> None:
    target = sealed[7]
    _run(ledger.engine, "UPDATE ledger_entries SET leaf_hash = :h WHERE idx = :i", h=b"\x01" * 32, i=7)
    report = check(ledger)
    assert not report.ok and report.first_bad_index == target.idx


def test_deleting_an_entry_is_found(sealed: list[Any], ledger: LedgerService) -> None:
    _run(ledger.engine, "DELETE FROM ledger_entries WHERE idx = 5")
    report = check(ledger)
    assert not report.ok and report.first_bad_index == 5


def test_reordering_entries_is_found(sealed: list[Any], ledger: LedgerService) -> None:
    """Entries 4 and 9 trade places, rows whole: each still matches its own source."""
    for old, new in ((4, 10**9), (9, 4), (10**9, 9)):
        _run(ledger.engine, "UPDATE ledger_entries SET idx = :new WHERE idx = :old", old=old, new=new)
    report = check(ledger)
    assert not report.ok and report.first_bad_index == 4


def test_truncating_the_log_is_found(sealed: list[Any], ledger: LedgerService) -> None:
    keep = len(sealed) - 6
    _run(ledger.engine, "DELETE FROM ledger_entries WHERE idx >= :n", n=keep)
    report = check(ledger)
    assert not report.ok and report.first_bad_index == keep


def test_truncating_the_audit_trail_is_found(sealed: list[Any], ledger: LedgerService) -> None:
    last_audit = max(int(e.ref) for e in sealed if e.kind == "audit")
    _run(ledger.engine, "DELETE FROM audit_log WHERE seq > :n", n=last_audit - 3)
    report = check(ledger)
    first = min(e.idx for e in sealed if e.kind == "audit" and int(e.ref) > last_audit - 3)
    assert not report.ok and report.first_bad_index == first


def test_a_forged_entry_in_a_consistent_tree_is_caught_by_the_signed_root(
    records: RecordService, log_key: Signer
) -> None:
    """An operator who edits an event of no patient (whose salt is stored), recomputes its leaf
    AND rewrites every stored node to match still cannot forge the signed checkpoints: the report
    names the first index after the last checkpoint that held."""
    ledger = LedgerService(records.engine, master=records.master, signer=log_key, batch=8)
    audit = records.trail.audit
    assert audit is not None
    for n in range(30):
        audit.record(
            rest_event("search", status=200, actor=Actor(f"user{n}"), resource_type="Patient", query="x")
        )
    ledger.sequence_all()
    entries = _entries(ledger.engine)
    target = entries[21]
    assert target.salt is not None
    with ledger.engine.begin() as conn:  # outcome and body together, so the row agrees with itself
        body = conn.execute(
            text("SELECT body FROM audit_log WHERE seq = :s"), {"s": int(target.ref)}
        ).scalar_one()
        assert '"outcome":"0"' in body
        conn.execute(
            text("UPDATE audit_log SET outcome = 4, body = :b WHERE seq = :s"),
            {"b": body.replace('"outcome":"0"', '"outcome":"4"'), "s": int(target.ref)},
        )
    with ledger.engine.connect() as conn:
        forged_record = read_one(conn, int(target.ref))
    assert forged_record is not None
    forged = leaf_hash(audit_leaf(forged_record, salt=target.salt))
    tree = CompactRange()
    nodes = [n for e in entries for n in tree.append(forged if e.idx == target.idx else e.leaf_hash)]
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_nodes"))
        store.add_nodes(conn, nodes)
        conn.execute(text("UPDATE ledger_entries SET leaf_hash = :h WHERE idx = :i"), {"h": forged, "i": 21})
    report = check(ledger)
    assert not report.ok and report.first_bad_index == 16  # checkpoints at 8, 16, 24, 30


def test_a_remembered_salt_is_forgotten_when_the_patient_is_erased(records: RecordService) -> None:
    from medweave.records import keys

    pid = patient(records, "Forgetme")
    seen: keys.SaltCache = {}
    with records.engine.connect() as conn:
        salt = keys.ledger_salts(conn, master=records.master, patient_ids=[pid], cache=seen)[pid]
        again = keys.ledger_salts(conn, master=records.master, patient_ids=[pid], cache=seen)[pid]
    assert salt is not None and salt == again and pid in seen
    records.erase_patient(principal=OPERATOR, patient_id=pid)
    with records.engine.connect() as conn:
        assert keys.ledger_salts(conn, master=records.master, patient_ids=[pid], cache=seen)[pid] is None
    assert pid not in seen


# --- Publishing (witnesses, anchoring) never holds up sealing ---------------------------------


def all_sealed(ledger: LedgerService) -> bool:
    report = selfcheck.check(ledger.engine, master=ledger.master, log=ledger.verifier, tag_key=ledger.tag_key)
    return report.ok and report.entries > 0 and report.queued_audit == 0 and report.queued_versions == 0


def until(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_a_hanging_witness_does_not_hold_up_sealing(records: RecordService, ledger: LedgerService) -> None:
    release, entered = threading.Event(), threading.Event()

    def after() -> None:  # a witness that never answers (until the test ends)
        entered.set()
        release.wait(60)

    sequencer = Sequencer(ledger, interval=0.02, after=after, retry=0.1).start()
    try:
        patient(records, "Lovelace")
        assert entered.wait(10), "the publisher never ran"
        patient(records, "Hopper")  # written while the publisher hangs
        assert until(lambda: all_sealed(ledger), 10), "sealing waited for the witness"
    finally:
        release.set()
        sequencer.stop()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def test_a_witness_that_is_down_is_asked_again_after_a_growing_wait(
    records: RecordService, ledger: LedgerService
) -> None:
    patient(records, "Lovelace")
    ledger.sequence_all()
    _, vkey = generate("down.example", kind="cosignature")
    _, other_vkey = generate("also-down.example", kind="cosignature")
    down = Witness(f"http://127.0.0.1:{closed_port()}", parse_vkey(vkey))
    also = Witness(f"http://127.0.0.1:{closed_port()}", parse_vkey(other_vkey))
    now = [1000.0]
    cosign = Cosigner(ledger, [down, also], first=5, most=12, clock=lambda: now[0])

    assert all(o.startswith("failed") for o in cosign().values())  # asked, refused connection
    now[0] += 1
    assert cosign()[down.name] == "waiting: asked again in 4 s"
    now[0] += 4
    assert cosign()[down.name].startswith("failed")  # asked again after 5 s; next wait 10 s
    now[0] += 9
    assert cosign()[down.name].startswith("waiting")
    now[0] += 1
    assert cosign()[down.name].startswith("failed")  # next wait capped at 12 s
    now[0] += 11
    assert cosign()[also.name].startswith("waiting")
    now[0] += 1
    assert cosign()[also.name].startswith("failed")
