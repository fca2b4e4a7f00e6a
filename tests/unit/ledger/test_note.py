"""Signed notes (https://c2sp.org/signed-note): the shared vectors, the spec's example, key
handling, golang.org/x/mod note.Open semantics, and hypothesis properties of the parsers."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_vectors import cases
from medweave.ledger import note
from medweave.ledger.note import (
    InvalidKeyError,
    InvalidSignatureError,
    MalformedNoteError,
    NoteError,
    Signer,
    UnverifiedNoteError,
    Verifier,
    format_vkey,
    generate,
    open_note,
    parse_skey,
    parse_vkey,
    sign,
)

X_MOD = cases("signed_note_x_mod")
C2SP = cases("signed_note_c2sp_example")
SEED = hashlib.sha256(b"medweave test seed").digest()
TEXT = "medweave\n42\nsome text\n"

# The example at the top of https://c2sp.org/signed-note: its text contains an empty line.
SPEC_NOTE = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed è subito sera.\n"
    "\n"
    "— quasimodo.example/salvatore "
    "NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)


def sig_names(signed: str) -> list[str]:
    """Names on the signature lines, read with nothing but str methods."""
    block = signed[signed.rindex("\n\n") + 2 :]
    return [line.split(" ")[1] for line in block.splitlines()]


@pytest.mark.parametrize("case", X_MOD, ids=[c["desc"] for c in X_MOD])
def test_x_mod_vectors(case: dict[str, Any]) -> None:
    if "skey" in case:
        signer = parse_skey(case["skey"])
        assert signer.verifier().vkey == case["vkey"]
        signed = sign(case["text"], [signer])
        assert signed == case["signed_note"]
        opened = open_note(signed, [parse_vkey(case["vkey"])])
        assert case["want_valid"] and opened.text == case["text"]
        assert [s.name for s in opened.sigs] == [signer.name]
    elif "vkeys" in case:
        verifiers = [parse_vkey(v) for v in case["vkeys"]]
        if case["want_valid"]:
            opened = open_note(case["signed_note"], verifiers)
            assert [s.name for s in opened.sigs] == case["want_verified"]
            others = [n for n in sig_names(case["signed_note"]) if n not in case["want_verified"]]
            assert [s.name for s in opened.unverified_sigs] == others
            assert case["signed_note"].startswith(opened.text + "\n")
        else:
            with pytest.raises(NoteError):
                open_note(case["signed_note"], verifiers)
    else:
        assert case["want_valid_vkey"] is False
        with pytest.raises(InvalidKeyError):
            parse_vkey(case["vkey"])


@pytest.mark.parametrize("case", C2SP, ids=[c["desc"] for c in C2SP])
def test_c2sp_example_vector(case: dict[str, Any]) -> None:
    verifier = parse_vkey(case["vkey"])
    opened = open_note(case["signed_note"], [verifier])
    assert case["want_valid"]
    name, hex_id, _ = case["vkey"].split("+", 2)
    assert [(s.name, s.key_id) for s in opened.sigs] == [(name, int(hex_id, 16))]
    assert opened.text + "\n" + opened.sigs[0].line() == case["signed_note"]
    tampered = case["signed_note"].replace("example", "exampIe", 1)
    with pytest.raises(InvalidSignatureError):
        open_note(tampered, [verifier])


def test_spec_example_splits_at_the_last_blank_line() -> None:
    with pytest.raises(UnverifiedNoteError) as caught:
        open_note(SPEC_NOTE, [])
    got = caught.value.note
    assert got.text == SPEC_NOTE[: SPEC_NOTE.rindex("\n\n") + 1]
    assert "\n\ned è subito sera.\n" in got.text
    assert [s.name for s in got.unverified_sigs] == ["quasimodo.example/salvatore"]


@pytest.mark.parametrize("kind", ["ed25519", "cosignature"])
def test_generated_keys_round_trip(kind: note.KeyKind) -> None:
    skey, vkey = generate("log.example/one", kind=kind)
    signer, verifier = parse_skey(skey), parse_vkey(vkey)
    assert (signer.name, signer.key_id, signer.kind) == (verifier.name, verifier.key_id, kind)
    assert format_vkey(verifier.name, verifier.public_key, kind=kind) == vkey
    type_byte = base64.b64decode(vkey.split("+", 2)[2])[:1]
    digest = hashlib.sha256(b"log.example/one\n" + type_byte + verifier.public_key).digest()
    assert verifier.key_id == int.from_bytes(digest[:4], "big")
    signed = sign(TEXT, [signer], timestamp=1_700_000_000)
    assert open_note(signed, [verifier]).text == TEXT


def test_key_types_are_not_interchangeable() -> None:
    plain, cosig = Signer("w.example", SEED), Signer("w.example", SEED, kind="cosignature")
    assert plain.public_key == cosig.public_key and plain.key_id != cosig.key_id
    msg = TEXT.encode()
    assert not cosig.verifier().verify(msg, plain.sign(msg))
    assert not plain.verifier().verify(msg, cosig.sign(msg, timestamp=5))
    assert cosig.verifier().verify(msg, cosig.sign(msg, timestamp=5))
    # The timestamp is signed: changing it breaks the signature.
    sig = bytearray(cosig.sign(msg, timestamp=5))
    sig[7] ^= 1
    assert not cosig.verifier().verify(msg, bytes(sig))
    with pytest.raises(InvalidKeyError):
        cosig.sign(msg)


def _rekey(vkey: str, *, type_byte: int | None = None, key: bytes | None = None) -> str:
    """A vkey with its type or key replaced and the key ID recomputed to match."""
    name, _, key64 = vkey.split("+", 2)
    raw = base64.b64decode(key64)
    raw = bytes([raw[0] if type_byte is None else type_byte]) + (raw[1:] if key is None else key)
    kid = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex()
    return f"{name}+{kid}+{base64.b64encode(raw).decode()}"


def test_malformed_keys_are_refused() -> None:
    skey, vkey = generate("k.example")
    name, hex_id, key64 = vkey.split("+", 2)
    wrong_id = f"{int(hex_id, 16) ^ 1:08x}"
    bad_vkeys = [
        f"{name}+{wrong_id}+{key64}",
        _rekey(vkey, type_byte=0x02),
        _rekey(vkey, key=b"\x01" * 31),
        _rekey(vkey, key=b"\x01" * 33),
        f"{name}+{hex_id}",
        f"{name}+{hex_id[:7]}+{key64}",
        f"{name}+0x{hex_id[2:]}+{key64}",
        f"{name}+{hex_id}+{key64}=",
        f"{name}+{hex_id}+{key64[:-1]}",
        f"+{hex_id}+{key64}",
        f"k example+{hex_id}+{key64}",
        f"k\u3000example+{hex_id}+{key64}",
        skey,
    ]
    for bad in bad_vkeys:
        with pytest.raises(InvalidKeyError):
            parse_vkey(bad)
    assert parse_vkey(f"{name}+{hex_id.upper()}+{key64}").key_id == int(hex_id, 16)
    parts = skey.split("+", 4)
    for bad in [
        vkey,
        "+".join(["PRIVATE", "KEYS", *parts[2:]]),
        "+".join([*parts[:3], wrong_id, parts[4]]),
        "+".join([*parts[:4], base64.b64encode(b"\x01" + b"\x00" * 31).decode()]),
        "+".join([*parts[:4], base64.b64encode(b"\x03" + b"\x00" * 32).decode()]),
    ]:
        with pytest.raises(InvalidKeyError):
            parse_skey(bad)
    for bad_name in ["", "a+b", "a b", "a\u00a0b", "a\tb"]:
        with pytest.raises(InvalidKeyError):
            Signer(bad_name, SEED)


def test_open_note_semantics() -> None:
    a, b = Signer("a.example", SEED), Signer("b.example", hashlib.sha256(b"b").digest())
    signed = sign(TEXT, [a, b])
    lines = signed[len(TEXT) + 1 :].splitlines(keepends=True)
    # Repeated lines are dropped, verified or not.
    doubled = signed + lines[0] + lines[1]
    opened = open_note(doubled, [a.verifier()])
    assert [s.name for s in opened.sigs] == ["a.example"]
    assert [s.name for s in opened.unverified_sigs] == ["b.example"]
    # Same name, other key ID: an unknown key, ignored (kept unverified).
    other = Signer("a.example", hashlib.sha256(b"other").digest())
    assert open_note(signed, [other.verifier(), b.verifier()]).unverified_sigs[0].name == "a.example"
    # A known key's bad signature rejects the whole note, even with another good one.
    forged = sign("other text\n", [a]).splitlines(keepends=True)[-1]
    with pytest.raises(InvalidSignatureError):
        open_note(TEXT + "\n" + lines[1] + forged, [a.verifier(), b.verifier()])
    # Two different keys under one name and key ID cannot be told apart.
    twin = Verifier("a.example", b.verifier().public_key)
    twin.key_id = a.key_id
    with pytest.raises(InvalidKeyError):
        open_note(signed, [a.verifier(), twin])
    assert open_note(signed, [a.verifier(), a.verifier()]).sigs[0].name == "a.example"


def test_malformed_notes() -> None:
    a = Signer("a.example", SEED)
    signed = sign(TEXT, [a])
    line = signed[len(TEXT) + 1 :]
    too_many = TEXT + "\n" + line * (note.MAX_SIGNATURES + 1)
    bad = [
        signed.replace("medweave", "med\x01weave"),
        signed.replace("\u2014 ", "- "),
        signed.rstrip("\n"),
        TEXT + "\n",
        TEXT + "\n" + line.replace(" ", "  ", 1),
        TEXT + "\n" + line.replace("=\n", "\n"),
        too_many,
    ]
    for text in bad:
        with pytest.raises(MalformedNoteError):
            open_note(text, [a.verifier()])
    with pytest.raises(MalformedNoteError):
        open_note(signed.encode().replace(b"medweave", b"\xffedweave"), [a.verifier()])
    assert open_note(signed.encode(), [a.verifier()]).text == TEXT
    assert len(open_note(TEXT + "\n" + line * note.MAX_SIGNATURES, [a.verifier()]).sigs) == 1
    for text in ["no newline", "bell\x07\n"]:
        with pytest.raises(MalformedNoteError):
            sign(text, [a])
    with pytest.raises(InvalidKeyError):
        sign(TEXT, [])


# --- hypothesis ---------------------------------------------------------------------------

LINE = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=40)
NOTE_TEXT = st.lists(LINE, min_size=1, max_size=6).map(lambda lines: "\n".join(lines) + "\n")
ALPHABET = "\n \u2014+=/Aa09.-\x00\x7f\r\t\u00e9\u3000\ud800"


@st.composite
def mutated(draw: st.DrawFn, base: str) -> str:
    s = base
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(s)))
        c = draw(st.sampled_from(ALPHABET) | st.characters(codec="utf-8"))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        s = s[:i] + c + s[i:] if op == "insert" else s[:i] + ("" if op == "delete" else c) + s[i + 1 :]
    return s


SIGNER = Signer("h.example/log", SEED)
BASE_NOTE = sign(TEXT, [SIGNER, Signer("w.example", SEED, kind="cosignature")], timestamp=1)


@settings(deadline=None)
@given(text=NOTE_TEXT, ts=st.integers(0, note.MAX_TIMESTAMP))
def test_sign_then_open_round_trips(text: str, ts: int) -> None:
    cosigner = Signer("w.example", SEED, kind="cosignature")
    if text.count("\n") < 2:  # a cosigned message has at least three lines (a checkpoint)
        with pytest.raises(NoteError):
            sign(text, [SIGNER, cosigner], timestamp=ts)
        cosigner = SIGNER
    signed = sign(text, [SIGNER, cosigner], timestamp=ts)
    opened = open_note(signed, [SIGNER.verifier(), cosigner.verifier()])
    want = [SIGNER.name] if cosigner is SIGNER else [SIGNER.name, "w.example"]  # repeats dropped
    assert opened.text == text and [s.name for s in opened.sigs] == want


@settings(deadline=None)
@given(s=st.text() | st.binary() | mutated(BASE_NOTE))
def test_mutated_notes_open_or_raise_note_error(s: str | bytes) -> None:
    try:
        opened = open_note(s, [SIGNER.verifier()])
    except NoteError:
        return
    assert opened.text == TEXT  # only a change outside the signed text can survive


@given(s=st.text() | mutated(SIGNER.verifier().vkey))
def test_random_vkeys_parse_or_raise(s: str) -> None:
    try:
        v = parse_vkey(s)
    except NoteError:
        return
    name, hex_id, key64 = s.split("+", 2)
    assert v.vkey == f"{name}+{hex_id.lower()}+{key64}"


@given(s=st.text() | mutated(generate("r.example")[0]))
def test_random_skeys_parse_or_raise(s: str) -> None:
    try:
        parse_skey(s)
    except NoteError:
        return


@given(seed=st.binary(min_size=32, max_size=32), kind=st.sampled_from(["ed25519", "cosignature"]))
def test_vkey_format_parse_round_trip(seed: bytes, kind: note.KeyKind) -> None:
    v = Signer("rt.example/x", seed, kind=kind).verifier()
    back = parse_vkey(v.vkey)
    assert (back.name, back.key_id, back.kind, back.public_key) == (v.name, v.key_id, kind, v.public_key)
