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

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from medweave.audit.service import read_after
from medweave.db import read_tx, write_tx
from medweave.errors import Gone, InvalidInput, MedweaveError, NotFound
from medweave.ledger import store
from medweave.ledger.checkpoint import Checkpoint, add_cosignatures, open_checkpoint
from medweave.ledger.commitment import audit_leaf, new_salt, version_leaf
from medweave.ledger.hashing import leaf_hash
from medweave.ledger.note import NoteError, Signer, Verifier, sign
from medweave.ledger.proof import consistency_proof, inclusion_proof
from medweave.ledger.receipt import Receipt
from medweave.ledger.sources import AUDIT, VERSION, Salts, SourceGone, patient_tag, source
from medweave.ledger.verify import ProofError, verify_inclusion
from medweave.records import feed, keys
from medweave.security.crypto import MasterKey

_log = logging.getLogger(__name__)


class LedgerCorrupt(MedweaveError):
    """The ledger's tables do not hold the tree the log signed: sequencing stops."""

    status = 500
    code = "exception"


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
        self._published: set[int] = set()  # checkpoint sizes seen: checkpoints are only appended
        # Entries keep an HMAC of their patient under this key, which only the log key yields
        # (Ed25519 signatures are deterministic), so a moved event shows even for an erased patient.
        self.tag_key = hashlib.sha256(signer.sign(b"medweave ledger patient tag key v1")).digest()

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
            self._check_frontier(conn, head.size, tree.root())
            salts = Salts(conn, self.master, self._keys_seen)
            salts.prefetch([r.patient_id for r in audits] + [v.patient_id for v in versions], create=True)
            now = datetime.now(UTC)
            entries: list[store.Entry] = []
            nodes: list[tuple[tuple[int, int], bytes]] = []

            def add(kind: str, ref: str, commitment: bytes, salt: bytes | None, patient: str | None) -> None:
                leaf = leaf_hash(commitment)
                tag = patient_tag(self.tag_key, patient)
                entries.append(store.Entry(tree.size, kind, ref, leaf, salt, now, tag))
                nodes.extend(tree.append(leaf))

            for record in audits:
                salt, kept = _salt_for(salts, record.patient_id)
                add(AUDIT, str(record.seq), audit_leaf(record, salt=salt), kept, record.patient_id)
            for version in versions:
                salt, kept = _salt_for(salts, version.patient_id)
                add(VERSION, version.ref, version_leaf(version, salt=salt), kept, version.patient_id)
            store.add_entries(conn, entries)
            store.add_nodes(conn, nodes)
            feed.done(conn, outbox=[v.outbox for v in versions if v.outbox is not None])
            root = tree.root()
            note = sign(Checkpoint(self.origin, tree.size, root).text(), [self.signer])
            store.add_checkpoint(conn, size=tree.size, root=root, note=note)
            audit_seq = int(audits[-1].seq) if audits and audits[-1].seq is not None else head.audit_seq
            store.move_head(conn, store.Head(tree.size, audit_seq))
        return len(entries)

    def _check_frontier(self, conn: Connection, size: int, root: bytes) -> None:
        """Never extend a tree the log has not signed: the stored nodes must give the root of the
        latest checkpoint, and it must be the log's own. Otherwise someone rewrote the tables, and
        signing on would launder the rewrite; sequencing stops until ``ledger verify`` is read."""
        if size == 0:
            return
        latest = store.latest_checkpoint(conn)
        try:
            if latest is None or latest.size != size:
                raise LedgerCorrupt(f"the ledger holds {size} entries but no checkpoint of that size")
            checkpoint, _ = open_checkpoint(latest.note, log=self.verifier)
        except NoteError:
            raise LedgerCorrupt(f"the checkpoint of size {size} is not signed by the log key") from None
        if (checkpoint.size, checkpoint.root) != (size, root):
            raise LedgerCorrupt(f"the stored tree of {size} entries is not the one the log signed")

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

    @contextmanager
    def _appended(self) -> Iterator[Connection]:
        """A connection for reading what is only ever appended (checkpoints, nodes): on PostgreSQL
        without a transaction around it, which saves two round trips per proof; a row that is
        there stays there, so no snapshot is needed."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                yield conn
        else:
            with read_tx(self.engine) as conn:
                yield conn

    def inclusion_proof(self, *, index: int, size: int) -> list[bytes]:
        with self._appended() as conn:
            self._check_size(conn, size)
            if not 0 <= index < size:
                raise InvalidInput(f"index must be in [0, {size})")
            return inclusion_proof(index, size, lambda ids: store.nodes(conn, ids))

    def consistency_proof(self, *, old: int, new: int) -> list[bytes]:
        with self._appended() as conn:
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
                found = source(conn, entry, Salts(conn, self.master)).commitment
            except SourceGone as exc:
                raise Gone(f"{kind} {ref}: {exc}") from None
            if found is None:
                raise Gone(f"{kind} {ref} belongs to an erased patient and can no longer be linked")
            proof = inclusion_proof(entry.idx, latest.size, lambda ids: store.nodes(conn, ids))
            cosigs = [line for _, line in store.cosignatures(conn, latest.size)]
        note = add_cosignatures(latest.note, cosigs)
        return Receipt(entry.idx, tuple(proof), note, extra=found).text()

    def check_entries(self, *, kind: str, refs: Sequence[str]) -> dict[str, str]:
        """For each ref: ``verified`` (its source row gives its leaf, the leaf is in the latest
        checkpoint by an inclusion proof, and the log signed that checkpoint), ``pending`` (not
        sequenced yet) or ``failed`` (anything else, including an entry that went missing)."""
        out: dict[str, str] = {}
        with read_tx(self.engine) as conn:
            head = store.head(conn)
            latest = store.latest_checkpoint(conn)
            try:
                checkpoint = open_checkpoint(latest.note, log=self.verifier)[0] if latest else None
            except NoteError:
                checkpoint = None
            salts = Salts(conn, self.master)
            for ref in refs:
                entry = store.entry(conn, kind=kind, ref=ref)
                if entry is None or latest is None or entry.idx >= latest.size:
                    sequenced = entry is not None or (
                        kind == AUDIT and ref.isdigit() and int(ref) <= head.audit_seq
                    )
                    out[ref] = "failed" if sequenced and entry is None else "pending"
                    continue
                out[ref] = "failed"
                try:
                    found = source(conn, entry, salts)
                    if checkpoint is None or found.commitment is None:
                        continue
                    if leaf_hash(found.commitment) != entry.leaf_hash:
                        continue
                    if patient_tag(self.tag_key, found.patient_id) != entry.patient_tag:
                        continue
                    proof = inclusion_proof(entry.idx, checkpoint.size, lambda ids: store.nodes(conn, ids))
                    verify_inclusion(entry.idx, checkpoint.size, entry.leaf_hash, proof, checkpoint.root)
                except (SourceGone, store.MissingNodes, ProofError, MedweaveError):
                    continue
                out[ref] = "verified"
        return out

    def _check_size(self, conn: Connection, size: int) -> None:
        """Proofs are for published sizes only. A size once seen is remembered: a proof is served
        for a checkpoint someone holds, and checkpoints are never taken back."""
        if size in self._published:
            return
        if store.has_checkpoint(conn, size):
            if len(self._published) > 100_000:
                self._published.clear()
            self._published.add(size)
        else:
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
    full) in a daemon thread, until ``stop``.

    ``after`` (asking witnesses to cosign, anchoring) runs on a thread of its own, woken after each
    batch this process signed and every ``retry`` seconds: a witness or chain endpoint that is
    slow or down delays its own work, never the sealing of the log.
    """

    def __init__(
        self,
        ledger: LedgerService,
        *,
        interval: float = 0.25,
        after: Callable[[], object] | None = None,
        retry: float = 10.0,
    ) -> None:
        self.ledger = ledger
        self.interval = interval
        self.after = after
        self.retry = retry
        self._stop = threading.Event()
        self._signed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="medweave-ledger", daemon=True)
        self._publisher = threading.Thread(target=self._publish, name="medweave-ledger-publish", daemon=True)

    def start(self) -> Sequencer:
        self._thread.start()
        if self.after is not None:
            self._publisher.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._signed.set()
        for thread in (self._thread, self._publisher):
            if thread.is_alive():
                thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                n = self.ledger.sequence()
            except Exception as exc:  # keep going: the next run retries the same batch
                _log.error("ledger sequencing failed: %s", type(exc).__name__)
                n = 0
            if n:
                self._signed.set()
            if n < self.ledger.batch:
                self._stop.wait(self.interval)

    def _publish(self) -> None:
        assert self.after is not None
        while not self._stop.is_set():
            self._signed.wait(self.retry)
            self._signed.clear()
            if self._stop.is_set():
                return
            try:
                self.after()
            except Exception as exc:  # a witness or chain endpoint failing: try again later
                _log.error("ledger publishing failed: %s", type(exc).__name__)
