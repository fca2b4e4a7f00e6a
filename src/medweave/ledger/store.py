"""The ledger's SQL: the only module that touches the ledger tables.

Append-only in use: the sequencer inserts entries, nodes and checkpoints and moves the head;
nothing updates or deletes them. Every complete node's hash is stored as it is completed, so any
proof is one indexed read of O(log n) rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, and_, delete, or_, select, text, tuple_, update

from medweave.ledger.anchor import Anchored
from medweave.ledger.compact import CompactRange, NodeID, frontier_ids
from medweave.ledger.tables import (
    ledger_anchors,
    ledger_checkpoints,
    ledger_cosignatures,
    ledger_entries,
    ledger_head,
    ledger_nodes,
    ledger_witnessed,
    witness_logs,
)


class MissingNodes(LookupError):
    """A node a proof or the tree needs is not stored: the ledger tables were tampered with."""


@dataclass(frozen=True)
class Head:
    size: int
    audit_seq: int


@dataclass(frozen=True)
class Entry:
    idx: int
    kind: str  # "audit" or "version"
    ref: str  # the audit seq, or "Type/id/_history/v"
    leaf_hash: bytes
    salt: bytes | None
    sequenced: datetime
    patient_tag: bytes | None = None


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str
    created: datetime


def lock_head(conn: Connection) -> Head:
    """Read the head, locking it until the transaction ends (one sequencer at a time).

    On SQLite the caller's ``write_tx`` (``BEGIN IMMEDIATE``) already excludes other writers."""
    if conn.dialect.name == "postgresql":
        row = conn.execute(text("SELECT size, audit_seq FROM ledger_head WHERE id = 1 FOR UPDATE")).one()
    else:
        row = conn.execute(select(ledger_head.c.size, ledger_head.c.audit_seq)).one()
    return Head(int(row.size), int(row.audit_seq))


def head(conn: Connection) -> Head:
    row = conn.execute(select(ledger_head.c.size, ledger_head.c.audit_seq)).one()
    return Head(int(row.size), int(row.audit_seq))


def move_head(conn: Connection, new: Head) -> None:
    conn.execute(
        update(ledger_head).where(ledger_head.c.id == 1).values(size=new.size, audit_seq=new.audit_seq)
    )


def nodes(conn: Connection, ids: Sequence[NodeID]) -> list[bytes]:
    """The stored hashes of these complete nodes, in order; ``MissingNodes`` if any is absent."""
    if not ids:
        return []
    n = ledger_nodes.c
    found: dict[NodeID, bytes] = {}
    for start in range(0, len(ids), 400):  # bounded statements
        chunk = list(ids[start : start + 400])
        if conn.dialect.name == "sqlite":
            # SQLite scans the whole table for "(level, idx) IN (VALUES ...)"; one
            # "level = L AND idx IN (...)" per level uses the primary key.
            by_level: dict[int, set[int]] = {}
            for level, idx in chunk:
                by_level.setdefault(level, set()).add(idx)
            where = or_(*(and_(n.level == lv, n.idx.in_(sorted(ix))) for lv, ix in by_level.items()))
        else:  # PostgreSQL plans the row-value list on the primary key, and faster than the ORs
            where = tuple_(n.level, n.idx).in_(chunk)
        rows = conn.execute(select(n.level, n.idx, n.hash).where(where)).all()
        found.update({(int(r.level), int(r.idx)): bytes(r.hash) for r in rows})
    missing = [i for i in ids if i not in found]
    if missing:
        raise MissingNodes(f"ledger nodes missing: {missing[:5]}")
    return [found[i] for i in ids]


def compact_range(conn: Connection, size: int) -> CompactRange:
    """The tree's right border at ``size``, to go on appending from."""
    return CompactRange(size, nodes(conn, frontier_ids(size)))


def add_nodes(conn: Connection, new: Iterable[tuple[NodeID, bytes]]) -> None:
    rows = [{"level": level, "idx": idx, "hash": h} for (level, idx), h in new]
    if rows:
        conn.execute(ledger_nodes.insert(), rows)


