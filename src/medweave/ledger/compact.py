"""Compact ranges: the O(log n) state from which a log appends and computes its root.

After transparency-dev/merkle ``compact/range.go`` and ``compact/nodes.go``, and Pavel
Kalinnikov's "Compact ranges" (transparency-dev/merkle ``docs/compact_ranges.md``). The leaves
[0, size) are covered by one perfect subtree per set bit of ``size``, largest on the left; a
compact range keeps only the roots of those subtrees. Appending a leaf merges the trailing
subtrees that now pair up, so each append hashes O(1) nodes amortised and O(log n) at worst.

Node IDs are ``(level, index)``: node (L, i) is the perfect subtree over leaves
[i * 2**L, (i + 1) * 2**L), so a leaf is (0, i). Every node a range reports as complete keeps its
hash for ever, which is what lets storage keep each one once and serve any proof from them.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

from medweave.ledger.hashing import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = ["CompactRange", "NodeID", "decompose", "frontier_ids", "range_nodes"]

NodeID = tuple[int, int]
"""``(level, index)``: the perfect subtree over leaves [index * 2**level, (index + 1) * 2**level)."""


def decompose(begin: int, end: int) -> tuple[int, int]:
    """Split [begin, end) into the fewest perfect subtrees, as bit masks ``(left, right)``.

    A set bit k of ``left`` is a subtree of 2**k leaves on the left border (read from low to high
    bits); a set bit of ``right`` one on the right border (read from high to low). As
    ``compact.Decompose`` in transparency-dev/merkle ``compact/range.go``.
    """
    _check_range(begin, end)
    if begin == 0:
        return 0, end
    xbegin = begin - 1
    # Paths to leaves begin-1 and end diverge at bit d; only the nodes below it are in the range.
    mask = (1 << ((xbegin ^ end).bit_length() - 1)) - 1
    return ~xbegin & mask, end & mask


def range_nodes(begin: int, end: int) -> list[NodeID]:
    """The perfect subtrees covering [begin, end), left to right (``compact.RangeNodes``)."""
    left, right = decompose(begin, end)
    ids: list[NodeID] = []
    pos = begin
    while left:  # Left border, from lower to upper levels.
        level = (left & -left).bit_length() - 1
        ids.append((level, pos >> level))
        pos += 1 << level
        left &= left - 1
    while right:  # Right border, from upper to lower levels.
        level = right.bit_length() - 1
        ids.append((level, pos >> level))
        pos += 1 << level
        right ^= 1 << level
    return ids


def frontier_ids(size: int) -> list[NodeID]:
    """The roots of the perfect subtrees of the tree of ``size`` leaves, left to right.

    These are the nodes a :class:`CompactRange` holds; load their stored hashes and pass them to
    ``CompactRange(size, hashes)`` to resume appending.
    """
    return range_nodes(0, size)


class CompactRange:
    """The compact range [0, size): the roots of its perfect subtrees, left to right."""

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Rebuild the range of ``size`` leaves from its subtree roots (see :func:`frontier_ids`)."""
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a range of size {size} has {size.bit_count()} subtree roots, got {len(hashes)}"
            )
        for i, h in enumerate(hashes):
            _check_hash(h, f"hashes[{i}]")
        self._size = size
        self._hashes = [bytes(h) for h in hashes]

    @property
    def size(self) -> int:
        """Number of leaves in the range."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees, left to right (those of :func:`frontier_ids`)."""
        return tuple(self._hashes)

    def ids(self) -> list[NodeID]:
        """The IDs of :attr:`hashes`, in the same order."""
        return frontier_ids(self._size)

    def append(self, leaf_hash: bytes) -> list[tuple[NodeID, bytes]]:
        """Append one leaf hash; return every node completed by it, from the leaf upwards.

        The leaf (0, size) is always first; then one parent for each trailing set bit of the old
        size, since each of those subtrees now has a sibling of its own height to pair with.
        """
        # The hot path of every append: checks and hashing inlined (bench/ledger.py measures it).
        if type(leaf_hash) is not bytes or len(leaf_hash) != HASH_SIZE:
            _check_hash(leaf_hash, "leaf_hash")
            leaf_hash = bytes(leaf_hash)
        seed = leaf_hash
        level, index = 0, self._size
        completed: list[tuple[NodeID, bytes]] = [((0, index), seed)]
        while index & 1:  # The new node is a right child: merge it with its left sibling.
            seed = sha256(b"\x01" + self._hashes.pop() + seed).digest()  # node_hash, RFC 9162
            level, index = level + 1, index >> 1
            completed.append(((level, index), seed))
        self._hashes.append(seed)
        self._size += 1
        return completed

    def root(self) -> bytes:
        """MTH of the leaves [0, size) (RFC 9162 §2.1.1); :data:`EMPTY_ROOT` when empty.

        Folds the subtree roots from the right, as ``GetRootHash`` in ``compact/range.go``.
        """
        if not self._hashes:
            return EMPTY_ROOT
        result = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            result = node_hash(h, result)
        return result

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, hashes=[{len(self._hashes)} hashes])"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # Mutable: not hashable.


def _check_range(begin: int, end: int) -> None:
    if begin < 0 or end < begin:
        raise ValueError(f"invalid range [{begin}, {end}): need 0 <= begin <= end")


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        got = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {got}")
