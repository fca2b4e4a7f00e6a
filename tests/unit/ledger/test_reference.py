"""Our proofs against a naive RFC 9162 reference, on one tree of 100,000 leaves.

The reference below is the RFC text transcribed, with hashlib and nothing from medweave: MTH
(§2.1.1), PATH (§2.1.3.1) and SUBPROOF/PROOF (§2.1.4.1), recursive, memoising subtree hashes by
(start, size) so that large trees stay cheap. The tree is built once per module through
CompactRange.append, keeping every node it reports complete, which is what storage will do;
proof.py reads proofs from that store and verify.py must accept them and reject any tampering.

Tampering with a size is subtle: a verifier only sees the *shape* of a proof (which side each
hash joins on), and different sizes can share a shape — the inclusion proof of leaf 0 at size 3
also verifies, as is, at size 4. So a tampered size must be rejected exactly when the reference
gives it a different shape.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from medweave.ledger.compact import CompactRange, NodeID, frontier_ids
from medweave.ledger.proof import consistency_proof, inclusion_proof
from medweave.ledger.verify import (
    ProofError,
    verify_consistency,
    verify_inclusion,
    verify_witness_consistency,
)

N = 100_000


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _split(n: int) -> int:
    """k, the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class Reference:
    """RFC 9162 §2.1 over D = ``leaves`` (already leaf-hashed); D[start:start+n] is (start, n)."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves
        self.memo: dict[tuple[int, int], bytes] = {}

    def mth(self, start: int, n: int) -> bytes:
        if n == 0:
            return _sha(b"")
        if n == 1:
            return self.leaves[start]
        found = self.memo.get((start, n))
        if found is None:
            k = _split(n)
            found = _sha(b"\x01" + self.mth(start, k) + self.mth(start + k, n - k))
            self.memo[(start, n)] = found
        return found

    def path(self, m: int, start: int, n: int) -> list[bytes]:
        """PATH(m, D[n]) for the subtree (start, n)."""
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self.path(m, start, k), self.mth(start + k, n - k)]
        return [*self.path(m - k, start + k, n - k), self.mth(start, k)]

    def subproof(self, m: int, start: int, n: int, b: bool) -> list[bytes]:
        """SUBPROOF(m, D[n], b) for the subtree (start, n)."""
        if m == n:
            return [] if b else [self.mth(start, m)]
        k = _split(n)
        if m <= k:
            return [*self.subproof(m, start, k, b), self.mth(start + k, n - k)]
        return [*self.subproof(m - k, start + k, n - k, False), self.mth(start, k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D[n]) = SUBPROOF(m, D[n], true), for 0 < m <= n."""
        return self.subproof(m, 0, n, True)


def path_shape(m: int, n: int) -> tuple[str, ...] | None:
    """Which side each PATH(m, D[n]) hash joins on: all a verifier can tell of (m, n)."""
    if not 0 <= m < n:
        return None
    if n == 1:
        return ()
    k = _split(n)
    if m < k:
        return (*(path_shape(m, k) or ()), "right")
    return (*(path_shape(m - k, n - k) or ()), "left")


def proof_shape(m: int, n: int, b: bool = True) -> tuple[str, ...] | None:
    """As :func:`path_shape` for PROOF(m, D[n]); "old" marks the old subtree's own hash."""
    if not 0 < m <= n:
        return None
    if m == n:
        return () if b else ("old",)
    k = _split(n)
    if m <= k:
        return (*(proof_shape(m, k, b) or ()), "right")
    return (*(proof_shape(m - k, n - k, False) or ()), "left")


@cache
def _tree() -> tuple[Reference, dict[NodeID, bytes], CompactRange]:
    leaves = [_sha(b"\x00" + i.to_bytes(8, "big")) for i in range(N)]
    store: dict[NodeID, bytes] = {}
    cr = CompactRange()
    for leaf in leaves:
        store.update(cr.append(leaf))
    return Reference(leaves), store, cr


def _fetch(ids: Sequence[NodeID]) -> list[bytes]:
    store = _tree()[1]
    return [store[node] for node in ids]


