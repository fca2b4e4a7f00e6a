"""The ledger service: sequences the audit trail and record versions into the Merkle log.

``sequence`` takes one batch (at most ``batch`` entries): the audit rows after the head's
``audit_seq`` and the queued record versions. In ONE transaction it computes each entry's salted
commitment and leaf hash, appends the leaves to the tree (storing every completed node), takes
the versions out of the queue, signs a checkpoint for the new size and moves the head. Sources
are durable before the ledger sees them, and the batch commits or rolls back whole, so a crash
(even SIGKILL) loses nothing: the next run picks up where the last commit left off.
``Sequencer`` runs it every ``interval`` seconds in a thread (``medweave serve`` and
``medweave worker`` start one; any number may run, they take turns on the head's lock).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from medweave.audit.service import read_after
from medweave.db import read_tx, write_tx
from medweave.errors import Gone, InvalidInput, NotFound
from medweave.ledger import store
from medweave.ledger.checkpoint import Checkpoint, add_cosignatures, open_checkpoint
from medweave.ledger.commitment import audit_leaf, new_salt, version_leaf
from medweave.ledger.hashing import leaf_hash
from medweave.ledger.note import NoteError, Signer, Verifier, sign
from medweave.ledger.proof import consistency_proof, inclusion_proof
from medweave.ledger.receipt import Receipt
from medweave.ledger.sources import AUDIT, VERSION, Salts, SourceGone, commitment
from medweave.ledger.verify import ProofError, verify_inclusion
from medweave.records import feed, keys
from medweave.security.crypto import MasterKey

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """The latest checkpoint as served: the signed note with the witnesses' cosignatures."""

    size: int
    root: bytes
    note: str  # the log's signed note plus cosignature lines
    witnesses: tuple[str, ...]
    witnessed: bool  # cosigned by at least the quorum of witnesses


