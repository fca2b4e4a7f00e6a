"""Anchoring witnessed checkpoints on an Ethereum-compatible chain: eth-tester with py-evm, in
process. Only a 32-byte digest goes on the chain; verify checks anchors against it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import text
from web3 import EthereumTesterProvider, Web3

from medweave.errors import ConfigurationError
from medweave.ledger import selfcheck
from medweave.ledger.anchor import Anchored, AnchorError, Chain, checkpoint_digest
from medweave.ledger.anchoring import anchor_latest
from medweave.ledger.note import generate, parse_skey
from medweave.ledger.service import LedgerService
from medweave.records.service import RecordService
from medweave.security.principal import Principal

HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def w3() -> Any:
    return Web3(EthereumTesterProvider())


def funded_chain(w3: Any) -> Chain:
    account = Account.create()
    tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": account.address, "value": 10**18})
    w3.eth.wait_for_transaction_receipt(tx)
    return Chain(w3, account)


@pytest.fixture
def ledger(records: RecordService) -> LedgerService:
    signer = parse_skey(generate("anchor.test/ledger")[0])
    return LedgerService(records.engine, master=records.master, signer=signer, quorum=0)


def _fill(records: RecordService, ledger: LedgerService, n: int = 3) -> None:
    for i in range(n):
        body = {"resourceType": "Patient", "name": [{"family": f"Anchor{i}"}]}
        records.create(principal=Principal.internal("test"), res_type="Patient", data=body)
    ledger.sequence_all()


def test_the_latest_checkpoint_is_anchored_and_checked(
    records: RecordService, ledger: LedgerService, w3: Any
) -> None:
    chain = funded_chain(w3)
    _fill(records, ledger)
    anchored = anchor_latest(ledger, chain, every=HOUR)
    latest = ledger.latest()
    assert anchored is not None and latest is not None and anchored.size == latest.size
    assert anchored.digest == checkpoint_digest(latest.note) and anchored.chain_id == w3.eth.chain_id
    tx = w3.eth.get_transaction(anchored.tx_hash)
    assert bytes(tx["input"]) == anchored.digest and len(bytes(tx["input"])) == 32  # nothing else on chain
    assert tx["to"] == tx["from"] == chain.address and tx["value"] == 0
    assert anchor_latest(ledger, chain, every=HOUR) is None  # nothing new
    _fill(records, ledger)
    assert anchor_latest(ledger, chain, every=HOUR) is None  # new, but an hour has not passed
    second = anchor_latest(ledger, chain, every=timedelta(0))
    assert second is not None and second.size > anchored.size
    report = selfcheck.check(
        ledger.engine, master=ledger.master, log=ledger.verifier, tag_key=ledger.tag_key, chain=chain
    )
    assert report.ok, report.problems
    assert (report.anchors, report.anchors_checked) == (2, 2)
    unchecked = selfcheck.check(
        ledger.engine, master=ledger.master, log=ledger.verifier, tag_key=ledger.tag_key
    )
    assert unchecked.ok and (unchecked.anchors, unchecked.anchors_checked) == (2, 0)


def test_an_unwitnessed_checkpoint_is_not_anchored(records: RecordService, w3: Any) -> None:
    signer = parse_skey(generate("anchor.test/ledger")[0])
    ledger = LedgerService(records.engine, master=records.master, signer=signer, quorum=1)
    _fill(records, ledger)
    latest = ledger.latest()
    assert latest is not None and not latest.witnessed
    assert anchor_latest(ledger, funded_chain(w3), every=HOUR) is None


def test_a_rewritten_anchor_or_checkpoint_is_found(
    records: RecordService, ledger: LedgerService, w3: Any
) -> None:
    chain = funded_chain(w3)
    _fill(records, ledger)
    anchored = anchor_latest(ledger, chain, every=HOUR)
    assert anchored is not None

    def check() -> selfcheck.Report:
        return selfcheck.check(
            ledger.engine, master=ledger.master, log=ledger.verifier, tag_key=ledger.tag_key, chain=chain
        )

    with ledger.engine.begin() as conn:  # the stored digest no longer names the checkpoint
        conn.execute(text("UPDATE ledger_anchors SET digest = :d"), {"d": bytes(32)})
    assert not check().ok
    with ledger.engine.begin() as conn:  # the digest is right, but the chain holds another one
        conn.execute(text("UPDATE ledger_anchors SET digest = :d"), {"d": anchored.digest})
        other = chain.anchor(size=anchored.size, digest=bytes(32))
        conn.execute(text("UPDATE ledger_anchors SET tx_hash = :t"), {"t": other.tx_hash})
    report = check()
    assert not report.ok and "another digest" in " ".join(report.problems)


def test_chain_checks_refuse_what_does_not_match(w3: Any) -> None:
    chain = funded_chain(w3)
    good = chain.anchor(size=7, digest=bytes(range(32)))
    chain.check(good)
    for wrong in (
        Anchored(7, bytes(32), good.chain_id, good.tx_hash, good.block),
        Anchored(7, good.digest, good.chain_id + 1, good.tx_hash, good.block),
        Anchored(7, good.digest, good.chain_id, good.tx_hash, good.block + 1),
        Anchored(7, good.digest, good.chain_id, "0x" + "00" * 32, good.block),
    ):
        with pytest.raises(AnchorError):
            chain.check(wrong)
    with pytest.raises(AnchorError):  # sent by someone else
        funded_chain(w3).check(good)
    with pytest.raises(ValueError):
        chain.anchor(size=7, digest=b"short")


def test_the_endpoint_may_sign_for_the_sender(w3: Any) -> None:
    """A key held in a KMS signs through the endpoint (eth_sendTransaction); eth-tester's accounts
    are unlocked, as a signing proxy's are."""
    chain = Chain(w3, sender=w3.eth.accounts[1])
    anchored = chain.anchor(size=3, digest=bytes(range(32)))
    chain.check(anchored)
    assert w3.eth.get_transaction(anchored.tx_hash)["from"] == w3.eth.accounts[1]


def test_chain_settings_errors_are_configuration_errors(tmp_path: Any) -> None:
    key = tmp_path / "chain.key"
    key.write_text("not a key")
    with pytest.raises(ConfigurationError, match="unusable"):
        Chain.connect("http://127.0.0.1:1", key_file=key)
    with pytest.raises(ConfigurationError, match="address"):
        Chain.connect("http://127.0.0.1:1", sender="not-an-address")


def test_one_process_sends_an_anchor_however_many_try(
    records: RecordService, ledger: LedgerService, w3: Any
) -> None:
    from datetime import UTC, datetime

    from medweave.ledger import store

    chain = funded_chain(w3)
    _fill(records, ledger)
    latest = ledger.latest()
    assert latest is not None
    with ledger.engine.begin() as conn:  # another process claimed it and is sending it
        assert store.claim_anchor(conn, size=latest.size, digest=bytes(32), stale_after=HOUR)
    assert anchor_latest(ledger, chain, every=HOUR) is None
    with ledger.engine.begin() as conn:  # that process died an hour ago: its claim is stale
        conn.execute(text("UPDATE ledger_anchors SET created = :t"), {"t": datetime(2000, 1, 1, tzinfo=UTC)})
    anchored = anchor_latest(ledger, chain, every=HOUR)
    assert anchored is not None and anchored.digest == checkpoint_digest(latest.note)
    report = selfcheck.check(
        ledger.engine, master=ledger.master, log=ledger.verifier, tag_key=ledger.tag_key, chain=chain
    )
    assert report.ok and report.anchors_checked == 1
