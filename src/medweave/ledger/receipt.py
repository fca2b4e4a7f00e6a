"""Offline-verifiable inclusion receipts in the format of https://c2sp.org/tlog-proof (v1).

    c2sp.org/tlog-proof@v1
    extra <base64 opaque data>        (optional, unauthenticated)
    index <zero-based leaf index>
    <base64 inclusion proof hash>     (zero or more, leaf's sibling first)

    <signed checkpoint, with cosignatures, verbatim>

Only the format is handled here; ``verify`` checks the Merkle proof. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from medweave.ledger.checkpoint import (
    HASH_SIZE,
    Checkpoint,
    open_checkpoint,
    parse_decimal,
)
from medweave.ledger.note import Note, NoteError, Verifier, b64, b64decode_strict, split_signatures

HEADER = "c2sp.org/tlog-proof@v1"
MEDIA_EXTENSION = ".tlog-proof"
MAX_PROOF_HASHES = 64  # a tree of fewer than 2^64 leaves is at most 64 levels deep


class ReceiptError(NoteError):
    """Not a well-formed https://c2sp.org/tlog-proof."""


@dataclass(frozen=True)
class Receipt:
    """A tlog-proof: leaf index, inclusion proof, signed checkpoint and optional extra data."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if self.extra is not None and not self.extra:
            raise ReceiptError("empty extra data is written as no extra line: use None")
        if len(self.proof) > MAX_PROOF_HASHES or any(len(h) != HASH_SIZE for h in self.proof):
            raise ReceiptError(f"a proof is at most {MAX_PROOF_HASHES} hashes of {HASH_SIZE} bytes")
        tree = self.tree()  # the checkpoint is a signed note whose text is a checkpoint
        if not 0 <= self.index < tree.size:
            raise ReceiptError(f"index {self.index} is not in a tree of size {tree.size}")

    def tree(self) -> Checkpoint:
        """The checkpoint's body, read without verifying any signature."""
        try:
            return Checkpoint.parse(split_signatures(self.checkpoint)[0])
        except NoteError as exc:
            raise ReceiptError(f"bad checkpoint: {exc}") from None

    def open(self, *, log: Verifier, cosigners: Iterable[Verifier] = ()) -> tuple[Checkpoint, Note]:
        """The checkpoint, verified under the log key (see ``checkpoint.open_checkpoint``)."""
        return open_checkpoint(self.checkpoint, log=log, cosigners=cosigners)

    def text(self) -> str:
        extra = [] if self.extra is None else [f"extra {b64(self.extra)}"]
        head = [HEADER, *extra, f"index {self.index}", *(b64(h) for h in self.proof)]
        return "".join(line + "\n" for line in head) + "\n" + self.checkpoint

    @classmethod
    def parse(cls, text: str) -> Receipt:
        """Strictly the format of :meth:`text`; anything else raises ``ReceiptError``."""
        head, sep, checkpoint = text.partition("\n\n")
        lines = head.split("\n")
        if not sep or lines[0] != HEADER or len(lines) < 2:
            raise ReceiptError(f"a receipt starts with {HEADER!r} and has a blank line")
        extra = None
        if lines[1].startswith("extra "):
            extra = _b64(lines.pop(1).removeprefix("extra "), "extra data")
        if len(lines) < 2 or not lines[1].startswith("index "):
            raise ReceiptError("missing index line")
        index = parse_decimal(lines[1].removeprefix("index "), what="index", error=ReceiptError)
        proof = tuple(_b64(line, "proof hash") for line in lines[2:])
        return cls(index, proof, checkpoint, extra)


def _b64(s: str, what: str) -> bytes:
    try:
        return b64decode_strict(s)
    except ValueError:
        raise ReceiptError(f"{what} is not base64") from None
