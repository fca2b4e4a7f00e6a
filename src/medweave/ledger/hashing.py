"""RFC 9162 §2.1.1 Merkle Tree Hash with SHA-256 (the RFC 6962 hasher).

The two hash functions are those of transparency-dev/merkle ``rfc6962/rfc6962.go``: a leaf is
``SHA-256(0x00 || data)`` and an interior node ``SHA-256(0x01 || left || right)``; the distinct
prefixes keep a leaf from ever being read as a node (second-preimage resistance, RFC 9162 §2.1.1).
The root of the empty tree is ``SHA-256("")``.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

__all__ = ["EMPTY_ROOT", "HASH_SIZE", "leaf_hash", "node_hash", "root"]

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

EMPTY_ROOT: bytes = sha256(b"").digest()
"""MTH({}) = SHA-256() — the root of the tree of size 0 (RFC 9162 §2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """MTH({d(0)}) = SHA-256(0x00 || d(0)): the hash of one leaf's input (RFC 9162 §2.1.1)."""
    return sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node (RFC 9162 §2.1.1)."""
    return sha256(_NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaves that are already hashed with :func:`leaf_hash`.

    RFC 9162 §2.1.1 splits D[n] at k, the largest power of two smaller than n, and recurses. The
    same tree is built bottom-up here: pair the nodes of each level from the left and carry a lone
    last node up unchanged, which places every split exactly where the RFC does. O(n) hashes,
    no recursion.
    """
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]
