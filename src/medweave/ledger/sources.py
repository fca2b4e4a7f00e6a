"""An entry's source row as stored now, and the commitment it gives (for receipts and verify).

``source`` reads the audit row or record version an entry names and rebuilds its salted
commitment: with the entry's own salt, or its patient's (derived from their data key). The
commitment is None when that can no longer be done because the patient was erased (their salt
died with their key). ``SourceGone`` is raised when the source row is missing, or when an audit
row's indexed columns (who, which patient, what) no longer say what its AuditEvent says: those
columns are what "who looked at my record" shows, so they must not be editable on their own.

``SourceRows`` reads the sources of many entries in a few queries, for ``ledger verify``'s pass
over the whole log (one query per entry made that pass take minutes at a million entries).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection

from medweave.audit.events import AuditRecord
from medweave.audit.service import read_many, read_one
from medweave.ledger.commitment import audit_leaf, version_leaf
from medweave.ledger.store import Entry
from medweave.records import feed, keys
from medweave.security.crypto import MasterKey

AUDIT, VERSION = "audit", "version"


class SourceGone(LookupError):
    """The row an entry commits to is missing, or was edited behind its own content."""


@dataclass(frozen=True)
class Source:
    patient_id: str | None
    commitment: bytes | None  # None: the patient was erased, the entry can no longer be linked


def patient_tag(tag_key: bytes, patient_id: str | None) -> bytes | None:
    """What an entry keeps of its patient: an HMAC of the id under the log's tag key."""
    if patient_id is None:
        return None
    return hmac.new(tag_key, patient_id.encode(), hashlib.sha256).digest()


class Salts:
    """Patients' ledger salts within one transaction, looked up once per patient (``None`` once a
    patient is erased). ``prefetch`` reads many in one query; ``keys_seen`` may outlive the
    transaction (see ``records.keys.ledger_salts``)."""

    def __init__(self, conn: Connection, master: MasterKey, keys_seen: keys.SaltCache | None = None) -> None:
        self._conn, self._master, self._seen = conn, master, keys_seen
        self._cache: dict[str, bytes | None] = {}

    def prefetch(self, patient_ids: Iterable[str | None], *, create: bool = False) -> None:
        wanted = {p for p in patient_ids if p is not None and p not in self._cache}
        if wanted:
            self._cache.update(
                keys.ledger_salts(
                    self._conn, master=self._master, patient_ids=wanted, create=create, cache=self._seen
                )
            )

    def patient(self, patient_id: str, *, create: bool = False) -> bytes | None:
        if patient_id not in self._cache:
            self.prefetch([patient_id], create=create)
        return self._cache[patient_id]


@dataclass
class SourceRows:
    """The audit rows and record versions that some entries name, read together."""

    audit: dict[int, AuditRecord] = field(default_factory=dict)
    versions: dict[tuple[str, str, int], feed.VersionFacts] = field(default_factory=dict)

    @classmethod
    def read(cls, conn: Connection, entries: Sequence[Entry], salts: Salts) -> SourceRows:
        """Two queries or so for the sources, one for their patients' salts."""
        seqs = [int(e.ref) for e in entries if e.kind == AUDIT and e.ref.isdigit()]
        keys_ = [k for e in entries if e.kind == VERSION and (k := _version_key(e.ref)) is not None]
        rows = cls(read_many(conn, seqs), feed.versions_of(conn, keys_))
        salts.prefetch([r.patient_id for r in rows.audit.values()])
        salts.prefetch([f.patient_id for f in rows.versions.values()])
        return rows


def source(conn: Connection, entry: Entry, salts: Salts, rows: SourceRows | None = None) -> Source:
    """The entry's source as stored now; from ``rows`` when given (they must cover the entry)."""
    if entry.kind == AUDIT:
        if not entry.ref.isdigit():
            record = None
        elif rows is not None:
            record = rows.audit.get(int(entry.ref))
        else:
            record = read_one(conn, int(entry.ref))
        if record is None:
            raise SourceGone(f"audit row {entry.ref} is gone")
        _check_columns(record)
        salt = _salt(conn, entry, record.patient_id, salts)
        return Source(record.patient_id, None if salt is None else audit_leaf(record, salt=salt))
    if entry.kind == VERSION:
        key = _version_key(entry.ref)
        if key is None:
            facts = None
        elif rows is not None:
            facts = rows.versions.get(key)
        else:
            facts = feed.version(conn, res_type=key[0], res_id=key[1], version_id=key[2])
        if facts is None:
            raise SourceGone(f"record version {entry.ref} is gone")
        salt = _salt(conn, entry, facts.patient_id, salts)
        return Source(facts.patient_id, None if salt is None else version_leaf(facts, salt=salt))
    raise SourceGone(f"unknown entry kind {entry.kind!r}")


def _check_columns(record: AuditRecord) -> None:
    try:
        changed = record.drifted()
    except ValueError:
        raise SourceGone(f"audit row {record.seq}: its AuditEvent is unreadable") from None
    if changed:
        raise SourceGone(f"audit row {record.seq}: {', '.join(changed)} no longer match its AuditEvent")


def _salt(conn: Connection, entry: Entry, patient_id: str | None, salts: Salts) -> bytes | None:
    if entry.salt is not None:
        return entry.salt
    if patient_id is None:  # an entry of no patient keeps its salt: with it lost, nothing matches
        return b""
    found = salts.patient(patient_id)
    if found is None and not keys.is_erased(conn, patient_id=patient_id):
        # The sequencer makes a key for every patient it commits: no key at all is not an erasure.
        raise SourceGone(f"{entry.kind} {entry.ref}: patient has no key and was never erased")
    return found


def _version_key(ref: str) -> tuple[str, str, int] | None:
    """``Type/id/_history/N`` as (type, id, N); None if the reference is not that shape."""
    parts = ref.split("/")
    if len(parts) != 4 or parts[2] != "_history" or not parts[3].isdigit():
        return None
    return parts[0], parts[1], int(parts[3])
