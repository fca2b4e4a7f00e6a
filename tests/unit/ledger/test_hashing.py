"""RFC 9162 §2.1.1 hashing against the transparency-dev/merkle vectors, and the MTH definition."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_vectors import cases, group
from medweave.ledger.hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash, root


def _leaves() -> list[bytes]:
    return [leaf_hash(bytes.fromhex(x)) for x in group("tree_8_leaves")["leaf_inputs_hex"]]


@pytest.mark.parametrize("case", cases("rfc6962_hasher"), ids=lambda c: c["desc"])
def test_rfc6962_hasher(case: dict[str, Any]) -> None:
    op = case["op"]
    if op == "empty_root":
        got = EMPTY_ROOT
    elif op == "leaf":
        got = leaf_hash(bytes.fromhex(case["input_hex"]))
    elif op == "node":
        got = node_hash(bytes.fromhex(case["left_hex"]), bytes.fromhex(case["right_hex"]))
    else:
        pytest.fail(f"unknown op {op!r} in the vectors")
    assert got.hex() == case["want"]


def test_tree_8_leaf_hashes() -> None:
    assert [h.hex() for h in _leaves()] == group("tree_8_leaves")["node_hashes"][0]


@pytest.mark.parametrize("case", cases("tree_8_leaves"), ids=lambda c: f"size{c['tree_size']}")
def test_tree_8_roots(case: dict[str, Any]) -> None:
    assert root(_leaves()[: case["tree_size"]]).hex() == case["root"]


def test_tree_8_node_hashes() -> None:
    leaves = _leaves()
    for level, row in enumerate(group("tree_8_leaves")["node_hashes"]):
        for index, want in enumerate(row):
            covered = leaves[index << level : (index + 1) << level]
            assert root(covered).hex() == want, (level, index)


def test_empty_root_is_sha256_of_nothing() -> None:
    assert root([]) == EMPTY_ROOT == hashlib.sha256().digest()


@given(st.binary(max_size=64))
def test_leaf_hash_is_prefixed_sha256(data: bytes) -> None:
    assert leaf_hash(data) == hashlib.sha256(b"\x00" + data).digest()
    assert len(leaf_hash(data)) == HASH_SIZE


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_node_hash_is_prefixed_sha256(left: bytes, right: bytes) -> None:
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


@given(st.integers(min_value=1, max_value=300))
def test_root_splits_at_the_largest_power_of_two_below_n(n: int) -> None:
    """MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n])), k < n <= 2k (RFC 9162 §2.1.1)."""
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    if n == 1:
        assert root(leaves) == leaves[0]
        return
    k = 1 << ((n - 1).bit_length() - 1)
    assert k < n <= 2 * k
    assert root(leaves) == node_hash(root(leaves[:k]), root(leaves[k:]))
