"""What the ledger reads from the record store: versions to commit, and what they commit to.

Every version written (create, update, delete) is queued in ``version_outbox`` in the same
transaction as the version itself. The ledger's sequencer takes a batch with ``pending``, commits
it, and removes it with ``done`` in the same transaction, so a version is committed exactly once
even if a process dies midway. ``versions`` lists every stored version, for ``ledger verify``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, select

from medweave.records.tables import resource_versions, version_outbox


@dataclass(frozen=True)
class VersionFacts:
    """One stored version as the ledger commits to it: no body, only a digest of the sealed blob.

    ``outbox`` is the queue row (``pending`` only). The blob is the stored ciphertext, so the
    digest says nothing about the content and needs no key to recompute."""

    res_type: str
    res_id: str
    version_id: int
    method: str
    deleted: bool
    last_updated: datetime
    patient_id: str | None
    blob_sha256: bytes
    outbox: int | None = None

    @property
    def ref(self) -> str:
        return f"{self.res_type}/{self.res_id}/_history/{self.version_id}"


_COLUMNS = (
    resource_versions.c.res_type,
    resource_versions.c.res_id,
    resource_versions.c.version_id,
    resource_versions.c.method,
    resource_versions.c.deleted,
    resource_versions.c.last_updated,
    resource_versions.c.patient_id,
    resource_versions.c.body,
)


def _facts(row: object, outbox: int | None = None) -> VersionFacts:
    r = row._mapping  # type: ignore[attr-defined]
    last = r["last_updated"]
    return VersionFacts(
        res_type=r["res_type"],
        res_id=r["res_id"],
        version_id=int(r["version_id"]),
        method=r["method"],
        deleted=bool(r["deleted"]),
        last_updated=last if last.tzinfo is not None else last.replace(tzinfo=UTC),  # SQLite: naive UTC
        patient_id=r["patient_id"],
        blob_sha256=hashlib.sha256(r["body"] or b"").digest(),
        outbox=outbox,
    )


def pending(conn: Connection, *, limit: int) -> list[VersionFacts]:
    """Up to ``limit`` queued versions, oldest queue entry first."""
    o, v = version_outbox.c, resource_versions.c
    rows = conn.execute(
        select(o.pk, *_COLUMNS)
        .select_from(
            version_outbox.join(
                resource_versions,
                (v.res_type == o.res_type) & (v.res_id == o.res_id) & (v.version_id == o.version_id),
            )
        )
        .order_by(o.pk)
        .limit(limit)
    ).all()
    return [_facts(row, outbox=int(row.pk)) for row in rows]


def done(conn: Connection, *, outbox: Sequence[int]) -> None:
    """Take committed versions out of the queue (in the transaction that committed them)."""
    if outbox:
        conn.execute(delete(version_outbox).where(version_outbox.c.pk.in_(list(outbox))))


def queued(conn: Connection) -> set[tuple[str, str, int]]:
    """The (type, id, version) of every version still waiting for the ledger."""
    o = version_outbox.c
    return {
        (r.res_type, r.res_id, int(r.version_id))
        for r in conn.execute(select(o.res_type, o.res_id, o.version_id))
    }


def version(conn: Connection, *, res_type: str, res_id: str, version_id: int) -> VersionFacts | None:
    v = resource_versions.c
    row = conn.execute(
        select(*_COLUMNS).where(v.res_type == res_type, v.res_id == res_id, v.version_id == version_id)
    ).first()
    return _facts(row) if row is not None else None


def versions_of(
    conn: Connection, wanted: Sequence[tuple[str, str, int]]
) -> dict[tuple[str, str, int], VersionFacts]:
    """The stored versions among ``wanted`` (type, id, version), one query per resource type.

    It asks by resource id (the primary key's prefix, which both databases search well; SQLite
    scans the table for a list of row values) and keeps the versions asked for."""
    by_type: dict[str, set[str]] = {}
    for res_type, res_id, _ in wanted:
        by_type.setdefault(res_type, set()).add(res_id)
    keep, found = set(wanted), {}
    v = resource_versions.c
    for res_type, ids in by_type.items():
        rows = conn.execute(select(*_COLUMNS).where(v.res_type == res_type, v.res_id.in_(sorted(ids))))
        for row in rows:
            key = (row.res_type, row.res_id, int(row.version_id))
            if key in keep:
                found[key] = _facts(row)
    return found


def versions(conn: Connection, *, batch: int = 1000) -> Iterator[VersionFacts]:
    """Every stored version, in key order, read in batches."""
    v = resource_versions.c
    after: tuple[str, str, int] | None = None
    while True:
        query = select(*_COLUMNS).order_by(v.res_type, v.res_id, v.version_id).limit(batch)
        if after is not None:
            query = query.where(
                (v.res_type > after[0])
                | ((v.res_type == after[0]) & (v.res_id > after[1]))
                | ((v.res_type == after[0]) & (v.res_id == after[1]) & (v.version_id > after[2]))
            )
        rows = conn.execute(query).all()
        if not rows:
            return
        for row in rows:
            yield _facts(row)
        last = rows[-1]
        after = (last.res_type, last.res_id, int(last.version_id))
