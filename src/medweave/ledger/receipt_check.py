"""Checking a receipt offline, with public keys only (``medweave ledger verify-receipt``). Pure.

A receipt (https://c2sp.org/tlog-proof) is valid when its checkpoint is signed by the log key,
every named witness has cosigned it, and its inclusion proof takes the leaf hash of the entry's
commitment (the ``extra`` data) to the checkpoint's root.
"""

from __future__ import annotations

from collections.abc import Sequence

from medweave.ledger.checkpoint import Checkpoint, cosignatures
from medweave.ledger.hashing import leaf_hash
from medweave.ledger.note import Verifier
from medweave.ledger.receipt import Receipt, ReceiptError
from medweave.ledger.verify import verify_inclusion


def check_receipt(
    text: str, *, log: Verifier, witnesses: Sequence[Verifier] = ()
) -> tuple[Checkpoint, bytes]:
    """(the checkpoint, the committed entry) of a valid receipt.

    Raises ``NoteError`` (a ``ReceiptError`` for the format, others for signatures) or
    ``ProofError`` when it is not valid."""
    receipt = Receipt.parse(text)
    checkpoint, _ = receipt.open(log=log, cosigners=witnesses)
    found = cosignatures(receipt.checkpoint, witnesses)
    missing = [w.name for w in witnesses if (w.name, w.key_id) not in found]
    if missing:
        raise ReceiptError(f"not cosigned by {', '.join(missing)}")
    if receipt.extra is None:
        raise ReceiptError("the receipt carries no entry (extra line) to check")
    verify_inclusion(receipt.index, checkpoint.size, leaf_hash(receipt.extra), receipt.proof, checkpoint.root)
    return checkpoint, receipt.extra
