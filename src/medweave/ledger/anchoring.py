"""When to anchor: the latest checkpoint that counts as witnessed, at most every ``every`` seconds.

Called after each sequencer run when a chain is configured (``MEDWEAVE_LEDGER_CHAIN_URL``). One
transaction per anchor keeps the cost bounded however busy the log is: an hourly anchor costs
about 24 transactions a day, whatever the number of entries.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from medweave.db import read_tx, write_tx
from medweave.ledger import store
from medweave.ledger.anchor import Anchored, Chain, checkpoint_digest
from medweave.ledger.service import LedgerService

#: A claim whose process has not finished sending within this time is taken over.
CLAIM_STALE = timedelta(minutes=15)


def anchor_latest(ledger: LedgerService, chain: Chain, *, every: timedelta) -> Anchored | None:
    """Anchor the latest witnessed checkpoint if it is new and the last anchor is old enough."""
    latest = ledger.latest()
    if latest is None or not latest.witnessed:
        return None
    with read_tx(ledger.engine) as conn:
        previous = store.anchors(conn)
        signed = store.checkpoint(conn, latest.size)
    if signed is None:
        return None
    if previous:
        last, when = previous[-1]
        if last.size >= latest.size or datetime.now(UTC) - when < every:
            return None
    digest = checkpoint_digest(signed.note)
    with write_tx(ledger.engine) as conn:  # one process sends it, however many try
        if not store.claim_anchor(conn, size=latest.size, digest=digest, stale_after=CLAIM_STALE):
            return None
    try:
        anchored = chain.anchor(size=latest.size, digest=digest)
    except BaseException:
        with write_tx(ledger.engine) as conn:
            store.drop_claim(conn, latest.size)
        raise
    with write_tx(ledger.engine) as conn:
        store.complete_anchor(conn, anchored)
    return anchored
