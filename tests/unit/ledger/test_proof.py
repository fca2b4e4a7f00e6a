"""Which nodes a proof needs (transparency-dev/merkle proof/proof.go): vectors and properties.

test_reference.py compares every proof with the RFC 9162 definitions on trees up to 100,000
leaves; this file holds the vectors, the node-selection invariants and the argument checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_vectors import cases, group
from medweave.ledger.compact import CompactRange, NodeID
from medweave.ledger.hashing import leaf_hash
from medweave.ledger.proof import (
    Nodes,
    consistency,
    consistency_proof,
    inclusion,
    inclusion_proof,
)
from medweave.ledger.verify import verify_consistency, verify_inclusion


def _tree_8_store() -> dict[NodeID, bytes]:
    g = group("tree_8_leaves")
    return {
        (level, index): bytes.fromhex(h)
        for level, row in enumerate(g["node_hashes"])
        for index, h in enumerate(row)
    }


def _fetcher(
    store: dict[NodeID, bytes], calls: list[Sequence[NodeID]] | None = None
) -> Callable[[Sequence[NodeID]], list[bytes]]:
    def fetch(ids: Sequence[NodeID]) -> list[bytes]:
        if calls is not None:
            calls.append(tuple(ids))
        return [store[node] for node in ids]

    return fetch


def _grown(n: int) -> tuple[CompactRange, dict[NodeID, bytes], list[bytes]]:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    cr, store = CompactRange(), {}
    roots = [cr.root()]
    for leaf in leaves:
        store.update(cr.append(leaf))
        roots.append(cr.root())
    return cr, store, roots


_SMALL = _grown(300)


@pytest.mark.parametrize(
    "case", cases("inclusion_proofs_reference"), ids=lambda c: f"leaf{c['leaf_index']}-size{c['tree_size']}"
)
def test_inclusion_reference_vectors(case: dict[str, Any]) -> None:
    proof = inclusion_proof(case["leaf_index"], case["tree_size"], _fetcher(_tree_8_store()))
    assert [h.hex() for h in proof] == case["proof"]


@pytest.mark.parametrize(
    "case", cases("consistency_proofs_reference"), ids=lambda c: f"{c['size1']}-to-{c['size2']}"
)
def test_consistency_reference_vectors(case: dict[str, Any]) -> None:
    proof = consistency_proof(case["size1"], case["size2"], _fetcher(_tree_8_store()))
    assert [h.hex() for h in proof] == case["proof"]


def _assert_complete_in(nodes: Nodes, size: int) -> None:
    for level, index in nodes.ids:
        assert (index + 1) << level <= size, f"({level}, {index}) is not complete at size {size}"
    assert len(set(nodes.ids)) == len(nodes.ids)
    assert 0 <= nodes.begin <= nodes.end <= len(nodes.ids)


@given(st.data())
def test_inclusion_names_complete_nodes_and_verifies(data: st.DataObject) -> None:
    _, store, roots = _SMALL
    size = data.draw(st.integers(min_value=1, max_value=300))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    nodes = inclusion(index, size)
    _assert_complete_in(nodes, size)
    # The ephemeral run holds the complete nodes covering the fork's sibling, low to high.
    if nodes.begin < nodes.end:
        run = nodes.ids[nodes.begin : nodes.end]
        assert [lvl for lvl, _ in run] == sorted(lvl for lvl, _ in run)
        ephem_level, ephem_index = nodes.ephem
        for level, idx in run:
            assert level < ephem_level and idx >> (ephem_level - level) == ephem_index
    proof = inclusion_proof(index, size, _fetcher(store))
    assert len(proof) == len(nodes.ids) - max(0, nodes.end - nodes.begin - 1)
    verify_inclusion(index, size, store[(0, index)], proof, roots[size])


@given(st.data())
def test_consistency_names_complete_nodes_and_verifies(data: st.DataObject) -> None:
    _, store, roots = _SMALL
    size2 = data.draw(st.integers(min_value=1, max_value=300))
    size1 = data.draw(st.integers(min_value=1, max_value=size2))
    nodes = consistency(size1, size2)
    _assert_complete_in(nodes, size2)
    proof = consistency_proof(size1, size2, _fetcher(store))
    verify_consistency(size1, size2, proof, roots[size1], roots[size2])


@given(st.integers(min_value=0, max_value=10**6))
def test_trivial_consistency_is_empty_and_fetches_nothing(size: int) -> None:
    calls: list[Sequence[NodeID]] = []
    assert consistency(size, size) == Nodes(())
    assert consistency(0, size) == Nodes(())
    assert consistency_proof(size, size, _fetcher({}, calls)) == []
    assert consistency_proof(0, size, _fetcher({}, calls)) == []
    assert calls == []


def test_one_fetch_per_proof() -> None:
    _, store, _ = _SMALL
    calls: list[Sequence[NodeID]] = []
    inclusion_proof(123, 300, _fetcher(store, calls))
    consistency_proof(77, 300, _fetcher(store, calls))
    assert [len(c) > 0 for c in calls] == [True, True]


@pytest.mark.parametrize(("index", "size"), [(0, 0), (5, 5), (6, 5), (-1, 5), (0, -1)])
def test_inclusion_rejects_bad_arguments(index: int, size: int) -> None:
    with pytest.raises(ValueError, match=r"out of range|>= 0"):
        inclusion(index, size)


@pytest.mark.parametrize(("size1", "size2"), [(5, 4), (1, 0), (-1, 3), (0, -1)])
def test_consistency_rejects_bad_arguments(size1: int, size2: int) -> None:
    with pytest.raises(ValueError, match=r"greater than|>= 0"):
        consistency(size1, size2)


def test_rehash_and_fetch_need_one_hash_per_node() -> None:
    nodes = inclusion(2, 7)
    with pytest.raises(ValueError, match="hashes for"):
        nodes.rehash([b"\x00" * 32] * (len(nodes.ids) + 1))
    with pytest.raises(ValueError, match="fetch returned"):
        inclusion_proof(2, 7, lambda ids: [b"\x00" * 32])
