"""Proof checks against every transparency-dev/merkle probe, the C2SP witness rule, and fuzzing.

The probes (testdata/inclusion and testdata/consistency, as proof/verify_test.go consumes them)
say for each input whether a verifier MUST reject it; each one is a test here.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_vectors import cases
from medweave.ledger.hashing import EMPTY_ROOT
from medweave.ledger.verify import (
    ProofError,
    RootMismatchError,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
    verify_witness_consistency,
)


def _h(value: str) -> bytes:
    return bytes.fromhex(value)


def _proof(values: list[str] | None) -> list[bytes]:
    return [_h(v) for v in values or []]


def _roots() -> dict[int, bytes]:
    return {c["tree_size"]: _h(c["root"]) for c in cases("tree_8_leaves")}


@pytest.mark.parametrize("case", cases("inclusion_probes"), ids=lambda c: c["file"])
def test_inclusion_probe(case: dict[str, Any]) -> None:
    args = (case["leafIdx"], case["treeSize"], _h(case["leafHash"]), _proof(case["proof"]), _h(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("case", cases("consistency_probes"), ids=lambda c: c["file"])
def test_consistency_probe(case: dict[str, Any]) -> None:
    args = (case["size1"], case["size2"], _proof(case["proof"]), _h(case["root1"]), _h(case["root2"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


@pytest.mark.parametrize(
    "case", cases("inclusion_proofs_reference"), ids=lambda c: f"leaf{c['leaf_index']}-size{c['tree_size']}"
)
def test_inclusion_reference_proofs_verify(case: dict[str, Any]) -> None:
    index, size, leaf, proof = case["leaf_index"], case["tree_size"], _h(case["leaf_hash"]), case["proof"]
    assert root_from_inclusion(index, size, leaf, _proof(proof)) == _h(case["root"]) == _roots()[size]
    verify_inclusion(index, size, leaf, _proof(proof), _h(case["root"]))


@pytest.mark.parametrize(
    "case", cases("consistency_proofs_reference"), ids=lambda c: f"{c['size1']}-to-{c['size2']}"
)
def test_consistency_reference_proofs_verify(case: dict[str, Any]) -> None:
    size1, size2, proof = case["size1"], case["size2"], _proof(case["proof"])
    assert (_h(case["root1"]), _h(case["root2"])) == (_roots()[size1], _roots()[size2])
    verify_consistency(size1, size2, proof, _h(case["root1"]), _h(case["root2"]))
    verify_witness_consistency(size1, size2, proof, _h(case["root1"]), _h(case["root2"]))


def _witness_case() -> dict[str, Any]:
    (case,) = [c for c in cases("checkpoints_and_witness_update") if "proof" in c]
    found: dict[str, Any] = case
    return found


def test_witness_update_proof_from_the_vectors() -> None:
    case = _witness_case()
    args = (case["size1"], case["size2"], _proof(case["proof"]), _h(case["root1"]), _h(case["root2"]))
    verify_consistency(*args)
    verify_witness_consistency(*args)
    with pytest.raises(RootMismatchError):
        verify_witness_consistency(*args[:3], args[4], args[3])


def test_witness_from_old_size_zero_needs_an_empty_proof() -> None:
    new_root = _h(_witness_case()["root2"])
    verify_witness_consistency(0, 8, [], None, new_root)
    verify_witness_consistency(0, 0, [], None, EMPTY_ROOT)
    verify_witness_consistency(0, 8, [], EMPTY_ROOT, new_root)
    with pytest.raises(ProofError, match="must be empty"):
        verify_witness_consistency(0, 8, [EMPTY_ROOT], None, new_root)
    # transparency-dev rejects both, which is why the witness rule lives in its own function.
    with pytest.raises(ProofError, match="meaningless"):
        verify_consistency(0, 8, [], EMPTY_ROOT, new_root)
    with pytest.raises(ProofError, match="meaningless"):
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)


def test_witness_rejects_bad_requests() -> None:
    case = _witness_case()
    proof, root1, root2 = _proof(case["proof"]), _h(case["root1"]), _h(case["root2"])
    with pytest.raises(ProofError, match="greater than"):
        verify_witness_consistency(9, 8, [], root1, root2)
    with pytest.raises(ProofError, match="old root"):
        verify_witness_consistency(5, 8, proof, None, root2)
    with pytest.raises(ProofError, match="32 bytes"):
        verify_witness_consistency(0, 8, [], None, root2[:31])
    with pytest.raises(ProofError, match="non-negative"):
        verify_witness_consistency(-1, 8, [], None, root2)
    with pytest.raises(RootMismatchError):
        verify_witness_consistency(8, 8, [], root1, root2)
    verify_witness_consistency(8, 8, [], root2, root2)


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_wrong_hash_lengths_are_proof_errors(length: int) -> None:
    roots = _roots()
    (case,) = [c for c in cases("inclusion_proofs_reference") if (c["leaf_index"], c["tree_size"]) == (5, 8)]
    leaf, proof = _h(case["leaf_hash"]), _proof(case["proof"])
    bad = b"\x01" * length
    for i in range(len(proof)):
        with pytest.raises(ProofError, match=rf"proof\[{i}\] must be 32 bytes"):
            verify_inclusion(5, 8, leaf, [*proof[:i], bad, *proof[i + 1 :]], roots[8])
    with pytest.raises(ProofError, match="leaf hash must be 32 bytes"):
        verify_inclusion(5, 8, bad, proof, roots[8])
    with pytest.raises(ProofError):
        verify_inclusion(5, 8, leaf, proof, bad)
    (cons,) = [c for c in cases("consistency_proofs_reference") if (c["size1"], c["size2"]) == (6, 8)]
    cproof = _proof(cons["proof"])
    with pytest.raises(ProofError, match="root1 must be 32 bytes"):
        verify_consistency(6, 8, cproof, bad, roots[8])
    with pytest.raises(ProofError, match="root2 must be 32 bytes"):
        verify_consistency(6, 8, cproof, roots[6], bad)
    with pytest.raises(ProofError, match=r"proof\[1\] must be 32 bytes"):
        verify_consistency(6, 8, [cproof[0], bad, cproof[2]], roots[6], roots[8])


_sizes = st.one_of(st.integers(min_value=-3, max_value=40), st.integers(min_value=-(2**70), max_value=2**70))
_hashes = st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40))


@given(_sizes, _sizes, _hashes, st.lists(_hashes, max_size=8), _hashes)
def test_garbage_inclusion_inputs_only_raise_proof_error(
    index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> None:
    with contextlib.suppress(ProofError):
        verify_inclusion(index, size, leaf, proof, root)


@given(_sizes, _sizes, st.lists(_hashes, max_size=8), _hashes, _hashes)
def test_garbage_consistency_inputs_only_raise_proof_error(
    size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes
) -> None:
    with contextlib.suppress(ProofError):
        verify_consistency(size1, size2, proof, root1, root2)
    with contextlib.suppress(ProofError):
        verify_witness_consistency(size1, size2, proof, root1, root2)
