"""Compact ranges (transparency-dev/merkle compact/): vectors, then covering properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_vectors import cases, group
from medweave.ledger.compact import CompactRange, NodeID, decompose, frontier_ids, range_nodes
from medweave.ledger.hashing import EMPTY_ROOT, leaf_hash, root

sizes = st.integers(min_value=0, max_value=1 << 70)


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def _vector_leaves() -> list[bytes]:
    return [leaf_hash(bytes.fromhex(x)) for x in group("tree_8_leaves")["leaf_inputs_hex"]]


def _coverage(node: NodeID) -> tuple[int, int]:
    level, index = node
    return index << level, (index + 1) << level


def test_appends_reproduce_tree_8_roots_and_nodes() -> None:
    want_roots = {c["tree_size"]: c["root"] for c in cases("tree_8_leaves")}
    want_nodes = {
        (level, index): h
        for level, row in enumerate(group("tree_8_leaves")["node_hashes"])
        for index, h in enumerate(row)
    }
    cr = CompactRange()
    assert cr.root().hex() == want_roots[0]
    reported: dict[NodeID, str] = {}
    for n, leaf in enumerate(_vector_leaves(), start=1):
        for node, h in cr.append(leaf):
            assert node not in reported, f"{node} reported twice"
            reported[node] = h.hex()
        assert cr.size == n
        assert cr.root().hex() == want_roots[n]
    assert reported == want_nodes


def test_empty_range() -> None:
    cr = CompactRange()
    assert (cr.size, cr.hashes, cr.ids(), cr.root()) == (0, (), [], EMPTY_ROOT)


@given(st.integers(min_value=0, max_value=600))
def test_append_reports_leaf_then_completed_parents(n: int) -> None:
    leaves = _leaves(n + 1)
    cr = CompactRange()
    for leaf in leaves[:n]:
        cr.append(leaf)
    completed = cr.append(leaves[n])
    # One node per level from the leaf up, as long as the new node is a right child.
    assert [node for node, _ in completed] == [(level, n >> level) for level in range(len(completed))]
    assert len(completed) == 1 + ((n + 1) & -(n + 1)).bit_length() - 1
    for node, h in completed:
        begin, end = _coverage(node)
        assert h == root(leaves[begin:end])
    assert cr.root() == root(leaves)


@given(st.integers(min_value=0, max_value=600))
def test_hashes_are_the_frontier_subtree_roots(n: int) -> None:
    leaves = _leaves(n)
    cr = CompactRange()
    for leaf in leaves:
        cr.append(leaf)
    ids = frontier_ids(n)
    assert cr.ids() == ids
    assert list(cr.hashes) == [root(leaves[slice(*_coverage(node))]) for node in ids]


@given(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=300))
def test_reload_from_stored_nodes_then_continue(n: int, more: int) -> None:
    leaves = _leaves(n + more)
    store: dict[NodeID, bytes] = {}
    first = CompactRange()
    for leaf in leaves[:n]:
        store.update(first.append(leaf))
    reloaded = CompactRange(n, [store[node] for node in frontier_ids(n)])
    assert reloaded == first
    assert reloaded.root() == first.root()
    for leaf in leaves[n:]:
        assert reloaded.append(leaf) == first.append(leaf)
    assert reloaded.root() == root(leaves)


@given(sizes)
def test_frontier_is_perfect_subtrees_tiling_the_tree_largest_first(size: int) -> None:
    ids = frontier_ids(size)
    assert len(ids) == size.bit_count()
    assert [level for level, _ in ids] == sorted((lvl for lvl, _ in ids), reverse=True)
    pos = 0
    for node in ids:
        begin, end = _coverage(node)
        assert begin == pos
        pos = end
    assert pos == size


@given(sizes, sizes)
def test_range_nodes_tile_any_range_with_aligned_subtrees(a: int, b: int) -> None:
    begin, end = min(a, b), max(a, b)
    ids = range_nodes(begin, end)
    left, right = decompose(begin, end)
    assert len(ids) == left.bit_count() + right.bit_count()
    pos = begin
    for node in ids:
        node_begin, node_end = _coverage(node)
        assert node_begin == pos
        pos = node_end
    assert pos == end
    # Minimal: no two neighbours are siblings that could merge into their parent.
    for (l1, i1), (l2, i2) in itertools.pairwise(ids):
        assert not (l1 == l2 and i1 % 2 == 0 and i2 == i1 + 1)


@pytest.mark.parametrize(("begin", "end"), [(-1, 3), (5, 4)])
def test_range_nodes_rejects_bad_ranges(begin: int, end: int) -> None:
    with pytest.raises(ValueError, match="invalid range"):
        range_nodes(begin, end)


def test_constructor_rejects_inconsistent_state() -> None:
    h = leaf_hash(b"x")
    with pytest.raises(ValueError, match="subtree roots"):
        CompactRange(3, [h])
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange(1, [h[:31]])
    with pytest.raises(ValueError, match=">= 0"):
        CompactRange(-1, [])


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 33])
def test_append_rejects_wrong_hash_length(bad: bytes) -> None:
    cr = CompactRange()
    with pytest.raises(ValueError, match="32 bytes"):
        cr.append(bad)
    assert cr.size == 0
