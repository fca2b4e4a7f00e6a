"""Checkpoints (https://c2sp.org/tlog-checkpoint) and Ed25519 cosignatures
(https://c2sp.org/tlog-cosignature): shared vectors, spec examples, strictness, hypothesis."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_vectors import cases, group
from medweave.ledger.checkpoint import (
    MAX_SIZE,
    Checkpoint,
    CheckpointError,
    CosignatureError,
    add_cosignatures,
    cosign,
    cosignatures,
    open_checkpoint,
    parse_cosignature,
    verify_cosignature,
)
from medweave.ledger.note import (
    InvalidSignatureError,
    NoteError,
    Signer,
    cosignature_v1_message,
    open_note,
    parse_vkey,
    sign,
)
from medweave.ledger.witness_protocol import AddCheckpoint

UPDATE = group("checkpoints_and_witness_update")
UPDATE_CASES = UPDATE["cases"]
TEXT_X_MOD = cases("checkpoint_text_x_mod")
PEER = cases("cosignature_v1_peer")

# https://c2sp.org/tlog-checkpoint and https://c2sp.org/tlog-cosignature examples.
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_LOG_LINE = (
    "— example.com/behind-the-sofa "
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)
SPEC_COSIG_LINE = (
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2"
    "oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
SPEC_SIGNED_MESSAGE = (
    "cosignature/v1\ntime 1679315147\n"
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
GO_SUMDB_ORIGIN = "go.sum database tree"  # golang.org/x/mod/sumdb/tlog FormatTree's first line

LOG = Signer("log.example/ledger", hashlib.sha256(b"log").digest())
W1 = Signer("w1.example", hashlib.sha256(b"w1").digest(), kind="cosignature")
W2 = Signer("w2.example", hashlib.sha256(b"w2").digest(), kind="cosignature")
BODY = Checkpoint("log.example/ledger", 7, hashlib.sha256(b"root").digest()).text()


def _case(field: str) -> dict[str, Any]:
    (found,) = [c for c in UPDATE_CASES if field in c]
    return found


@pytest.mark.parametrize("case", UPDATE_CASES, ids=[c["desc"] for c in UPDATE_CASES])
def test_checkpoints_and_witness_update(case: dict[str, Any]) -> None:
    log = parse_vkey(UPDATE["log_vkey"])
    consistency = _case("proof")
    roots = {consistency["size1"]: consistency["root1"], consistency["size2"]: consistency["root2"]}
    if "signed_note" in case:
        checkpoint, opened = open_checkpoint(case["signed_note"], log=log)
        assert case["want_valid"] and checkpoint.root.hex() == roots[checkpoint.size]
        assert checkpoint.text() == opened.text and case["signed_note"].startswith(checkpoint.text() + "\n")
        with pytest.raises(NoteError):  # not signed by that log: another key of the same name
            open_checkpoint(case["signed_note"], log=Signer(log.name, b"\x07" * 32).verifier())
    elif "proof" in case:
        signed = [open_checkpoint(c["signed_note"], log=log)[0] for c in UPDATE_CASES if "signed_note" in c]
        assert {c.size: c.root.hex() for c in signed} == roots
        request = AddCheckpoint.parse(_case("add_checkpoint_body")["add_checkpoint_body"])
        assert (request.old_size, request.tree().size) == (case["size1"], case["size2"])
        assert [h.hex() for h in request.proof] == case["proof"] and case["want_valid"]
    else:
        body = case["add_checkpoint_body"]
        request = AddCheckpoint.parse(body)
        assert request.text() == body
        checkpoint, _ = open_checkpoint(request.checkpoint, log=log)
        assert checkpoint.root.hex() == roots[checkpoint.size]


@pytest.mark.parametrize("case", TEXT_X_MOD, ids=[c["desc"] for c in TEXT_X_MOD])
def test_checkpoint_text_x_mod(case: dict[str, Any]) -> None:
    leaf = hashlib.sha256(b"\x00" + case["record"].encode()).digest()
    checkpoint = Checkpoint(GO_SUMDB_ORIGIN, case["size"], leaf)
    assert checkpoint.text() == case["text"]
    assert Checkpoint.parse(case["text"]) == checkpoint


@pytest.mark.parametrize("case", PEER, ids=[c["desc"] for c in PEER])
def test_cosignature_v1_peer(case: dict[str, Any]) -> None:
    if "vkey" in case:
        verifier = parse_vkey(case["vkey"])
        assert case["want_valid_vkey"] and verifier.kind == "cosignature"
        name, hex_id, key64 = case["vkey"].split("+", 2)
        typed = base64.b64decode(key64)
        assert typed[0] == 0x04 and verifier.public_key == typed[1:]
        assert int(hex_id, 16) == int.from_bytes(
            hashlib.sha256(name.encode() + b"\n" + typed).digest()[:4], "big"
        )
        assert verifier.vkey == case["vkey"]
    elif case.get("want_error"):
        raw = base64.b64decode(case["sig_b64"])
        with pytest.raises(CosignatureError):
            parse_cosignature(raw)
        line = f"— {W1.name} {base64.b64encode(W1.key_id.to_bytes(4, 'big') + raw[4:]).decode()}\n"
        with pytest.raises(CosignatureError):
            verify_cosignature(BODY, line, W1.verifier())
    else:
        key, timestamp, sig = parse_cosignature(base64.b64decode(case["sig_b64"]))
        assert timestamp == case["want_timestamp"] and len(sig) == 64
        assert key.to_bytes(4, "big") == base64.b64decode(case["sig_b64"])[:4]


def test_spec_examples() -> None:
    checkpoint = Checkpoint.parse(SPEC_BODY)
    assert (checkpoint.origin, checkpoint.size, checkpoint.text()) == (
        "example.com/behind-the-sofa",
        20852163,
        SPEC_BODY,
    )
    # The tlog-cosignature example: its cosignature's timestamp is that of its signed-message example.
    _, timestamp, _ = parse_cosignature(base64.b64decode(SPEC_COSIG_LINE.split(" ")[2].strip()))
    assert cosignature_v1_message(timestamp, SPEC_BODY.encode()).decode() == SPEC_SIGNED_MESSAGE
    signed = SPEC_BODY + "\n" + SPEC_LOG_LINE + SPEC_COSIG_LINE
    with pytest.raises(NoteError):  # we hold neither key: nothing verifies
        open_checkpoint(signed, log=LOG.verifier())
    assert add_cosignatures(SPEC_BODY + "\n" + SPEC_LOG_LINE, [SPEC_COSIG_LINE]) == signed


def test_cosign_and_verify() -> None:
    line = cosign(BODY, W1, 1_700_000_000)
    assert verify_cosignature(BODY, line, W1.verifier()) == 1_700_000_000
    # The same witness line opens as a plain note signature under the 0x04 verifier.
    signed = sign(BODY, [LOG]) + line
    assert [s.name for s in open_note(signed, [W1.verifier()]).sigs] == [W1.name]
    other_body = Checkpoint("log.example/ledger", 8, hashlib.sha256(b"root").digest()).text()
    for bad in [
        lambda: verify_cosignature(other_body, line, W1.verifier()),
        lambda: verify_cosignature(BODY, line, W2.verifier()),
        lambda: verify_cosignature(BODY, line, W1.verifier(), not_after=1_699_999_999),
        lambda: verify_cosignature(BODY, sign(BODY, [LOG])[len(BODY) + 1 :], LOG.verifier()),
        lambda: cosign(BODY, LOG, 1),
        lambda: cosign(BODY, W1, -1),
        lambda: cosign(BODY, W1, 2**63),
        lambda: cosign("not a checkpoint\n", W1, 1),
    ]:
        with pytest.raises(NoteError):
            bad()
    assert verify_cosignature(BODY, line, W1.verifier(), not_after=1_700_000_000) == 1_700_000_000
    at_max = cosign(BODY, W1, 2**63 - 1)
    assert verify_cosignature(BODY, at_max, W1.verifier()) == 2**63 - 1


def test_extension_lines_are_cosigned() -> None:
    body = Checkpoint(
        "log.example/ledger", 7, hashlib.sha256(b"root").digest(), ("ext one", "ext two")
    ).text()
    line = cosign(body, W1, 10)
    assert verify_cosignature(body, line, W1.verifier()) == 10
    with pytest.raises(CosignatureError):
        verify_cosignature(body.replace("ext two", "ext 2"), line, W1.verifier())


def test_collect_cosignatures_on_a_signed_checkpoint() -> None:
    signed = sign(BODY, [LOG])
    both = add_cosignatures(signed, [cosign(BODY, W1, 100), cosign(BODY, W2, 200)])
    assert cosignatures(both, [W1.verifier(), W2.verifier()]) == {
        (W1.name, W1.key_id): 100,
        (W2.name, W2.key_id): 200,
    }
    assert cosignatures(both, [W2.verifier()]) == {(W2.name, W2.key_id): 200}
    # A newer cosignature by the same key replaces the old one; repeats are dropped.
    newer = add_cosignatures(both, [cosign(BODY, W1, 300), cosign(BODY, W1, 300)])
    assert newer.count(W1.name) == 1
    assert cosignatures(newer, [W1.verifier()]) == {(W1.name, W1.key_id): 300}
    checkpoint, opened = open_checkpoint(newer, log=LOG.verifier(), cosigners=[W1.verifier(), W2.verifier()])
    assert checkpoint.size == 7 and len(opened.sigs) == 3
    other = Checkpoint("log.example/ledger", 9, b"\x01" * 32).text()
    forged = cosign(other, W2, 5)
    tampered = add_cosignatures(signed, [forged])
    with pytest.raises(CosignatureError):
        cosignatures(tampered, [W2.verifier()])
    with pytest.raises(InvalidSignatureError):
        open_checkpoint(tampered, log=LOG.verifier(), cosigners=[W2.verifier()])
    with pytest.raises(CheckpointError):
        open_checkpoint(signed, log=LOG.verifier(), origin="log.example/other")
    with pytest.raises(CheckpointError):  # verified, but only by a witness, not by the log
        open_checkpoint(both, log=Signer(LOG.name, b"\x05" * 32).verifier(), cosigners=[W1.verifier()])


def _variants(text: str) -> list[str]:
    """Texts that differ from a valid checkpoint in one way the spec forbids."""
    origin, size, root = text.rstrip("\n").split("\n")
    raw = base64.b64decode(root)
    return [
        text.rstrip("\n"),
        f"{origin}\n{size}\n",
        f"\n{size}\n{root}\n",
        f"{origin}\n0{size}\n{root}\n",
        f"{origin}\n+{size}\n{root}\n",
        f"{origin}\n {size}\n{root}\n",
        f"{origin}\n-{size}\n{root}\n",
        f"{origin}\n{''.join(chr(0x660 + int(d)) for d in size)}\n{root}\n",  # Arabic-Indic digits
        f"{origin}\n{MAX_SIZE + 1}\n{root}\n",
        f"{origin}\n{size}\n{base64.b64encode(raw[:31]).decode()}\n",
        f"{origin}\n{size}\n{base64.b64encode(raw + b'x').decode()}\n",
        f"{origin}\n{size}\n{root[:-2]}{chr(ord(root[-2]) + 1)}=\n",
        f"{origin}\n{size}\n{root.rstrip('=')}\n",
        f"{origin}\n{size}\n{root}\n\n",
        f"{origin}\n{size}\n{root}\next\n\n",
        f"{origin}\r\n{size}\n{root}\n",
        f"or\x01gin\n{size}\n{root}\n",
    ]


def test_parse_is_strict() -> None:
    assert Checkpoint.parse(BODY).text() == BODY
    for bad in _variants(BODY):
        with pytest.raises(CheckpointError):
            Checkpoint.parse(bad)
    assert Checkpoint.parse(BODY.replace("\n7\n", "\n0\n")).size == 0
    assert Checkpoint.parse(BODY.replace("\n7\n", f"\n{MAX_SIZE}\n")).size == MAX_SIZE
    for args in [("", 1, b"\x00" * 32), ("o\n", 1, b"\x00" * 32), ("o", -1, b"\x00" * 32), ("o", 1, b"")]:
        with pytest.raises(CheckpointError):
            Checkpoint(*args)
    with pytest.raises(CheckpointError):
        Checkpoint("o", 1, b"\x00" * 32, ("",))


# --- hypothesis ---------------------------------------------------------------------------

LINE = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=30)
CHECKPOINTS = st.builds(
    Checkpoint,
    origin=LINE,
    size=st.integers(0, MAX_SIZE),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(LINE, max_size=3).map(tuple),
)
ALPHABET = "\n \u2014+=/Aa09.-\x00\x7f\r\t\u00e9\u3000\ud800\u0661"


@st.composite
def mutated(draw: st.DrawFn, base: str) -> str:
    s = base
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(s)))
        c = draw(st.sampled_from(ALPHABET) | st.characters())
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        s = s[:i] + c + s[i:] if op == "insert" else s[:i] + ("" if op == "delete" else c) + s[i + 1 :]
    return s


@given(checkpoint=CHECKPOINTS)
def test_text_parse_round_trip(checkpoint: Checkpoint) -> None:
    assert Checkpoint.parse(checkpoint.text()) == checkpoint


@given(text=st.text() | mutated(BODY) | CHECKPOINTS.map(Checkpoint.text).flatmap(mutated))
def test_mutated_texts_parse_canonically_or_raise(text: str) -> None:
    try:
        checkpoint = Checkpoint.parse(text)
    except CheckpointError:
        return
    assert checkpoint.text() == text  # strict: only the canonical spelling is accepted


@settings(deadline=None)
@given(checkpoint=CHECKPOINTS, timestamp=st.integers(0, 2**63 - 1))
def test_cosign_verify_round_trip(checkpoint: Checkpoint, timestamp: int) -> None:
    line = cosign(checkpoint.text(), W1, timestamp)
    assert verify_cosignature(checkpoint.text(), line, W1.verifier()) == timestamp


@settings(deadline=None)
@given(line=mutated(cosign(BODY, W1, 1_700_000_000)))
def test_mutated_cosignatures_verify_or_raise(line: str) -> None:
    try:
        timestamp = verify_cosignature(BODY, line, W1.verifier())
    except NoteError:
        return
    assert timestamp == 1_700_000_000
