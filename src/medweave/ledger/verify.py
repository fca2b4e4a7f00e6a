"""Checking inclusion and consistency proofs: pure functions that raise :class:`ProofError`.

A port of transparency-dev/merkle ``proof/verify.go``, with the same verdict on every probe of its
``testdata/`` (RFC 9162 §2.1.3.2 and §2.1.4.2 describe the same checks). Like that file:

- a consistency proof *from size 0* is rejected, even towards size 0 ("meaningless");
- with size1 == size2 the proof must be empty and the two roots equal byte for byte;
- the leaf hash and every proof entry must be 32 bytes. Roots are only compared, so a root of
  the wrong length never matches a computed one; but two equal roots of equal sizes are accepted
  whatever their length, as upstream (a probe of the vectors wants exactly that).

:func:`verify_witness_consistency` is the C2SP tlog-witness rule (https://c2sp.org/tlog-witness):
from old size 0 the proof MUST be empty, and then any new checkpoint is consistent.

Anything malformed (negative sizes, short hashes, wrong proof length) is a :class:`ProofError`,
never an ``IndexError``.

A proof binds hashes, not sizes: a verifier only sees which side each hash joins on, and nearby
sizes often share that shape (leaf 0's proof at size 3 also verifies at size 4 against the same
root). Take sizes and roots together from a signed checkpoint, never from the prover alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from medweave.ledger.hashing import HASH_SIZE, node_hash

__all__ = [
    "ProofError",
    "RootMismatchError",
    "root_from_inclusion",
    "verify_consistency",
    "verify_inclusion",
    "verify_witness_consistency",
]


class ProofError(ValueError):
    """A proof, or the sizes, indices or hashes given with it, does not verify."""


class RootMismatchError(ProofError):
    """The proof is well formed but leads to another root (``RootMismatchError`` upstream)."""


def root_from_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` gives leaf ``index`` in a tree of ``size`` (RFC 9162 §2.1.3.2)."""
    _check_sizes(index=index, size=size)
    if index >= size:
        raise ProofError(f"leaf index {index} is beyond tree size {size}")
    _check_hash(leaf_hash, "leaf hash")
    _check_proof(proof)
    inner, border = _decompose_inclusion(index, size)
    if len(proof) != inner + border:
        raise ProofError(f"wrong proof size {len(proof)}, want {inner + border}")
    result = _chain_inner(leaf_hash, proof[:inner], index)
    return _chain_border_right(result, proof[inner:])


def verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows leaf ``index`` under ``root``."""
    _match(root_from_inclusion(index, size, leaf_hash, proof), root, "root")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Raise :class:`ProofError` unless the tree (size2, root2) extends (size1, root1).

    RFC 9162 §2.1.4.2, as transparency-dev ``VerifyConsistency``: requires 0 < size1 <= size2.
    """
    _check_sizes(size1=size1, size2=size2)
    if size2 < size1:
        raise ProofError(f"size2 {size2} is smaller than size1 {size1}")
    if size1 == 0:
        raise ProofError("consistency proof from the empty tree is meaningless")
    if size1 == size2:
        if proof:
            raise ProofError("size1 == size2, but the proof is not empty")
        _match(root1, root2, "root2")
        return
    if not proof:
        raise ProofError("empty proof")
    _check_hash(root1, "root1")
    _check_hash(root2, "root2")
    _check_proof(proof)

    inner, border = _decompose_inclusion(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1  # Trailing zeros of size1; shift < inner.
    inner -= shift
    # The proof opens with the root of the subtree of 2**shift leaves ending at size1, unless that
    # subtree is the whole old tree, whose root the verifier already has.
    if size1 == 1 << shift:
        seed, rest = root1, proof
    else:
        seed, rest = proof[0], proof[1:]
    if len(rest) != inner + border:
        want = inner + border + (len(proof) - len(rest))
        raise ProofError(f"wrong proof size {len(proof)}, want {want}")

    mask = (size1 - 1) >> shift  # Chain from level `shift` upwards.
    hash1 = _chain_border_right(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    _match(hash1, root1, "root1")
    hash2 = _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])
    _match(hash2, root2, "root2")


def verify_witness_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes | None, new_root: bytes
) -> None:
    """The consistency check of a C2SP tlog-witness ``add-checkpoint`` request.

    https://c2sp.org/tlog-witness: "The proof MUST be empty if the old size is zero"; any
    checkpoint then extends the empty tree, and ``old_root`` is not looked at (a witness that
    never cosigned has none). Otherwise this is :func:`verify_consistency`.
    """
    _check_sizes(old_size=old_size, new_size=new_size)
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is greater than the checkpoint size {new_size}")
    _check_hash(new_root, "new root")
    if old_size == 0:
        if proof:
            raise ProofError(f"the proof from old size 0 must be empty, got {len(proof)} hashes")
        return
    if old_root is None:
        raise ProofError(f"old size {old_size} needs the old root hash")
    verify_consistency(old_size, new_size, proof, old_root, new_root)


def _decompose_inclusion(index: int, size: int) -> tuple[int, int]:
    """Lengths of the inner and border parts of an inclusion proof (``decompInclProof``).

    The parts split where the paths to leaves ``index`` and ``size - 1`` diverge: below it the
    siblings lie either side, above it (the right border) they all lie to the left.
    """
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = node_hash(h, seed) if (index >> i) & 1 else node_hash(seed, h)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    """As :func:`_chain_inner`, with only the left siblings: the subtree as it was at size1."""
    for i, h in enumerate(proof):
        if (index >> i) & 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = node_hash(h, seed)
    return seed


def _match(calculated: bytes, expected: bytes, what: str) -> None:
    if calculated != expected:
        raise RootMismatchError(f"calculated {what} {_hex(calculated)} != expected {_hex(expected)}")


def _check_sizes(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ProofError(f"{name} must be a non-negative integer, got {value!r}")


def _check_hash(value: object, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        got = f"{len(value)} bytes" if isinstance(value, bytes | bytearray) else type(value).__name__
        raise ProofError(f"{what} must be {HASH_SIZE} bytes, got {got}")


def _check_proof(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        _check_hash(h, f"proof[{i}]")


def _hex(value: object) -> str:
    return value.hex() if isinstance(value, bytes | bytearray) else repr(value)
