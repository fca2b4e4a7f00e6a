"""An entry's commitment, recomputed from its source row as stored now (for receipts and verify).

``commitment`` reads the audit row or record version an entry names and rebuilds its salted
commitment: with the entry's own salt, or its patient's (derived from their data key). It returns
None when that can no longer be done because the patient was erased (their salt died with their
key), and raises ``SourceGone`` when the source row itself is missing.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from medweave.audit.service import read_one
from medweave.ledger.commitment import audit_leaf, version_leaf
from medweave.ledger.store import Entry
from medweave.records import feed, keys
from medweave.security.crypto import MasterKey

AUDIT, VERSION = "audit", "version"


class SourceGone(LookupError):
    """The row an entry commits to is not in the database any more (or never was)."""


class Salts:
    """Patients' ledger salts within one transaction, looked up once per patient (``None`` once a
    patient is erased). ``prefetch`` reads many in one query; ``keys`` may outlive the
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


def commitment(conn: Connection, entry: Entry, salts: Salts) -> bytes | None:
    if entry.kind == AUDIT:
        record = read_one(conn, int(entry.ref)) if entry.ref.isdigit() else None
        if record is None:
            raise SourceGone(f"audit row {entry.ref} is gone")
        salt = _salt(entry, record.patient_id, salts)
        return None if salt is None else audit_leaf(record, salt=salt)
    if entry.kind == VERSION:
        facts = _version(conn, entry.ref)
        if facts is None:
            raise SourceGone(f"record version {entry.ref} is gone")
        salt = _salt(entry, facts.patient_id, salts)
        return None if salt is None else version_leaf(facts, salt=salt)
    raise SourceGone(f"unknown entry kind {entry.kind!r}")


def _salt(entry: Entry, patient_id: str | None, salts: Salts) -> bytes | None:
    if entry.salt is not None:
        return entry.salt
    if patient_id is None:  # an entry of no patient keeps its salt: with it lost, nothing matches
        return b""
    return salts.patient(patient_id)


def _version(conn: Connection, ref: str) -> feed.VersionFacts | None:
    parts = ref.split("/")
    if len(parts) != 4 or parts[2] != "_history" or not parts[3].isdigit():
        return None
    return feed.version(conn, res_type=parts[0], res_id=parts[1], version_id=int(parts[3]))
