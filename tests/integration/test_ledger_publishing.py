"""Publishing the log (asking witnesses, anchoring) never holds up sealing it, and a witness that
is down is asked again only after a back-off (SQLite and PostgreSQL)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from medweave.ledger import selfcheck
from medweave.ledger.note import Signer, generate, parse_skey, parse_vkey
from medweave.ledger.service import LedgerService, Sequencer
from medweave.ledger.witnessing import Cosigner, Witness
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


def patient(records: RecordService, family: str) -> None:
    records.create(
        principal=OPERATOR, res_type="Patient", data={"resourceType": "Patient", "name": [{"family": family}]}
    )


def sealed(ledger: LedgerService) -> bool:
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
        assert until(lambda: sealed(ledger), 10), "sealing waited for the witness"
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
