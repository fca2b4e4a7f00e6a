"""Signed notes with Ed25519 keys (https://c2sp.org/signed-note), as golang.org/x/mod/sumdb/note.

A signed note is a text ending in a newline, a blank line, then one or more lines
``— <key name> base64(key ID(4) || signature)``. A key is named ``<name>+<hex key ID>+<base64
(type || public key)>`` (a *vkey*) or ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type || seed)>``
(an *skey*), where key ID = SHA-256(name || 0x0A || type || public key)[:4], big-endian.

Two key types: ``0x01``, Ed25519 over the note text, and ``0x04``, the timestamped Ed25519
cosignature of https://c2sp.org/tlog-cosignature, which signs ``cosignature/v1\\ntime <t>\\n`` + text
and carries ``timestamp(8, big-endian) || signature(64)``. Pure: no I/O.

    NoteError (ValueError)
    +-- MalformedNoteError     the text is not a signed note (or a line not a signature line)
    +-- InvalidKeyError        a bad skey or vkey, or an unusable signer or verifier
    +-- InvalidSignatureError  a known key's signature does not verify
    +-- UnverifiedNoteError    no signature from a known key
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KeyKind = Literal["ed25519", "cosignature"]
TYPE_ED25519 = 0x01
TYPE_COSIGNATURE_V1 = 0x04
_TYPES: dict[KeyKind, int] = {"ed25519": TYPE_ED25519, "cosignature": TYPE_COSIGNATURE_V1}
_KINDS = {v: k for k, v in _TYPES.items()}
MAX_SIGNATURES = 100  # golang.org/x/mod's limit; the spec asks for at least 16
MAX_TIMESTAMP = 2**63 - 1  # https://c2sp.org/tlog-cosignature: "MUST NOT exceed 2^63 - 1"
DASH = "\u2014 "
# Go's unicode.IsSpace, which x/mod uses for names (str.isspace also takes U+001C..U+001F).
_SPACES = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    chr(c) for c in range(0x2000, 0x200B)
)
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


class NoteError(ValueError):
    """Base of the ledger's format errors (notes, checkpoints, receipts, witness requests)."""


class MalformedNoteError(NoteError):
    """Not a well-formed signed note."""


class InvalidKeyError(NoteError):
    """A malformed or inconsistent key, or a key used for what its type does not do."""


class InvalidSignatureError(NoteError):
    """A signature by a known key that does not verify: the whole note is rejected."""

    def __init__(self, name: str, key_id: int) -> None:
        super().__init__(f"invalid signature for key {name}+{key_id:08x}")
        self.name, self.key_id = name, key_id


class UnverifiedNoteError(NoteError):
    """A well-formed note with no signature from a known key; ``note`` holds what was read."""

    def __init__(self, note: Note) -> None:
        super().__init__("note has no verifiable signatures")
        self.note = note


def b64decode_strict(s: str) -> bytes:
    """Standard base64 (RFC 4648 section 4) in its one canonical spelling, or ``ValueError``."""
    try:
        raw = base64.b64decode(s.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError("invalid base64") from exc
    if base64.b64encode(raw).decode("ascii") != s:
        raise ValueError("non-canonical base64")
    return raw


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def is_valid_name(name: str) -> bool:
    """A key name: non-empty UTF-8 without Unicode spaces or ``+``."""
    return bool(name) and _utf8(name) and "+" not in name and not any(c in _SPACES for c in name)


def check_text(text: str) -> None:
    """Valid UTF-8 without ASCII control characters other than newline, or ``MalformedNoteError``."""
    if not _utf8(text) or _CONTROL.search(text):
        raise MalformedNoteError("a note must be UTF-8 without control characters other than newline")


def key_id(name: str, typed_key: bytes) -> int:
    """SHA-256(name || 0x0A || type || public key)[:4] as a big-endian uint32."""
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + typed_key).digest()[:4], "big")


