"""Receipts in the https://c2sp.org/tlog-proof format: the spec's example, a vector checkpoint,
strictness and hypothesis properties. The Merkle proof itself is checked in ``verify``."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_vectors import group
from medweave.ledger.checkpoint import Checkpoint, add_cosignatures, cosign
from medweave.ledger.note import NoteError, Signer, parse_vkey, sign
from medweave.ledger.receipt import HEADER, MAX_PROOF_HASHES, Receipt, ReceiptError

UPDATE = group("checkpoints_and_witness_update")

# The example of https://c2sp.org/tlog-proof, signatures elided there as "[...]".
SPEC_HEAD = (
    "c2sp.org/tlog-proof@v1\n"
    "extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ\n"
    "index 73894\n"
    "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n"
    "B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n"
    "EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=\n"
    "RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=\n"
    "AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=\n"
    "\n"
)
SPEC_BODY = "example.com/fancylog\n109482\nsFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n"
SPEC_SIGS = (
    "— example.com/fancylog hI2DJw[...]1roloI=\n"
    "— witness1.example mJirIklj[...]qY9v2B/5bg==\n"
    "— witness2.example TnKKVHLX[...]xwYwrSjgow==\n"
    "— witness3.example S4X82uH5[...]3oEcROGLFQ==\n"
)

LOG = Signer("example.com/fancylog", hashlib.sha256(b"fancylog").digest())
WITNESSES = [Signer(f"witness{i}.example", bytes([i]) * 32, kind="cosignature") for i in (1, 2, 3)]


def signed_spec_checkpoint() -> str:
    """The spec's checkpoint, signed here by our own keys of the same names."""
    return add_cosignatures(sign(SPEC_BODY, [LOG]), [cosign(SPEC_BODY, w, 1_700_000_000) for w in WITNESSES])


def test_spec_example() -> None:
    with pytest.raises(ReceiptError):  # as printed, with its signatures elided
        Receipt.parse(SPEC_HEAD + SPEC_BODY + "\n" + SPEC_SIGS)
    text = SPEC_HEAD + signed_spec_checkpoint()
    receipt = Receipt.parse(text)
    assert receipt.text() == text
    assert receipt.extra is not None and receipt.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    proof_lines = SPEC_HEAD.split("\n")[3:-2]
    assert receipt.index == 73894 and [base64.b64encode(h).decode() for h in receipt.proof] == proof_lines
    assert receipt.tree() == Checkpoint.parse(SPEC_BODY)
    checkpoint, opened = receipt.open(log=LOG.verifier(), cosigners=[w.verifier() for w in WITNESSES])
    assert checkpoint.size == 109482 and len(opened.sigs) == 4


def test_receipt_over_a_vector_checkpoint() -> None:
    (signed,) = [
        c["signed_note"] for c in UPDATE["cases"] if c.get("signed_note", "").startswith("monkeys\n8\n")
    ]
    proof = tuple(bytes.fromhex(h) for h in next(c for c in UPDATE["cases"] if "proof" in c)["proof"])
    receipt = Receipt(index=7, proof=proof[:3], checkpoint=signed)
    assert Receipt.parse(receipt.text()) == receipt
    assert receipt.text().startswith(f"{HEADER}\nindex 7\n")
    checkpoint, _ = receipt.open(log=parse_vkey(UPDATE["log_vkey"]))
    assert checkpoint.size == 8
    with pytest.raises(ReceiptError):  # a leaf index must lie inside the checkpointed tree
        Receipt(index=8, proof=proof[:3], checkpoint=signed)


def _bad_variants(text: str) -> list[str]:
    head, _, rest = text.partition("\n\n")
    lines = head.split("\n")
    header, extra, index, proof = lines[0], lines[1], lines[2], lines[3:]
    tail = "\n\n" + rest
    return [
        text.replace(HEADER, "c2sp.org/tlog-proof@v2"),
        "\n".join(lines[1:]) + tail,
        "\n".join([header, index, extra, *proof]) + tail,
        "\n".join([header, "extra ", index, *proof]) + tail,
        "\n".join([header, extra + "=", index, *proof]) + tail,
        "\n".join([header, extra, *proof]) + tail,
        "\n".join([header, extra, index.replace(" ", " 0"), *proof]) + tail,
        "\n".join([header, extra, index.replace(" ", "  "), *proof]) + tail,
        "\n".join([header, extra, "index -1", *proof]) + tail,
        "\n".join([header, extra, "index 109482", *proof]) + tail,
        "\n".join([header, extra, index, *proof, base64.b64encode(b"\x00" * 31).decode()]) + tail,
        "\n".join([header, extra, index, *proof, proof[0] + " "]) + tail,
        "\n".join([header, extra, index, *proof]) + "\n" + rest,
        "\n".join([header, extra, index, *proof]) + tail.replace("109482", "x109482"),
        "\n".join([header, extra, index, *proof]) + "\n\n" + rest.rstrip("\n"),
        head + "\n\n",
    ]


def test_parse_is_strict() -> None:
    text = SPEC_HEAD + signed_spec_checkpoint()
    for bad in _bad_variants(text):
        with pytest.raises(ReceiptError):
            Receipt.parse(bad)
    receipt = Receipt.parse(text)
    too_long = (b"\x00" * 32,) * (MAX_PROOF_HASHES + 1)
    changes: list[dict[str, Any]] = [
        {"extra": b""},
        {"proof": too_long},
        {"proof": (b"\x00" * 33,)},
        {"checkpoint": SPEC_BODY},
        {"index": -1},
    ]
    for change in changes:
        with pytest.raises(ReceiptError):
            Receipt(**{"index": 1, "proof": (), "checkpoint": receipt.checkpoint, **change})


# --- hypothesis ---------------------------------------------------------------------------

SIGNED = sign(Checkpoint("h.example/log", 2**40, b"\x11" * 32).text(), [LOG])
RECEIPTS = st.builds(
    Receipt,
    index=st.integers(0, 2**40 - 1),
    proof=st.lists(st.binary(min_size=32, max_size=32), max_size=MAX_PROOF_HASHES).map(tuple),
    checkpoint=st.just(SIGNED),
    extra=st.none() | st.binary(min_size=1, max_size=80),
)
ALPHABET = "\n \u2014+=/Aa09.-\x00\x7f\r\t\u00e9\u3000\ud800"


@st.composite
def mutated(draw: st.DrawFn, base: str) -> str:
    s = base
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(s)))
        c = draw(st.sampled_from(ALPHABET) | st.characters())
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        s = s[:i] + c + s[i:] if op == "insert" else s[:i] + ("" if op == "delete" else c) + s[i + 1 :]
    return s


@given(receipt=RECEIPTS)
def test_text_parse_round_trip(receipt: Receipt) -> None:
    assert Receipt.parse(receipt.text()) == receipt


@given(text=st.text() | RECEIPTS.map(Receipt.text).flatmap(mutated))
def test_mutated_receipts_parse_canonically_or_raise(text: str) -> None:
    try:
        receipt = Receipt.parse(text)
    except ReceiptError:
        return
    assert receipt.text() == text


def test_receipt_errors_are_note_errors() -> None:
    assert issubclass(ReceiptError, NoteError)
