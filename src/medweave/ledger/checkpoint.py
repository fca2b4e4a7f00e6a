"""Checkpoints (https://c2sp.org/tlog-checkpoint) and their Ed25519 cosignatures
(https://c2sp.org/tlog-cosignature, ``cosignature/v1``). Pure: no I/O.

A checkpoint is the text of a signed note: the origin line, the tree size in decimal (no leading
zeros), the base64 RFC 6962 root hash, then optional non-empty extension lines. A cosignature is
one more signature line on that note, by a type 0x04 key, whose bytes are key ID(4) || timestamp
(8, big-endian) || Ed25519 signature(64) over ``cosignature/v1\\ntime <t>\\n`` + the note text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from medweave.ledger.note import (
    MAX_TIMESTAMP,
    Note,
    NoteError,
    Signature,
    Signer,
    Verifier,
    b64,
    b64decode_strict,
    check_text,
    open_note,
    parse_signature_line,
    signature_line,
    split_signatures,
)

HASH_SIZE = 32
MAX_SIZE = 2**64 - 1
COSIGNATURE_SIZE = 4 + 8 + 64
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class CheckpointError(NoteError):
    """A checkpoint that does not follow https://c2sp.org/tlog-checkpoint."""


class CosignatureError(NoteError):
    """A cosignature that is malformed, not by the expected key, or does not verify."""


def parse_decimal(s: str, *, what: str, error: type[NoteError], limit: int = MAX_SIZE) -> int:
    """An ASCII decimal with no leading zeros (``0`` alone for zero), at most ``limit``."""
    if not _DECIMAL.fullmatch(s) or int(s) > limit:
        raise error(f"{what} must be a decimal without leading zeros, at most {limit}: {s!r}")
    return int(s)


@dataclass(frozen=True)
class Checkpoint:
    """The note text of a checkpoint: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        lines = (self.origin, *self.extensions)
        if not all(lines) or any("\n" in line for line in lines):
            raise CheckpointError("origin and extension lines must be non-empty single lines")
        try:
            check_text(self.origin + "".join(self.extensions))
        except NoteError:
            raise CheckpointError("checkpoint lines must be UTF-8 without control characters") from None
        if not 0 <= self.size <= MAX_SIZE:
            raise CheckpointError(f"tree size {self.size} out of range")
        if len(self.root) != HASH_SIZE:
            raise CheckpointError(f"a root hash is {HASH_SIZE} bytes")

    def text(self) -> str:
        """The note text, ending in a newline."""
        lines = [self.origin, str(self.size), b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Strictly the format of :meth:`text`; anything else raises ``CheckpointError``."""
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint text ends in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("a checkpoint has at least three lines")
        origin, size, root, *extensions = lines
        try:
            hash_ = b64decode_strict(root)
        except ValueError:
            raise CheckpointError("root hash is not base64") from None
        return cls(
            origin, parse_decimal(size, what="tree size", error=CheckpointError), hash_, tuple(extensions)
        )


def open_checkpoint(
    signed: str, *, log: Verifier, origin: str | None = None, cosigners: Iterable[Verifier] = ()
) -> tuple[Checkpoint, Note]:
    """Verify a signed checkpoint: the log's own signature must be among those verified.

    ``origin`` defaults to the log key's name (which, per the spec, it SHOULD match).
    Known cosigners' signatures are verified too (a bad one rejects the note).
    """
    note = open_note(signed, [log, *cosigners])
    if not any(s.name == log.name and s.key_id == log.key_id for s in note.sigs):
        raise CheckpointError(f"checkpoint not signed by the log key {log.name}")
    checkpoint = Checkpoint.parse(note.text)
    if checkpoint.origin != (log.name if origin is None else origin):
        raise CheckpointError(f"unexpected origin {checkpoint.origin!r}")
    return checkpoint, note


def parse_cosignature(sig: bytes) -> tuple[int, int, bytes]:
    """Split key ID(4) || timestamp(8) || Ed25519 signature(64) into its three parts."""
    if len(sig) != COSIGNATURE_SIZE:
        raise CosignatureError(f"an Ed25519 cosignature is {COSIGNATURE_SIZE} bytes, not {len(sig)}")
    timestamp = int.from_bytes(sig[4:12], "big")
    if timestamp > MAX_TIMESTAMP:
        raise CosignatureError("cosignature timestamp exceeds 2^63 - 1")
    return int.from_bytes(sig[:4], "big"), timestamp, sig[12:]


def cosign(checkpoint_text: str, signer: Signer, timestamp: int) -> str:
    """The signature line by which ``signer`` (a cosignature key) cosigns the checkpoint at ``timestamp``."""
    Checkpoint.parse(checkpoint_text)
    if signer.kind != "cosignature":
        raise CosignatureError("cosigning needs a cosignature (type 0x04) key")
    return signature_line(
        signer.name, signer.key_id, signer.sign(checkpoint_text.encode(), timestamp=timestamp)
    )


def verify_cosignature(
    checkpoint_text: str, line: str | Signature, verifier: Verifier, *, not_after: int | None = None
) -> int:
    """Check one cosignature line by ``verifier`` on the checkpoint; return its timestamp.

    With ``not_after`` (POSIX seconds), timestamps later than it are rejected as in the future.
    """
    Checkpoint.parse(checkpoint_text)
    sig = parse_signature_line(line) if isinstance(line, str) else line
    if verifier.kind != "cosignature":
        raise CosignatureError("a cosignature is checked with a cosignature (type 0x04) key")
    if (sig.name, sig.key_id) != (verifier.name, verifier.key_id):
        raise CosignatureError(f"signature by {sig.name}+{sig.key_id:08x}, not by {verifier.name}")
    try:
        raw = b64decode_strict(sig.b64)
    except ValueError:
        raise CosignatureError("signature is not base64") from None
    _, timestamp, _ = parse_cosignature(raw)
    if not verifier.verify(checkpoint_text.encode(), sig.signature):
        raise CosignatureError(f"cosignature by {sig.name} does not verify")
    if not_after is not None and timestamp > not_after:
        raise CosignatureError(f"cosignature by {sig.name} is dated in the future")
    return timestamp


def add_cosignatures(signed: str, lines: Iterable[str]) -> str:
    """Append signature lines (e.g. a witness response) to a signed checkpoint note.

    Nothing is verified here. A new line replaces an existing one by the same key (name and key
    ID), as golang.org/x/mod's ``note.Sign`` does; exact repeats are dropped.
    """
    text, existing = split_signatures(signed)
    Checkpoint.parse(text)
    new = [parse_signature_line(line) for line in lines]
    keys = {(s.name, s.key_id) for s in new}
    kept = [s for s in existing if (s.name, s.key_id) not in keys]
    out: list[Signature] = []
    for s in [*kept, *new]:
        if s not in out:
            out.append(s)
    return text + "\n" + "".join(s.line() for s in out)


def cosignatures(signed: str, cosigners: Iterable[Verifier]) -> dict[tuple[str, int], int]:
    """The cosignatures on a signed checkpoint by known cosigners: ``{(name, key ID): timestamp}``.

    Signatures by other keys are ignored, as the note spec requires; a known cosigner's bad
    signature raises ``CosignatureError``. The log's own signature is not checked here.
    """
    text, sigs = split_signatures(signed)
    known = {(v.name, v.key_id): v for v in cosigners}
    found: dict[tuple[str, int], int] = {}
    for sig in sigs:
        v = known.get((sig.name, sig.key_id))
        if v is not None and (sig.name, sig.key_id) not in found:
            found[sig.name, sig.key_id] = verify_cosignature(text, sig, v)
    return found