def cosignature_v1_message(timestamp: int, text: bytes) -> bytes:
    """The message an Ed25519 cosignature signs (https://c2sp.org/tlog-cosignature)."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp {timestamp} out of range")
    if text.count(b"\n") < 2:  # transparency-dev/formats: at least three lines
        raise NoteError("a cosigned note has at least three lines")
    return b"cosignature/v1\ntime %d\n" % timestamp + text


class Verifier:
    """Checks signatures by one key: plain note signatures (type 0x01) or cosignatures (0x04)."""

    __slots__ = ("_key", "key_id", "kind", "name", "public_key")

    def __init__(self, name: str, public_key: bytes, *, kind: KeyKind = "ed25519") -> None:
        if not is_valid_name(name):
            raise InvalidKeyError(f"invalid key name {name!r}")
        if kind not in _TYPES or len(public_key) != 32:
            raise InvalidKeyError("an Ed25519 public key is 32 bytes")
        self.name, self.kind, self.public_key = name, kind, bytes(public_key)
        self.key_id = key_id(name, bytes([_TYPES[kind]]) + public_key)
        try:
            self._key = Ed25519PublicKey.from_public_bytes(public_key)
        except ValueError:
            raise InvalidKeyError("not an Ed25519 public key") from None

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Whether ``sig`` (the bytes after the key ID) is this key's signature of ``msg``."""
        if self.kind == "cosignature":
            if len(sig) != 8 + 64:
                return False
            try:
                msg = cosignature_v1_message(int.from_bytes(sig[:8], "big"), msg)
            except NoteError:
                return False
            sig = sig[8:]
        try:
            self._key.verify(sig, msg)
        except InvalidSignature:
            return False
        return True

    @property
    def vkey(self) -> str:
        """This key as ``<name>+<hex key ID>+<base64(type || public key)>``."""
        return format_vkey(self.name, self.public_key, kind=self.kind)

    def __repr__(self) -> str:
        return f"Verifier({self.vkey!r})"


class Signer:
    """Signs with one Ed25519 key; a ``cosignature`` signer needs the timestamp it attests."""

    __slots__ = ("_key", "key_id", "kind", "name")

    def __init__(self, name: str, seed: bytes, *, kind: KeyKind = "ed25519") -> None:
        if not is_valid_name(name):
            raise InvalidKeyError(f"invalid key name {name!r}")
        if kind not in _TYPES or len(seed) != 32:
            raise InvalidKeyError("an Ed25519 seed is 32 bytes")
        self.name, self.kind = name, kind
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.key_id = key_id(name, bytes([_TYPES[kind]]) + self.public_key)

    @property
    def public_key(self) -> bytes:
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, msg: bytes, *, timestamp: int | None = None) -> bytes:
        """The signature bytes (without the key ID); ``timestamp`` is used by cosignature keys only."""
        if self.kind == "ed25519":
            return self._key.sign(msg)
        if timestamp is None:
            raise InvalidKeyError("a cosignature signs a timestamp: pass timestamp=")
        message = cosignature_v1_message(timestamp, msg)
        return timestamp.to_bytes(8, "big") + self._key.sign(message)

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.public_key, kind=self.kind)

    def __repr__(self) -> str:
        return f"Signer({self.name!r}, {self.key_id:08x}, {self.kind!r})"


def format_vkey(name: str, public_key: bytes, *, kind: KeyKind = "ed25519") -> str:
    """``<name>+<hex key ID>+<base64(type || public key)>``."""
    v = Verifier(name, public_key, kind=kind)  # validates
    return f"{name}+{v.key_id:08x}+{b64(bytes([_TYPES[kind]]) + public_key)}"


def _decode_key(name: str, hex_id: str, key64: str) -> tuple[int, KeyKind, bytes]:
    if not is_valid_name(name) or not _HEX8.fullmatch(hex_id):
        raise InvalidKeyError("malformed key: bad name or key ID")
    try:
        key = b64decode_strict(key64)
    except ValueError:
        raise InvalidKeyError("malformed key: bad base64") from None
    if not key or key[0] not in _KINDS:
        raise InvalidKeyError("unknown key type")
    if len(key) != 33:
        raise InvalidKeyError("an Ed25519 key is 32 bytes")
    return int(hex_id, 16), _KINDS[key[0]], key[1:]


def parse_vkey(text: str) -> Verifier:
    """A verifier from ``<name>+<hex key ID>+<base64(type || public key)>`` (type 0x01 or 0x04)."""
    parts = text.split("+", 2)  # the base64 part may itself contain "+"
    if len(parts) != 3:
        raise InvalidKeyError("malformed verifier key")
    want, kind, public_key = _decode_key(*parts)
    v = Verifier(parts[0], public_key, kind=kind)
    if v.key_id != want:
        raise InvalidKeyError("verifier key ID does not match the key")
    return v


def parse_skey(text: str) -> Signer:
    """A signer from ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type || 32-byte seed)>``."""
    parts = text.split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
        raise InvalidKeyError("malformed signer key")
    want, kind, seed = _decode_key(*parts[2:])
    s = Signer(parts[2], seed, kind=kind)
    if s.key_id != want:
        raise InvalidKeyError("signer key ID does not match the key")
    return s


