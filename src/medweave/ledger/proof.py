"""Which stored nodes an inclusion or consistency proof needs, and how to assemble it.

A port of transparency-dev/merkle ``proof/proof.go``. RFC 9162 §2.1.3 (inclusion) and §2.1.4
(consistency) proofs are lists of subtree hashes. In a tree whose size is not a power of two, one
of them may be *ephemeral*: the root of an imperfect subtree on the right border, whose hash
changes as the log grows and so is never stored. :func:`inclusion` and :func:`consistency` name
only complete (perfect, never-changing) nodes; :meth:`Nodes.rehash` folds the ones that stand in
for the ephemeral node into its hash, giving the proof in RFC order.

Storage keeps the hash of every complete node (those :meth:`CompactRange.append` reports), so a
proof costs O(log n) reads: ``inclusion_proof(index, size, fetch)``.

Pure: no I/O; ``fetch`` is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from medweave.ledger.compact import NodeID, range_nodes
from medweave.ledger.hashing import node_hash

__all__ = ["Fetch", "NodeID", "Nodes", "consistency", "consistency_proof", "inclusion", "inclusion_proof"]

Fetch = Callable[[Sequence[NodeID]], Sequence[bytes]]
"""Returns the stored hashes of the given complete nodes, in the same order."""


@dataclass(frozen=True)
class Nodes:
    """The complete nodes a proof is built from (``proof.Nodes`` in transparency-dev/merkle).

    ``ids[begin:end]``, when not empty, are the nodes covering the ephemeral node ``ephem``,
    ordered from lower to upper levels; every other ID is a proof entry as it is.
    """

    ids: tuple[NodeID, ...]
    begin: int = 0
    end: int = 0
    ephem: NodeID = (0, 0)

    def rehash(self, hashes: Sequence[bytes]) -> list[bytes]:
        """The proof, from the hashes of :attr:`ids` (same order): the ephemeral run is folded."""
        if len(hashes) != len(self.ids):
            raise ValueError(f"got {len(hashes)} hashes for {len(self.ids)} nodes")
        out = list(hashes[: self.begin])
        if self.begin < self.end:
            acc = hashes[self.begin]
            for h in hashes[self.begin + 1 : self.end]:
                acc = node_hash(h, acc)  # Each higher node lies to the left of the lower ones.
            out.append(acc)
        out.extend(hashes[self.end :])
        return out

    def _skip_first(self) -> Nodes:
        if self.begin < self.end:
            return Nodes(self.ids[1:], self.begin - 1, self.end - 1, self.ephem)
        return Nodes(self.ids[1:], 0, 0, self.ephem)


def inclusion(index: int, size: int) -> Nodes:
    """The nodes of the inclusion proof of leaf ``index`` in the tree of ``size`` (RFC 9162 §2.1.3).

    The proof runs from the leaf's sibling up to a child of the root. Requires 0 <= index < size.
    """
    if index < 0 or size < 0:
        raise ValueError(f"index and size must be >= 0, got index={index}, size={size}")
    if index >= size:
        raise ValueError(f"leaf index {index} is out of range for tree size {size}")
    return _nodes(index, 0, size)._skip_first()


def consistency(size1: int, size2: int) -> Nodes:
    """The nodes of the consistency proof from ``size1`` to ``size2`` (RFC 9162 §2.1.4).

    Empty when size1 == size2, and when size1 == 0 (the C2SP tlog-witness protocol sends no proof
    from the empty tree; transparency-dev/merkle refuses to build one). Requires size1 <= size2.
    """
    if size1 < 0 or size2 < 0:
        raise ValueError(f"tree sizes must be >= 0, got size1={size1}, size2={size2}")
    if size1 > size2:
        raise ValueError(f"size1 {size1} is greater than size2 {size2}")
    if size1 == 0 or size1 == size2:
        return Nodes(())
    # The largest perfect subtree of [0, size1) that ends at size1: the proof starts from it.
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    nodes = _nodes(index, level, size2)
    if size1 == 1 << level:  # That subtree is the whole old tree: the verifier has its root.
        return nodes._skip_first()
    return nodes


def inclusion_proof(index: int, size: int, fetch: Fetch) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``size``, read through ``fetch``."""
    return _build(inclusion(index, size), fetch)


def consistency_proof(size1: int, size2: int, fetch: Fetch) -> list[bytes]:
    """The consistency proof from ``size1`` to ``size2``, read through ``fetch``."""
    return _build(consistency(size1, size2), fetch)


def _build(nodes: Nodes, fetch: Fetch) -> list[bytes]:
    if not nodes.ids:
        return []
    hashes = fetch(nodes.ids)
    if len(hashes) != len(nodes.ids):
        raise ValueError(f"fetch returned {len(hashes)} hashes for {len(nodes.ids)} nodes")
    return nodes.rehash(hashes)


def _nodes(index: int, level: int, size: int) -> Nodes:
    """The nodes proving that node (level, index) is in the tree of ``size`` (``proof.nodes``).

    The first ID is the node itself. The path climbs to the ``fork`` node, where it leaves the
    path to leaf ``size``; the fork's sibling is the ephemeral node, covered by the complete
    nodes of [end, size). The nodes of [0, begin) complete the cover of the whole tree.
    """
    inner = (index ^ (size >> level)).bit_length() - 1
    fork_level, fork_index = level + inner, index >> inner
    begin, end = fork_index << fork_level, (fork_index + 1) << fork_level

    ids: list[NodeID] = [(level, index)]
    lvl, idx = level, index
    while lvl < fork_level:
        ids.append((lvl, idx ^ 1))
        lvl, idx = lvl + 1, idx >> 1
    len1 = len(ids)
    ids.extend(reversed(range_nodes(end, size)))  # Lower levels first, for rehash.
    len2 = len(ids)
    ids.extend(reversed(range_nodes(0, begin)))
    if len1 >= len2:
        len1 = len2 = 0
    return Nodes(tuple(ids), len1, len2, (fork_level, fork_index ^ 1))