def _flip(value: bytes, bit: int) -> bytes:
    bit %= len(value) * 8
    return value[: bit // 8] + bytes([value[bit // 8] ^ (1 << (bit % 8))]) + value[bit // 8 + 1 :]


def _edge_sizes() -> list[int]:
    return sorted({s for k in range(17) for s in (2**k - 1, 2**k, 2**k + 1) if 0 < s <= N} | {N})


sizes = st.one_of(st.integers(min_value=1, max_value=N), st.sampled_from(_edge_sizes()))
slow = settings(deadline=None, max_examples=300)


def _tampered(data: st.DataObject, value: int) -> int:
    """Another size: nearby, a transparency-dev probe's (x2, /2, xor), or anywhere."""
    return data.draw(
        st.one_of(
            st.integers(min_value=value - 3, max_value=value + 3),
            st.sampled_from([value * 2, value // 2, value ^ 1, value ^ 2]),
            st.integers(min_value=0, max_value=2 * N),
        ).filter(lambda v: v != value)
    )


def test_store_holds_every_complete_node_once() -> None:
    ref, store, cr = _tree()
    assert len(store) == sum(N >> level for level in range(N.bit_length()))
    assert all((index + 1) << level <= N for level, index in store)
    assert cr.size == N and cr.root() == ref.mth(0, N)


@slow
@given(st.integers(min_value=0, max_value=N.bit_length() - 1), st.data())
def test_stored_nodes_are_subtree_hashes(level: int, data: st.DataObject) -> None:
    ref, store, _ = _tree()
    index = data.draw(st.integers(min_value=0, max_value=(N >> level) - 1))
    assert store[(level, index)] == ref.mth(index << level, 1 << level)


@slow
@given(sizes)
def test_compact_range_root_at_any_size(size: int) -> None:
    ref, store, _ = _tree()
    cr = CompactRange(size, [store[node] for node in frontier_ids(size)])
    assert cr.root() == ref.mth(0, size)


@slow
@given(sizes, st.data())
def test_inclusion_proofs_match_the_rfc_and_verify(size: int, data: st.DataObject) -> None:
    ref, _, _ = _tree()
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = inclusion_proof(index, size, _fetch)
    assert proof == ref.path(index, 0, size)
    verify_inclusion(index, size, ref.leaves[index], proof, ref.mth(0, size))


@slow
@given(sizes, st.data())
def test_consistency_proofs_match_the_rfc_and_verify(size2: int, data: st.DataObject) -> None:
    ref, _, _ = _tree()
    size1 = data.draw(st.one_of(st.integers(min_value=1, max_value=size2), st.sampled_from([1, size2])))
    proof = consistency_proof(size1, size2, _fetch)
    assert proof == ref.proof(size1, size2)
    verify_consistency(size1, size2, proof, ref.mth(0, size1), ref.mth(0, size2))
    verify_witness_consistency(size1, size2, proof, ref.mth(0, size1), ref.mth(0, size2))
    assert consistency_proof(0, size2, _fetch) == []
    verify_witness_consistency(0, size2, [], None, ref.mth(0, size2))


@slow
@given(sizes, st.data())
def test_tampered_inclusion_is_rejected(size: int, data: st.DataObject) -> None:
    ref, _, _ = _tree()
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    leaf, root = ref.leaves[index], ref.mth(0, size)
    proof = inclusion_proof(index, size, _fetch)
    bit = data.draw(st.integers(min_value=0, max_value=255))

    def rejected(i: int, n: int, lf: bytes, pf: list[bytes], rt: bytes) -> bool:
        try:
            verify_inclusion(i, n, lf, pf, rt)
        except ProofError:
            return True
        return False

    assert rejected(index, size, _flip(leaf, bit), proof, root)
    assert rejected(index, size, leaf, proof, _flip(root, bit))
    for i in range(len(proof)):
        assert rejected(index, size, leaf, [*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]], root)
    assert rejected(index, size, leaf, [*proof, root], root)
    if proof:
        assert rejected(index, size, leaf, proof[:-1], root)
    if len(set(proof)) > 1:
        assert rejected(index, size, leaf, proof[1:] + proof[:1], root)
    new_index = data.draw(st.integers(min_value=-1, max_value=size + 1).filter(lambda v: v != index))
    new_size = _tampered(data, size)
    for i, n in ((new_index, size), (index, new_size), (new_index, new_size)):
        same_shape = path_shape(i, n) == path_shape(index, size)
        assert rejected(i, n, leaf, proof, root) != same_shape, (i, n)


@slow
@given(sizes, st.data())
def test_tampered_consistency_is_rejected(size2: int, data: st.DataObject) -> None:
    ref, _, _ = _tree()
    size1 = data.draw(st.integers(min_value=1, max_value=size2))
    root1, root2 = ref.mth(0, size1), ref.mth(0, size2)
    proof = consistency_proof(size1, size2, _fetch)
    bit = data.draw(st.integers(min_value=0, max_value=255))

    def rejected(m: int, n: int, pf: list[bytes], r1: bytes, r2: bytes) -> bool:
        try:
            verify_consistency(m, n, pf, r1, r2)
        except ProofError:
            return True
        return False

    assert rejected(size1, size2, proof, _flip(root1, bit), root2)
    assert rejected(size1, size2, proof, root1, _flip(root2, bit))
    for i in range(len(proof)):
        assert rejected(size1, size2, [*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]], root1, root2)
    assert rejected(size1, size2, [*proof, root1], root1, root2)
    if proof:
        assert rejected(size1, size2, proof[:-1], root1, root2)
        assert rejected(size1, size2, proof, root2, root1)
    new1, new2 = _tampered(data, size1), _tampered(data, size2)
    for m, n in ((new1, size2), (size1, new2), (new1, new2)):
        same_shape = proof_shape(m, n) == proof_shape(size1, size2)
        assert rejected(m, n, proof, root1, root2) != same_shape, (m, n)