def add_entries(conn: Connection, entries: Sequence[Entry]) -> None:
    if entries:
        conn.execute(
            ledger_entries.insert(),
            [
                {
                    "idx": e.idx,
                    "kind": e.kind,
                    "ref": e.ref,
                    "leaf_hash": e.leaf_hash,
                    "salt": e.salt,
                    "patient_tag": e.patient_tag,
                    "sequenced": e.sequenced,
                }
                for e in entries
            ],
        )


def _entry(row: object) -> Entry:
    r = row._mapping  # type: ignore[attr-defined]
    return Entry(
        idx=int(r["idx"]),
        kind=r["kind"],
        ref=r["ref"],
        leaf_hash=bytes(r["leaf_hash"]),
        salt=bytes(r["salt"]) if r["salt"] is not None else None,
        sequenced=r["sequenced"],
        patient_tag=bytes(r["patient_tag"]) if r["patient_tag"] is not None else None,
    )


def entries(conn: Connection, *, start: int = 0, batch: int = 5000) -> Iterator[Entry]:
    """Every entry from ``start`` on, in index order, read in batches (as stored: gaps show)."""
    e = ledger_entries.c
    after = start - 1
    while True:
        rows = conn.execute(select(ledger_entries).where(e.idx > after).order_by(e.idx).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            yield _entry(row)
        after = int(rows[-1].idx)


def entry(conn: Connection, *, kind: str, ref: str) -> Entry | None:
    e = ledger_entries.c
    row = conn.execute(select(ledger_entries).where(e.kind == kind, e.ref == ref)).first()
    return _entry(row) if row is not None else None


def entry_at(conn: Connection, idx: int) -> Entry | None:
    row = conn.execute(select(ledger_entries).where(ledger_entries.c.idx == idx)).first()
    return _entry(row) if row is not None else None


def add_checkpoint(conn: Connection, *, size: int, root: bytes, note: str) -> None:
    conn.execute(
        ledger_checkpoints.insert().values(size=size, root=root, note=note, created=datetime.now(UTC))
    )


def _checkpoint(row: object) -> StoredCheckpoint:
    r = row._mapping  # type: ignore[attr-defined]
    return StoredCheckpoint(
        size=int(r["size"]),
        root=bytes(r["root"]),
        note=r["note"],
        created=r["created"],
    )


def latest_checkpoint(conn: Connection) -> StoredCheckpoint | None:
    c = ledger_checkpoints.c
    row = conn.execute(select(ledger_checkpoints).order_by(c.size.desc()).limit(1)).first()
    return _checkpoint(row) if row is not None else None


def checkpoint(conn: Connection, size: int) -> StoredCheckpoint | None:
    row = conn.execute(select(ledger_checkpoints).where(ledger_checkpoints.c.size == size)).first()
    return _checkpoint(row) if row is not None else None


def has_checkpoint(conn: Connection, size: int) -> bool:
    c = ledger_checkpoints.c
    return conn.execute(select(c.size).where(c.size == size)).first() is not None


def checkpoints(conn: Connection) -> list[StoredCheckpoint]:
    rows = conn.execute(select(ledger_checkpoints).order_by(ledger_checkpoints.c.size)).all()
    return [_checkpoint(r) for r in rows]


def add_cosignature(conn: Connection, *, size: int, witness: str, line: str, timestamp: int) -> None:
    """Keep a witness's cosignature; a second one for the same checkpoint (another process asked
    too) is dropped."""
    c = ledger_cosignatures.c
    if conn.execute(select(c.size).where(c.size == size, c.witness == witness)).first() is not None:
        return
    conn.execute(
        ledger_cosignatures.insert().values(size=size, witness=witness, line=line, timestamp=timestamp)
    )


def cosignatures(conn: Connection, size: int) -> list[tuple[str, str]]:
    """(witness name, signature line) of the cosignatures on the checkpoint of this size."""
    c = ledger_cosignatures.c
    rows = conn.execute(select(c.witness, c.line).where(c.size == size).order_by(c.witness)).all()
    return [(r.witness, r.line) for r in rows]


# -- witnesses: what they cosigned for us, and (as a witness) the logs we cosign --------------------


def witnessed_size(conn: Connection, witness: str) -> int:
    """The latest size ``witness`` cosigned for this log (0 if none)."""
    w = ledger_witnessed.c
    found = conn.execute(select(w.size).where(w.witness == witness)).scalar()
    return int(found or 0)


def set_witnessed_size(conn: Connection, witness: str, size: int) -> None:
    w = ledger_witnessed.c
    done = conn.execute(update(ledger_witnessed).where(w.witness == witness).values(size=size))
    if done.rowcount == 0:
        conn.execute(ledger_witnessed.insert().values(witness=witness, size=size))


@dataclass(frozen=True)
class WitnessedLog:
    origin: str
    vkey: str
    size: int
    root: bytes | None


def witness_log(conn: Connection, origin: str) -> WitnessedLog | None:
    w = witness_logs.c
    row = conn.execute(select(w.origin, w.vkey, w.size, w.root).where(w.origin == origin)).first()
    if row is None:
        return None
    return WitnessedLog(
        row.origin, row.vkey, int(row.size), bytes(row.root) if row.root is not None else None
    )


def add_witness_log(conn: Connection, *, origin: str, vkey: str) -> bool:
    """Trust a log's key (as its witness). False if the origin is already known (nothing changes)."""
    if witness_log(conn, origin) is not None:
        return False
    conn.execute(witness_logs.insert().values(origin=origin, vkey=vkey, size=0, root=None))
    return True


def advance_witness_log(conn: Connection, *, origin: str, old_size: int, size: int, root: bytes) -> bool:
    """Compare-and-swap: move the log from ``old_size`` to (``size``, ``root``). False when another
    request moved it first (the caller answers 409 with the size now stored)."""
    w = witness_logs.c
    done = conn.execute(
        update(witness_logs)
        .where(w.origin == origin, w.size == old_size)
        .values(size=size, root=root, updated=datetime.now(UTC))
    )
    return done.rowcount == 1


# -- anchors ----------------------------------------------------------------------------------------


PENDING = "pending"  # the tx_hash of an anchor claimed by a process that is sending it


def claim_anchor(conn: Connection, *, size: int, digest: bytes, stale_after: timedelta) -> bool:
    """Claim the anchor of this checkpoint before sending it, so one process sends it however
    many run the sequencer. A claim older than ``stale_after`` (its process died) is taken over."""
    a = ledger_anchors.c
    now = datetime.now(UTC)
    conn.execute(delete(ledger_anchors).where(a.tx_hash == PENDING, a.created < now - stale_after))
    if conn.execute(select(a.size).where(a.size == size)).first() is not None:
        return False
    conn.execute(
        ledger_anchors.insert().values(
            size=size, digest=digest, chain_id=0, tx_hash=PENDING, block=-1, created=now
        )
    )
    return True


def complete_anchor(conn: Connection, anchored: Anchored) -> None:
    a = ledger_anchors.c
    conn.execute(
        update(ledger_anchors)
        .where(a.size == anchored.size, a.tx_hash == PENDING)
        .values(
            chain_id=anchored.chain_id,
            tx_hash=anchored.tx_hash,
            block=anchored.block,
            created=datetime.now(UTC),
        )
    )


def drop_claim(conn: Connection, size: int) -> None:
    a = ledger_anchors.c
    conn.execute(delete(ledger_anchors).where(a.size == size, a.tx_hash == PENDING))


def anchors(conn: Connection) -> list[tuple[Anchored, datetime]]:
    """Every anchor sent, oldest first, with when it was made (claims still pending are left out)."""
    a = ledger_anchors.c
    rows = conn.execute(select(ledger_anchors).where(a.tx_hash != PENDING).order_by(a.size)).all()
    out = []
    for r in rows:
        out.append(
            (Anchored(int(r.size), bytes(r.digest), int(r.chain_id), r.tx_hash, int(r.block)), r.created)
        )
    return out
