"""The witness's judgement of add-checkpoint requests (https://c2sp.org/tlog-witness), pure."""

from __future__ import annotations

import pytest

from medweave.ledger.checkpoint import Checkpoint, verify_cosignature
from medweave.ledger.compact import CompactRange
from medweave.ledger.hashing import leaf_hash
from medweave.ledger.note import Signer, generate, parse_skey, sign, split_signatures
from medweave.ledger.proof import consistency_proof
from medweave.ledger.witness import Known, StaleSize, judge
from medweave.ledger.witness_protocol import AddCheckpoint, ProtocolError, Status

LOG_SKEY, LOG_VKEY = generate("log.example/ledger")
WITNESS = parse_skey(generate("witness.example", kind="cosignature")[0])
NOW = 1_700_000_000


class Tree:
    """A log of leaves ``prefix0, prefix1, ...`` with every complete node kept, as storage keeps them."""

    def __init__(self, prefix: str = "entry", key: Signer | None = None) -> None:
        self.range = CompactRange()
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.roots: dict[int, bytes] = {0: self.range.root()}
        self.prefix = prefix
        self.key = key or parse_skey(LOG_SKEY)

    def grow(self, to: int) -> Tree:
        while self.range.size < to:
            self.nodes.update(self.range.append(leaf_hash(f"{self.prefix}{self.range.size}".encode())))
            self.roots[self.range.size] = self.range.root()
        return self

    def note(self, size: int) -> str:
        return sign(Checkpoint(self.key.name, size, self.roots[size]).text(), [self.key])

    def request(self, old: int, size: int) -> AddCheckpoint:
        proof = (
            consistency_proof(old, size, lambda ids: [self.nodes[i] for i in ids]) if 0 < old < size else []
        )
        return AddCheckpoint(old, tuple(proof), self.note(size))


def test_a_first_checkpoint_is_cosigned_from_size_zero() -> None:
    tree = Tree().grow(5)
    done = judge(tree.request(0, 5), known=Known(LOG_VKEY, 0, None), signer=WITNESS, timestamp=NOW)
    assert (done.origin, done.size, done.root) == ("log.example/ledger", 5, tree.roots[5])
    text = split_signatures(tree.note(5))[0]
    assert verify_cosignature(text, done.line, WITNESS.verifier()) == NOW


def test_a_grown_log_is_cosigned_with_a_consistency_proof() -> None:
    tree = Tree().grow(13)
    done = judge(tree.request(5, 13), known=Known(LOG_VKEY, 5, tree.roots[5]), signer=WITNESS, timestamp=NOW)
    assert done.size == 13


def test_the_same_checkpoint_again_is_cosigned_again() -> None:
    tree = Tree().grow(8)
    assert judge(tree.request(8, 8), known=Known(LOG_VKEY, 8, tree.roots[8]), signer=WITNESS, timestamp=NOW)


def test_a_rewritten_history_is_refused() -> None:
    real, forged = Tree().grow(8), Tree("forged").grow(12)  # same key, other leaves
    known = Known(LOG_VKEY, 8, real.roots[8])
    with pytest.raises(ProtocolError) as info:
        judge(forged.request(8, 12), known=known, signer=WITNESS, timestamp=NOW)
    assert info.value.status == Status.UNPROCESSABLE
    with pytest.raises(ProtocolError) as info:  # a split view: same size, another root
        judge(forged.grow(8).request(8, 8), known=known, signer=WITNESS, timestamp=NOW)
    assert info.value.status == Status.CONFLICT and not isinstance(info.value, StaleSize)


def test_a_stale_old_size_gets_the_witness_size() -> None:
    tree = Tree().grow(20)
    with pytest.raises(StaleSize) as info:
        judge(tree.request(5, 20), known=Known(LOG_VKEY, 13, tree.roots[13]), signer=WITNESS, timestamp=NOW)
    assert info.value.status == Status.CONFLICT and info.value.size == 13


def test_unknown_logs_and_keys_are_refused() -> None:
    tree = Tree().grow(3)
    with pytest.raises(ProtocolError) as info:
        judge(tree.request(0, 3), known=None, signer=WITNESS, timestamp=NOW)
    assert info.value.status == Status.NOT_FOUND
    impostor = Tree(key=parse_skey(generate("log.example/ledger")[0])).grow(3)  # same name, other key
    with pytest.raises(ProtocolError) as info:
        judge(impostor.request(0, 3), known=Known(LOG_VKEY, 0, None), signer=WITNESS, timestamp=NOW)
    assert info.value.status == Status.FORBIDDEN


def test_malformed_requests_are_bad_requests() -> None:
    tree = Tree().grow(4)
    with pytest.raises(ProtocolError) as info:  # old size beyond the checkpoint
        judge(
            AddCheckpoint(9, (), tree.note(4)), known=Known(LOG_VKEY, 9, None), signer=WITNESS, timestamp=NOW
        )
    assert info.value.status == Status.BAD_REQUEST
    with pytest.raises(ProtocolError) as info:  # a proof from old size 0
        judge(
            AddCheckpoint(0, (bytes(32),), tree.note(4)),
            known=Known(LOG_VKEY, 0, None),
            signer=WITNESS,
            timestamp=NOW,
        )
    assert info.value.status == Status.UNPROCESSABLE