def generate(name: str, *, kind: KeyKind = "ed25519") -> tuple[str, str]:
    """A fresh key pair ``(skey, vkey)``; the skey is secret."""
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    s = Signer(name, seed, kind=kind)
    return f"PRIVATE+KEY+{name}+{s.key_id:08x}+{b64(bytes([_TYPES[kind]]) + seed)}", s.verifier().vkey


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key ID and the base64 of key ID || signature."""

    name: str
    key_id: int
    b64: str

    @property
    def signature(self) -> bytes:
        """The signature bytes after the 4-byte key ID."""
        return b64decode_strict(self.b64)[4:]

    def line(self) -> str:
        return f"{DASH}{self.name} {self.b64}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: its text, the verified signatures and those by unknown keys."""

    text: str
    sigs: tuple[Signature, ...]
    unverified_sigs: tuple[Signature, ...] = ()


def signature_line(name: str, key: int, sig: bytes) -> str:
    """``— <name> base64(key ID || sig)\\n``."""
    return f"{DASH}{name} {b64(key.to_bytes(4, 'big') + sig)}\n"


def parse_signature_line(line: str) -> Signature:
    """One ``— <name> <base64>`` line (its newline optional); no verification."""
    body = line.removesuffix("\n")
    check_text(body)
    if not body.startswith(DASH) or "\n" in body:
        raise MalformedNoteError("a signature line starts with an em dash and a space")
    name, _, sig64 = body[len(DASH) :].partition(" ")
    try:
        raw = b64decode_strict(sig64)
    except ValueError:
        raise MalformedNoteError("signature is not base64") from None
    if not is_valid_name(name) or len(raw) < 5:
        raise MalformedNoteError("malformed signature line")
    return Signature(name, int.from_bytes(raw[:4], "big"), sig64)


def split_signatures(note: str | bytes) -> tuple[str, tuple[Signature, ...]]:
    """The text and signature lines of a note, checked for form only: nothing is verified."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedNoteError("a note is UTF-8") from None
    check_text(note)
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n") or split + 2 == len(note):
        raise MalformedNoteError("a note ends with a blank line and signature lines")
    lines = note[split + 2 :].split("\n")[:-1]
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"more than {MAX_SIGNATURES} signatures")
    return note[: split + 1], tuple(parse_signature_line(line) for line in lines)


def open_note(note: str | bytes, verifiers: Iterable[Verifier]) -> Note:
    """Parse a signed note and verify it, as golang.org/x/mod/sumdb/note.Open.

    Signatures by unknown keys (name and key ID) are kept unverified; a known key whose
    signature fails raises ``InvalidSignatureError``; no verified signature raises
    ``UnverifiedNoteError``. Repeated signatures by one key are dropped after the first.
    """
    known: dict[tuple[str, int], list[Verifier]] = {}
    for v in verifiers:
        same = known.setdefault((v.name, v.key_id), [])
        if not any(u.kind == v.kind and u.public_key == v.public_key for u in same):
            same.append(v)
    text, sigs = split_signatures(note)
    msg = text.encode()
    verified: list[Signature] = []
    unverified: list[Signature] = []
    seen: set[tuple[str, int]] = set()
    for sig in sigs:
        found = known.get((sig.name, sig.key_id))
        if found is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if len(found) > 1:
            raise InvalidKeyError(f"ambiguous key {sig.name}+{sig.key_id:08x}")
        if (sig.name, sig.key_id) in seen:
            continue
        seen.add((sig.name, sig.key_id))
        if not found[0].verify(msg, sig.signature):
            raise InvalidSignatureError(sig.name, sig.key_id)
        verified.append(sig)
    opened = Note(text, tuple(verified), tuple(unverified))
    if not verified:
        raise UnverifiedNoteError(opened)
    return opened


def sign(text: str, signers: Iterable[Signer], *, timestamp: int | None = None) -> str:
    """``text`` (ending in a newline), a blank line and one signature line per signer.

    ``timestamp`` (POSIX seconds) is what cosignature signers attest; plain signers ignore it.
    """
    check_text(text)
    if not text.endswith("\n"):
        raise MalformedNoteError("note text must end in a newline")
    msg = text.encode()
    lines = [signature_line(s.name, s.key_id, s.sign(msg, timestamp=timestamp)) for s in signers]
    if not lines:
        raise InvalidKeyError("a note needs at least one signer")
    return text + "\n" + "".join(lines)


def _utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
