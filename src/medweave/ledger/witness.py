"""The witness's judgement of an ``add-checkpoint`` request (https://c2sp.org/tlog-witness).

Pure: given the request, what the witness last cosigned for that log, and the witness's key,
either a cosignature to send back or a ``ProtocolError`` whose ``status`` is the answer:

- 400 malformed, or an old size beyond the checkpoint;
- 404 a log (origin) this witness does not know;
- 403 the checkpoint is not signed by the key the witness trusts for that origin;
- 409 the old size is not the size the witness last cosigned (``StaleSize`` carries that size,
  sent back as ``text/x.tlog.size``), or the same size with another root (a split view);
- 422 the consistency proof from the old checkpoint does not verify.

The caller persists the new size and root by compare-and-swap before answering.
"""

from __future__ import annotations

from dataclasses import dataclass

from medweave.ledger.checkpoint import cosign, open_checkpoint
from medweave.ledger.note import NoteError, Signer, parse_vkey, split_signatures
from medweave.ledger.verify import ProofError, verify_witness_consistency
from medweave.ledger.witness_protocol import AddCheckpoint, ProtocolError, Status, precheck


class StaleSize(ProtocolError):
    """409: the request's old size is not the latest size this witness cosigned for the log."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the latest checkpoint cosigned for this log has size {size}", Status.CONFLICT)
        self.size = size


@dataclass(frozen=True)
class Known:
    """What the witness holds for one log: the trusted key and the latest cosigned checkpoint."""

    vkey: str
    size: int
    root: bytes | None


@dataclass(frozen=True)
class Cosigned:
    origin: str
    size: int
    root: bytes
    line: str  # the cosignature line to answer with


def judge(request: AddCheckpoint, *, known: Known | None, signer: Signer, timestamp: int) -> Cosigned:
    """Check the request against the witness's state; the cosignature, or ``ProtocolError``."""
    precheck(request)
    tree = request.tree()
    if known is None:
        raise ProtocolError(f"unknown log {tree.origin!r}", Status.NOT_FOUND)
    try:
        open_checkpoint(request.checkpoint, log=parse_vkey(known.vkey), origin=tree.origin)
    except NoteError as exc:
        raise ProtocolError(
            f"the checkpoint is not signed by the log's key: {exc}", Status.FORBIDDEN
        ) from None
    if request.old_size != known.size:
        raise StaleSize(known.size)
    if tree.size == known.size and known.root is not None:
        if tree.root != known.root:
            raise ProtocolError("a different root for the size already cosigned", Status.CONFLICT)
    else:
        try:
            verify_witness_consistency(request.old_size, tree.size, request.proof, known.root, tree.root)
        except ProofError as exc:
            raise ProtocolError(
                f"the consistency proof does not verify: {exc}", Status.UNPROCESSABLE
            ) from None
    text = split_signatures(request.checkpoint)[0]
    return Cosigned(tree.origin, tree.size, tree.root, cosign(text, signer, timestamp))
