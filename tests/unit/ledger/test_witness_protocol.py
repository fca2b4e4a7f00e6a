"""The add-checkpoint bodies of https://c2sp.org/tlog-witness: the shared vector, the spec's
examples, the stateless checks, strictness and hypothesis properties."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_vectors import group
from medweave.ledger.checkpoint import Checkpoint, cosign, open_checkpoint, parse_cosignature
from medweave.ledger.note import MAX_TIMESTAMP, NoteError, Signer, open_note, parse_vkey, sign
from medweave.ledger.witness_protocol import (
    MAX_PROOF_LINES,
    AddCheckpoint,
    ProtocolError,
    Status,
    format_cosignatures,
    format_size,
    parse_cosignatures,
    parse_size,
    precheck,
)

UPDATE = group("checkpoints_and_witness_update")
BODY_CASES = [c for c in UPDATE["cases"] if "add_checkpoint_body" in c]

# The examples of https://c2sp.org/tlog-witness (indented by four spaces there).
SPEC_REQUEST = """\
old 20852014
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=

example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=
"""  # noqa: E501
SPEC_RESPONSE = """\
— witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTSvVjyQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==
— witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiOlVlbQNt64vWhO+DlkL0+UfzuOBMh9ChdMkP1vi/lCAsmlw==
— witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz0854aLZgrrKbYKA7nC3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==
"""  # noqa: E501

LOG = Signer("log.example/ledger", hashlib.sha256(b"log").digest())
WITNESS = Signer("w.example", hashlib.sha256(b"w").digest(), kind="cosignature")
SIGNED = sign(Checkpoint(LOG.name, 20, hashlib.sha256(b"root").digest()).text(), [LOG])
HASH = hashlib.sha256(b"h").digest()


@pytest.mark.parametrize("case", BODY_CASES, ids=[c["desc"] for c in BODY_CASES])
def test_add_checkpoint_vector(case: dict[str, Any]) -> None:
    body = case["add_checkpoint_body"]
    request = AddCheckpoint.parse(body)
    assert request.text() == body and AddCheckpoint.parse(body.encode()) == request
    (consistency,) = [c for c in UPDATE["cases"] if "proof" in c]
    assert request.old_size == consistency["size1"]
    assert [h.hex() for h in request.proof] == consistency["proof"]
    checkpoint, _ = open_checkpoint(request.checkpoint, log=parse_vkey(UPDATE["log_vkey"]))
    assert (checkpoint.size, checkpoint.root.hex()) == (consistency["size2"], consistency["root2"])
    assert request.tree() == checkpoint
    precheck(request)
    # The 200 answer a witness would give, parsed back and opened against the checkpoint.
    answer = format_cosignatures([cosign(checkpoint.text(), WITNESS, 1_700_000_000)])
    opened = open_note(request.checkpoint + "".join(parse_cosignatures(answer)), [WITNESS.verifier()])
    assert [s.name for s in opened.sigs] == [WITNESS.name]


def test_spec_request_example() -> None:
    request = AddCheckpoint.parse(SPEC_REQUEST)
    assert request.text() == SPEC_REQUEST
    assert request.old_size == 20852014 and len(request.proof) == 4
    assert request.tree().origin == "example.com/behind-the-sofa" and request.tree().size == 20852163
    precheck(request)


def test_spec_response_example() -> None:
    lines = parse_cosignatures(SPEC_RESPONSE)
    assert "".join(lines) == SPEC_RESPONSE == format_cosignatures(lines)
    assert [line.split(" ")[1] for line in lines] == [
        "witness.example/w1",
        "witness.example/w1",
        "witness.example/w2",
    ]
    # The example's blobs are 76 bytes, but made up: some carry timestamps above 2^63 - 1,
    # which https://c2sp.org/tlog-cosignature forbids.
    for line in lines:
        raw = base64.b64decode(line.split(" ")[2].strip())
        assert len(raw) == 4 + 8 + 64
        if int.from_bytes(raw[4:12], "big") > MAX_TIMESTAMP:
            with pytest.raises(NoteError):
                parse_cosignature(raw)
        else:
            assert parse_cosignature(raw)[1] == int.from_bytes(raw[4:12], "big")


def test_precheck() -> None:
    ok = AddCheckpoint(old_size=10, proof=(HASH,), checkpoint=SIGNED)
    precheck(ok)
    precheck(AddCheckpoint(old_size=0, proof=(), checkpoint=SIGNED))
    precheck(AddCheckpoint(old_size=20, proof=(), checkpoint=SIGNED))
    with pytest.raises(ProtocolError) as too_big:
        precheck(AddCheckpoint(old_size=21, proof=(), checkpoint=SIGNED))
    assert too_big.value.status == Status.BAD_REQUEST == 400
    with pytest.raises(ProtocolError) as from_zero:
        precheck(AddCheckpoint(old_size=0, proof=(HASH,), checkpoint=SIGNED))
    assert from_zero.value.status == Status.UNPROCESSABLE == 422


def test_size_bodies() -> None:
    assert parse_size(format_size(20852163)) == 20852163 and format_size(0) == "0\n"
    for bad in ["07\n", "7", "7\n\n", "-7\n", " 7\n", "\n"]:
        with pytest.raises(ProtocolError):
            parse_size(bad)


def _bad_variants(body: str) -> list[str]:
    head, _, checkpoint = body.partition("\n\n")
    old, *proof = head.split("\n")
    tail = "\n\n" + checkpoint
    return [
        "\n".join([old.replace("old", "Old"), *proof]) + tail,
        "\n".join([old.replace(" ", "  "), *proof]) + tail,
        "\n".join([old.replace(" ", " 0"), *proof]) + tail,
        "\n".join(["old -1", *proof]) + tail,
        "\n".join(proof) + tail,
        "\n".join([old, *proof, base64.b64encode(b"\x00" * 31).decode()]) + tail,
        "\n".join([old, *proof, proof[0].rstrip("=")]) + tail,
        "\n".join([old, *proof]) + "\n" + checkpoint,
        "\n".join([old, *proof]) + tail.replace("\n20852163\n", "\n020852163\n"),
        "\n".join([old, *proof]) + tail.rstrip("\n"),
        "\n".join([old, *proof]) + "\n\n",
        "\n".join([old, *proof, proof[0]] + proof * 16) + tail,
    ]


def test_parse_is_strict() -> None:
    for bad in _bad_variants(SPEC_REQUEST):
        with pytest.raises(ProtocolError) as caught:
            AddCheckpoint.parse(bad)
        assert caught.value.status == Status.BAD_REQUEST
    with pytest.raises(ProtocolError):
        AddCheckpoint.parse(SPEC_REQUEST.encode().replace(b"example", b"\xffxample"))
    # "The client MUST NOT send more than 63 consistency proof lines."
    line = base64.b64encode(HASH).decode() + "\n"
    assert len(AddCheckpoint.parse("old 1\n" + line * 63 + "\n" + SIGNED).proof) == 63
    with pytest.raises(ProtocolError):
        AddCheckpoint.parse("old 1\n" + line * 64 + "\n" + SIGNED)
    for bad_lines in ["", "— w.example AAAA\n", "w.example AAAAAAA=\n", SPEC_RESPONSE + "\n"]:
        with pytest.raises(ProtocolError):
            parse_cosignatures(bad_lines)
    with pytest.raises(NoteError):
        format_cosignatures([])


# --- hypothesis ---------------------------------------------------------------------------

REQUESTS = st.builds(
    AddCheckpoint,
    old_size=st.integers(0, 2**64 - 1),
    proof=st.lists(st.binary(min_size=32, max_size=32), max_size=MAX_PROOF_LINES).map(tuple),
    checkpoint=st.sampled_from([SIGNED, SPEC_REQUEST.partition("\n\n")[2]]),
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


@given(request=REQUESTS)
def test_text_parse_round_trip(request: AddCheckpoint) -> None:
    assert AddCheckpoint.parse(request.text()) == request


@given(body=st.text() | st.binary() | REQUESTS.map(AddCheckpoint.text).flatmap(mutated))
def test_mutated_bodies_parse_canonically_or_raise(body: str | bytes) -> None:
    try:
        request = AddCheckpoint.parse(body)
    except ProtocolError as exc:
        assert exc.status == Status.BAD_REQUEST
        return
    assert request.text() == (body.decode() if isinstance(body, bytes) else body)


@given(size=st.integers(0, 2**64 - 1))
def test_size_round_trip(size: int) -> None:
    assert parse_size(format_size(size)) == size


@given(body=st.text() | mutated(SPEC_RESPONSE))
def test_mutated_responses_parse_or_raise(body: str) -> None:
    try:
        lines = parse_cosignatures(body)
    except ProtocolError:
        return
    assert "".join(lines) == body
