"""``medweave ledger verify``: recompute the whole log from the database and check it.

Reads everything in one transaction and checks, in index order:

1. entries are numbered 0, 1, 2... with no gap (a deleted or reordered row shows here);
2. each entry's leaf is the commitment of its source row as stored now: the audit row, or the
   record version (an edited, deleted or swapped source shows here). An entry of an erased
   patient cannot be recomputed (its salt died with the key): it counts as unlinkable, and only
   its place in the tree is checked;
3. the stored node hashes are the ones the leaves give (proofs are built from them);
4. every stored checkpoint is signed by the log key and its root is the root of the first
   ``size`` leaves, so successive checkpoints are consistent;
5. every audit row and every record version is committed, or still queued for the sequencer;
6. every anchor is the digest of its checkpoint and, when a chain is given, is on that chain.

The report names the first bad index: the smallest index whose entry, leaf or node is wrong, or,
where only a checkpoint root disagrees, the first index after the last checkpoint that held.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from medweave.audit.service import seqs
from medweave.db import read_tx
from medweave.ledger import store
from medweave.ledger.anchor import AnchorError, Chain, checkpoint_digest
from medweave.ledger.checkpoint import open_checkpoint
from medweave.ledger.compact import CompactRange
from medweave.ledger.hashing import leaf_hash
from medweave.ledger.note import NoteError, Verifier
from medweave.ledger.sources import AUDIT, VERSION, Salts, SourceGone, SourceRows, patient_tag, source
from medweave.records import feed
from medweave.security.crypto import MasterKey

_CHUNK = 2000


@dataclass
class Report:
    size: int = 0
    entries: int = 0
    checkpoints: int = 0
    unlinkable: int = 0  # entries of erased patients: in the tree, no longer linkable
    queued_versions: int = 0
    queued_audit: int = 0
    anchors: int = 0
    anchors_checked: int = 0  # against the chain: only when a chain endpoint is configured
    first_bad_index: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def bad(self, index: int | None, problem: str) -> None:
        if index is not None and (self.first_bad_index is None or index < self.first_bad_index):
            self.first_bad_index = index
        if len(self.problems) < 100:
            self.problems.append(problem if index is None else f"index {index}: {problem}")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def check(
    engine: Engine,
    *,
    master: MasterKey,
    log: Verifier,
    tag_key: bytes | None = None,
    chain: Chain | None = None,
    pinned: Sequence[str] = (),
) -> Report:
    """The whole check. ``tag_key`` (``LedgerService.tag_key``) also checks that no entry was
    moved to another patient; ``pinned`` are signed checkpoints kept elsewhere (a witness's, an
    auditor's copy): the log must still hold exactly those trees, whatever its tables say now."""
    report = Report()
    with read_tx(engine) as conn:
        head = store.head(conn)
        report.size = head.size
        _entries_and_tree(conn, _Context(master, log, tag_key, pinned), head, report)
        _coverage(conn, head, report)
        _anchors(conn, chain, report)
    return report


@dataclass(frozen=True)
class _Context:
    master: MasterKey
    log: Verifier
    tag_key: bytes | None
    pinned: Sequence[str]


def _anchors(conn: Connection, chain: Chain | None, report: Report) -> None:
    """Each anchor names a stored checkpoint's digest; with a chain, the chain says so too."""
    for anchored, _ in store.anchors(conn):
        report.anchors += 1
        signed = store.checkpoint(conn, anchored.size)
        if signed is None or checkpoint_digest(signed.note) != anchored.digest:
            report.bad(None, f"the anchor at size {anchored.size} is not the digest of its checkpoint")
            continue
        if chain is None:
            continue
        try:
            chain.check(anchored)
        except AnchorError as exc:
            report.bad(None, f"the anchor at size {anchored.size}: {exc}")
            continue
        except Exception as exc:  # the endpoint failed: unchecked, and said so
            report.bad(None, f"the anchor at size {anchored.size} could not be checked: {type(exc).__name__}")
            continue
        report.anchors_checked += 1


def _signed_roots(conn: Connection, ctx: _Context, head: store.Head, report: Report) -> dict[int, bytes]:
    """The root of every checkpoint the log signed, stored or pinned; a pinned one wins."""
    roots: dict[int, bytes] = {}
    stored = store.checkpoints(conn)
    report.checkpoints = len(stored)
    for cp in stored:
        try:
            parsed, _ = open_checkpoint(cp.note, log=ctx.log)
        except NoteError as exc:
            report.bad(None, f"checkpoint {cp.size}: {exc}")
            continue
        if (parsed.size, parsed.root) != (cp.size, cp.root):
            report.bad(None, f"checkpoint {cp.size}: its columns disagree with its signed note")
            continue
        roots[cp.size] = parsed.root
    if head.size and head.size not in roots:
        report.bad(None, f"no checkpoint signed by the log for its {head.size} entries")
    if stored and stored[-1].size != head.size:
        report.bad(None, f"the head says {head.size} entries, the latest checkpoint {stored[-1].size}")
    for note in ctx.pinned:
        try:
            parsed, _ = open_checkpoint(note, log=ctx.log)
        except NoteError as exc:
            report.bad(None, f"a pinned checkpoint does not verify under the log key: {exc}")
            continue
        if roots.get(parsed.size, parsed.root) != parsed.root:
            report.bad(None, f"the stored checkpoint of size {parsed.size} is not the pinned one")
        roots[parsed.size] = parsed.root
    return roots


def _entries_and_tree(conn: Connection, ctx: _Context, head: store.Head, report: Report) -> None:
    checkpoints = _signed_roots(conn, ctx, head, report)
    tree = CompactRange()
    salts = Salts(conn, ctx.master)
    last_good = 0
    chunk: list[tuple[tuple[int, int], bytes]] = []
    bad_leaves: set[int] = set()
    for batch in _batches(store.entries(conn), _CHUNK):
        rows = SourceRows.read(conn, batch, salts)
        for entry in batch:
            if entry.idx != tree.size:
                _check_nodes(conn, chunk, report, bad_leaves)  # what came before may be wrong too
                report.bad(tree.size, f"entry missing or out of order (found index {entry.idx} next)")
                return
            report.entries += 1
            expected = _recompute(conn, entry, salts, rows, ctx.tag_key, report)
            if expected is not None and expected != entry.leaf_hash:
                report.bad(entry.idx, f"{entry.kind} {entry.ref}: its source no longer matches the leaf")
            chunk.extend(tree.append(entry.leaf_hash))
            root = checkpoints.get(tree.size)
            if len(chunk) >= _CHUNK or root is not None:  # nodes first: they may name the bad leaf
                _check_nodes(conn, chunk, report, bad_leaves)
                chunk = []
            if root is not None:
                if root == tree.root():
                    last_good = tree.size
                else:  # name a place only if no wrong entry or node in the range explains it already
                    found = report.first_bad_index
                    explained = found is not None and last_good <= found < tree.size
                    where = None if explained else last_good
                    report.bad(where, f"the root of the first {tree.size} leaves is not the signed one")
    _check_nodes(conn, chunk, report, bad_leaves)
    if tree.size != head.size:
        report.bad(min(tree.size, head.size), f"the log holds {tree.size} entries, its head says {head.size}")
    missing = [size for size in checkpoints if size > tree.size]
    if missing:
        report.bad(tree.size, f"checkpoints of size {min(missing)} and more outgrow the stored entries")


def _batches(entries: Iterator[store.Entry], size: int) -> Iterator[list[store.Entry]]:
    batch: list[store.Entry] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _recompute(
    conn: Connection,
    entry: store.Entry,
    salts: Salts,
    rows: SourceRows,
    tag_key: bytes | None,
    report: Report,
) -> bytes | None:
    """The leaf hash the entry's source gives now; None if it cannot be known (erased patient)."""
    try:
        found = source(conn, entry, salts, rows)
    except SourceGone as exc:
        report.bad(entry.idx, str(exc))
        return None
    if tag_key is not None and patient_tag(tag_key, found.patient_id) != entry.patient_tag:
        report.bad(entry.idx, f"{entry.kind} {entry.ref} names another patient than it was committed for")
    if found.commitment is None:
        report.unlinkable += 1
        return None
    return leaf_hash(found.commitment)


def _check_nodes(
    conn: Connection, nodes: list[tuple[tuple[int, int], bytes]], report: Report, bad_leaves: set[int]
) -> None:
    """Compare stored nodes with the ones the leaves give. A wrong leaf makes every node above it
    wrong too; those are reported once, at the leaf (``bad_leaves``, kept across chunks)."""
    if not nodes:
        return
    try:
        stored = store.nodes(conn, [node_id for node_id, _ in nodes])
    except store.MissingNodes as exc:
        report.bad(None, str(exc))
        return
    for ((level, idx), want), got in zip(nodes, stored, strict=True):
        if want == got:
            continue
        first, end = idx << level, (idx + 1) << level
        if level == 0:
            bad_leaves.add(idx)
            report.bad(idx, "the stored leaf node is not the entry's leaf")
        elif not any(first <= leaf < end for leaf in bad_leaves):
            report.bad(first, f"stored node (level {level}, index {idx}) is not the hash of its leaves")


def _coverage(conn: Connection, head: store.Head, report: Report) -> None:
    """Every audit row and every record version is committed, or still queued."""
    committed = {(e.kind, e.ref) for e in store.entries(conn)}
    expected = 1
    for seq in seqs(conn):
        if seq > head.audit_seq:
            report.queued_audit += 1
            continue
        if seq != expected:
            report.bad(None, f"audit rows {expected}..{seq - 1} are missing")
        expected = seq + 1
        if (AUDIT, str(seq)) not in committed:
            report.bad(None, f"audit row {seq} is not in the ledger")
    if expected <= head.audit_seq:
        report.bad(None, f"audit rows {expected}..{head.audit_seq} are missing")
    queued = feed.queued(conn)
    report.queued_versions = len(queued)
    for facts in feed.versions(conn):
        key = (facts.res_type, facts.res_id, facts.version_id)
        if (VERSION, facts.ref) not in committed and key not in queued:
            report.bad(None, f"record version {facts.ref} is not in the ledger")
