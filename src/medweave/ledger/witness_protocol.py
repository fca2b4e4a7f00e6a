"""The ``add-checkpoint`` call of https://c2sp.org/tlog-witness: request and response bodies.

    POST <submission prefix>/add-checkpoint

    old <size of the witness's latest cosigned checkpoint, 0 if none>
    <base64 consistency proof hash>   (zero to 63 lines; none when old is 0)

    <signed checkpoint>

The witness answers 200 with one or more cosignature lines, or one of the statuses in
:class:`Status`. The witness's own checks (keys, stored size, Merkle proof) live elsewhere; this
module holds the formats and the two shape rules that need no state (:func:`precheck`).
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from medweave.ledger.checkpoint import HASH_SIZE, Checkpoint, parse_decimal
from medweave.ledger.note import NoteError, b64, b64decode_strict, parse_signature_line, split_signatures

PATH = "/add-checkpoint"
MAX_PROOF_LINES = 63  # "The client MUST NOT send more than 63 consistency proof lines."
SIZE_CONTENT_TYPE = "text/x.tlog.size"  # the body of a 409 for a stale old size


class Status(IntEnum):
    """The HTTP statuses https://c2sp.org/tlog-witness prescribes for add-checkpoint."""

    OK = 200  # body: one or more cosignature lines ("— <name> <base64>\n")
    BAD_REQUEST = 400  # malformed body, or old size larger than the checkpoint size
    FORBIDDEN = 403  # no signature verifies against a key trusted for the origin
    NOT_FOUND = 404  # unknown checkpoint origin
    CONFLICT = 409  # old size is not the latest cosigned size (body: that size, SIZE_CONTENT_TYPE),
    #                 or the same size with a different root hash
    UNPROCESSABLE = 422  # the consistency proof does not verify (including a proof from old 0)


class ProtocolError(NoteError):
    """An add-checkpoint request or response that breaks the protocol; ``status`` is the answer."""

    def __init__(self, message: str, status: Status = Status.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request body."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: str

    def __post_init__(self) -> None:
        if len(self.proof) > MAX_PROOF_LINES or any(len(h) != HASH_SIZE for h in self.proof):
            raise ProtocolError(f"at most {MAX_PROOF_LINES} proof hashes of {HASH_SIZE} bytes")
        if self.old_size < 0:
            raise ProtocolError("old size is not negative")
        self.tree()

    def tree(self) -> Checkpoint:
        """The submitted checkpoint's body, read without verifying any signature."""
        try:
            return Checkpoint.parse(split_signatures(self.checkpoint)[0])
        except NoteError as exc:
            raise ProtocolError(f"bad checkpoint: {exc}") from None

    def text(self) -> str:
        return f"old {self.old_size}\n" + "".join(b64(h) + "\n" for h in self.proof) + "\n" + self.checkpoint

    @classmethod
    def parse(cls, body: str | bytes) -> AddCheckpoint:
        """Strictly the format of :meth:`text`; anything else raises ``ProtocolError`` (400)."""
        if isinstance(body, bytes):
            try:
                body = body.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError("the body is UTF-8") from None
        head, sep, checkpoint = body.partition("\n\n")
        old, *lines = head.split("\n")
        if not sep or not old.startswith("old "):
            raise ProtocolError("the body starts with an old size line and has a blank line")
        size = parse_decimal(old.removeprefix("old "), what="old size", error=ProtocolError)
        if len(lines) > MAX_PROOF_LINES:
            raise ProtocolError(f"more than {MAX_PROOF_LINES} consistency proof lines")
        proof = []
        for line in lines:
            try:
                proof.append(b64decode_strict(line))
            except ValueError:
                raise ProtocolError("a consistency proof line is one base64 hash") from None
        return cls(size, tuple(proof), checkpoint)


def precheck(request: AddCheckpoint) -> None:
    """The checks that need no witness state: old size within the checkpoint (else 400), and
    an empty proof from old size 0 (else 422). The RFC 6962 verifier of ``verify`` does not
    take proofs from size 0, so a witness runs this first and skips the proof when old is 0.
    """
    size = request.tree().size
    if request.old_size > size:
        raise ProtocolError(f"old size {request.old_size} exceeds the checkpoint size {size}")
    if request.old_size == 0 and request.proof:
        raise ProtocolError("the proof from old size 0 must be empty", Status.UNPROCESSABLE)


def format_size(size: int) -> str:
    """The body of a 409 answer: the latest cosigned size in decimal and a newline."""
    if size < 0:
        raise ProtocolError("a tree size is not negative")
    return f"{size}\n"


def parse_size(body: str) -> int:
    """Read a ``text/x.tlog.size`` body."""
    if not body.endswith("\n"):
        raise ProtocolError("a size body ends in a newline")
    return parse_decimal(body[:-1], what="size", error=ProtocolError)


def format_cosignatures(lines: Iterable[str]) -> str:
    """The body of a 200 answer: one or more signature lines."""
    try:
        checked = [parse_signature_line(line).line() for line in lines]
    except NoteError as exc:
        raise ProtocolError(str(exc)) from None
    if not checked:
        raise ProtocolError("a witness answers with at least one cosignature")
    return "".join(checked)


def parse_cosignatures(body: str) -> tuple[str, ...]:
    """The signature lines of a 200 answer, each ending in a newline; nothing verified."""
    if not body.endswith("\n"):
        raise ProtocolError("cosignature lines end in a newline")
    lines = body[:-1].split("\n")
    try:
        return tuple(parse_signature_line(line).line() for line in lines)
    except NoteError as exc:
        raise ProtocolError(str(exc)) from None