class LedgerService:
    def __init__(
        self, engine: Engine, *, master: MasterKey, signer: Signer, batch: int = 1000, quorum: int = 0
    ) -> None:
        if batch < 1 or quorum < 0:
            raise ValueError("batch must be at least 1, quorum at least 0")
        self.engine = engine
        self.master = master
        self.signer = signer
        self.batch = batch
        self.quorum = quorum  # witnesses that must cosign a checkpoint for it to count as witnessed
        self._keys_seen: keys.SaltCache = {}  # spares unwrapping a patient's key in every batch

    @property
    def origin(self) -> str:
        return self.signer.name

    @property
    def verifier(self) -> Verifier:
        return self.signer.verifier()

    @property
    def vkey(self) -> str:
        return self.verifier.vkey

    # -- sequencing -----------------------------------------------------------------------------

    def sequence(self) -> int:
        """Commit one batch of new entries; returns how many (0 when nothing was waiting)."""
        with write_tx(self.engine) as conn:
            head = store.lock_head(conn)
            audits = read_after(conn, head.audit_seq, limit=self.batch)
            versions = feed.pending(conn, limit=self.batch - len(audits)) if len(audits) < self.batch else []
            if not audits and not versions:
                return 0
            tree = store.compact_range(conn, head.size)
            salts = Salts(conn, self.master, self._keys_seen)
            salts.prefetch([r.patient_id for r in audits] + [v.patient_id for v in versions], create=True)
            now = datetime.now(UTC)
            entries: list[store.Entry] = []
            nodes: list[tuple[tuple[int, int], bytes]] = []

            def add(kind: str, ref: str, commitment: bytes, salt: bytes | None) -> None:
                leaf = leaf_hash(commitment)
                entries.append(store.Entry(tree.size, kind, ref, leaf, salt, now))
                nodes.extend(tree.append(leaf))

            for record in audits:
                salt, kept = _salt_for(salts, record.patient_id)
                add(AUDIT, str(record.seq), audit_leaf(record, salt=salt), kept)
            for version in versions:
                salt, kept = _salt_for(salts, version.patient_id)
                add(VERSION, version.ref, version_leaf(version, salt=salt), kept)
            store.add_entries(conn, entries)
            store.add_nodes(conn, nodes)
            feed.done(conn, outbox=[v.outbox for v in versions if v.outbox is not None])
            root = tree.root()
            note = sign(Checkpoint(self.origin, tree.size, root).text(), [self.signer])
            store.add_checkpoint(conn, size=tree.size, root=root, note=note)
            audit_seq = int(audits[-1].seq) if audits and audits[-1].seq is not None else head.audit_seq
            store.move_head(conn, store.Head(tree.size, audit_seq))
        return len(entries)

    def sequence_all(self) -> int:
        """Sequence until nothing waits; returns the number of entries added."""
        total = 0
        while n := self.sequence():
            total += n
        return total

    # -- reading --------------------------------------------------------------------------------

    def size(self) -> int:
        with read_tx(self.engine) as conn:
            return store.head(conn).size

    def latest(self) -> Published | None:
        with read_tx(self.engine) as conn:
            found = store.latest_checkpoint(conn)
            if found is None:
                return None
            cosigs = store.cosignatures(conn, found.size)
        note = add_cosignatures(found.note, [line for _, line in cosigs])
        names = tuple(w for w, _ in cosigs)
        return Published(found.size, found.root, note, names, len(names) >= self.quorum)

    def inclusion_proof(self, *, index: int, size: int) -> list[bytes]:
        with read_tx(self.engine) as conn:
            self._check_size(conn, size)
            if not 0 <= index < size:
                raise InvalidInput(f"index must be in [0, {size})")
            return inclusion_proof(index, size, lambda ids: store.nodes(conn, ids))

    def consistency_proof(self, *, old: int, new: int) -> list[bytes]:
        with read_tx(self.engine) as conn:
            self._check_size(conn, new)
            if not 0 <= old <= new:
                raise InvalidInput(f"old must be in [0, {new}]")
            return consistency_proof(old, new, lambda ids: store.nodes(conn, ids))

    def entry(self, *, kind: str, ref: str) -> store.Entry:
        with read_tx(self.engine) as conn:
            found = store.entry(conn, kind=kind, ref=ref)
        if found is None:
            raise NotFound(f"{kind} {ref} is not in the ledger (yet)")
        return found

    # -- receipts and checks ------------------------------------------------------------------------

    def receipt(self, *, kind: str, ref: str) -> str:
        """A C2SP tlog-proof receipt for one entry, against the latest checkpoint (with its
        cosignatures). ``extra`` carries the entry's commitment (PHI-free): its leaf hash is what
        the proof includes, so a verifier needs nothing else. 404 until the entry is sequenced."""
        with read_tx(self.engine) as conn:
            entry = store.entry(conn, kind=kind, ref=ref)
            latest = store.latest_checkpoint(conn)
            if entry is None or latest is None or entry.idx >= latest.size:
                raise NotFound(f"{kind} {ref} is not in a checkpoint yet")
            try:
                found = commitment(conn, entry, Salts(conn, self.master))
            except SourceGone as exc:
                raise Gone(f"{kind} {ref}: {exc}") from None
            if found is None:
                raise Gone(f"{kind} {ref} belongs to an erased patient and can no longer be linked")
            proof = inclusion_proof(entry.idx, latest.size, lambda ids: store.nodes(conn, ids))
            cosigs = [line for _, line in store.cosignatures(conn, latest.size)]
        note = add_cosignatures(latest.note, cosigs)
        return Receipt(entry.idx, tuple(proof), note, extra=found).text()

    def check_entries(self, *, kind: str, refs: Sequence[str]) -> dict[str, str]:
        """For each ref: ``verified`` (its source gives its leaf, and the leaf is in the latest signed
        checkpoint by an inclusion proof), ``pending`` (not sequenced yet) or ``failed``."""
        out: dict[str, str] = {}
        with read_tx(self.engine) as conn:
            latest = store.latest_checkpoint(conn)
            salts = Salts(conn, self.master)
            for ref in refs:
                entry = store.entry(conn, kind=kind, ref=ref)
                if entry is None or latest is None or entry.idx >= latest.size:
                    out[ref] = "pending"
                    continue
                out[ref] = "failed"
                try:
                    found = commitment(conn, entry, salts)
                    if found is None or leaf_hash(found) != entry.leaf_hash:
                        continue
                    proof = inclusion_proof(entry.idx, latest.size, lambda ids: store.nodes(conn, ids))
                    checkpoint, _ = open_checkpoint(latest.note, log=self.verifier)
                    verify_inclusion(entry.idx, checkpoint.size, entry.leaf_hash, proof, checkpoint.root)
                except (SourceGone, store.MissingNodes, ProofError, NoteError):
                    continue
                out[ref] = "verified"
        return out

    @staticmethod
    def _check_size(conn: Connection, size: int) -> None:
        if store.checkpoint(conn, size) is None:
            raise NotFound(f"no checkpoint of size {size}: ask for a size the log has published")


def _salt_for(salts: Salts, patient_id: str | None) -> tuple[bytes, bytes | None]:
    """(the salt of a new entry, what to store with it). A patient's salt is derived from their
    key (made now if they have none) and stored nowhere; an entry of no patient gets a random salt,
    stored with it. A patient already erased gets a random salt kept nowhere, so the entry can
    never be linked to them."""
    if patient_id is None:
        salt = new_salt()
        return salt, salt
    derived = salts.patient(patient_id, create=True)
    return (derived, None) if derived is not None else (new_salt(), None)


class Sequencer:
    """Runs ``LedgerService.sequence`` every ``interval`` seconds (and at once while a batch was
    full) in a daemon thread, until ``stop``; then ``after`` (asking witnesses to cosign)."""

    def __init__(
        self, ledger: LedgerService, *, interval: float = 0.25, after: Callable[[], object] | None = None
    ) -> None:
        self.ledger = ledger
        self.interval = interval
        self.after = after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="medweave-ledger", daemon=True)

    def start(self) -> Sequencer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                n = self.ledger.sequence()
                if self.after is not None:
                    self.after()
            except Exception as exc:  # keep going: the next run retries the same batch
                _log.error("ledger sequencing failed: %s", type(exc).__name__)
                n = 0
            if n < self.ledger.batch:
                self._stop.wait(self.interval)
