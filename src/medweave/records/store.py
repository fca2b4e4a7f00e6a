"""Versioned, encrypted resource storage: the only code that reads or writes resource rows.

Writes are optimistic: an UPDATE succeeds only if the row still has the version the writer
read, so two writers can never both win one version (no lost update on SQLite or PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, and_, desc, func, select, true, tuple_, update
from sqlalchemy.exc import IntegrityError

from medweave.errors import Conflict, Gone, NotFound, PreconditionFailed
from medweave.records import keys
from medweave.records.care import care_entries
from medweave.records.indexing import IndexEntry, compartment_patients, extract_index
from medweave.records.search import delete_index, replace_index
from medweave.records.tables import patient_keys, resource_versions, resources, version_outbox
from medweave.security.crypto import MasterKey, open_sealed, seal


class RecordGone(Gone):
    """Deleted or erased; carries the owning patient so access can be checked before saying so."""

    def __init__(self, message: str, *, patient_id: str | None):
        super().__init__(message)
        self.patient_id = patient_id


Authorize = Callable[[str | None, str | None, bool], None]


class WriteRace(Exception):
    """Another writer changed the row between our read and our write; retry the transaction."""


@dataclass
class Stored:
    res_type: str
    res_id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    method: str
    body: dict[str, Any] | None
    patient_id: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.res_type, self.res_id)


def instant(dt: datetime) -> str:
    """A FHIR instant in UTC with millisecond precision."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _aad(res_type: str, res_id: str, version_id: int) -> bytes:
    return f"{res_type}/{res_id}/{version_id}".encode()


def _decode(master: MasterKey, row: Any, *, method: str = "") -> Stored:
    body = None
    if not row.deleted and row.body is not None:
        if row.patient_id is not None and row.erased is not None:
            raise RecordGone(f"{row.res_type}/{row.res_id} is gone", patient_id=row.patient_id)
        dek = (
            master.unwrap(row.wrapped_key, patient_id=row.patient_id)
            if row.patient_id is not None and row.wrapped_key is not None
            else None
        )
        body = orjson.loads(open_sealed(dek, row.body, aad=_aad(row.res_type, row.res_id, row.version_id)))
    return Stored(
        row.res_type,
        row.res_id,
        row.version_id,
        _aware(row.last_updated),
        row.deleted,
        method,
        body,
        row.patient_id,
    )


def _select_current() -> Any:
    r = resources.c
    return select(
        r.res_type,
        r.res_id,
        r.version_id,
        r.last_updated,
        r.deleted,
        r.patient_id,
        r.body,
        patient_keys.c.wrapped_key,
        patient_keys.c.erased,
    ).select_from(resources.outerjoin(patient_keys, patient_keys.c.patient_id == r.patient_id))


def _select_versions() -> Any:
    v = resource_versions.c
    return select(
        v.res_type,
        v.res_id,
        v.version_id,
        v.last_updated,
        v.deleted,
        v.patient_id,
        v.body,
        v.method,
        patient_keys.c.wrapped_key,
        patient_keys.c.erased,
    ).select_from(resource_versions.outerjoin(patient_keys, patient_keys.c.patient_id == v.patient_id))


def read_current(conn: Connection, *, master: MasterKey, res_type: str, res_id: str) -> Stored:
    """The current version; NotFound if it never existed, Gone if deleted or erased."""
    row = conn.execute(
        _select_current().where(resources.c.res_type == res_type, resources.c.res_id == res_id)
    ).first()
    if row is None:
        raise NotFound(f"{res_type}/{res_id} is not known")
    if row.deleted or (row.patient_id is not None and row.erased is not None):
        raise RecordGone(f"{res_type}/{res_id} is gone", patient_id=row.patient_id)
    return _decode(master, row)


def read_version(
    conn: Connection, *, master: MasterKey, res_type: str, res_id: str, version_id: int
) -> Stored:
    v = resource_versions.c
    row = conn.execute(
        _select_versions().where(v.res_type == res_type, v.res_id == res_id, v.version_id == version_id)
    ).first()
    if row is None:
        raise NotFound(f"{res_type}/{res_id} has no version {version_id}")
    if row.deleted or (row.patient_id is not None and row.erased is not None):
        raise RecordGone(f"{res_type}/{res_id} version {version_id} is gone", patient_id=row.patient_id)
    return _decode(master, row, method=row.method)


def read_many(
    conn: Connection,
    *,
    master: MasterKey,
    keys_: list[tuple[str, str]],
    visible: ColumnElement[bool] | None = None,
) -> list[Stored]:
    """Current, readable versions of the given keys, in the given order (missing ones dropped).

    ``visible`` (a condition on ``resources.patient_id``) drops what the caller may not see.
    """
    if not keys_:
        return []
    found: dict[tuple[str, str], Stored] = {}
    for start in range(0, len(keys_), 500):
        chunk = keys_[start : start + 500]
        rows = conn.execute(
            _select_current().where(
                tuple_(resources.c.res_type, resources.c.res_id).in_(chunk),
                resources.c.deleted.is_(False),
                patient_keys.c.erased.is_(None),
                true() if visible is None else visible,
            )
        ).all()
        for row in rows:
            found[(row.res_type, row.res_id)] = _decode(master, row)
    return [found[k] for k in keys_ if k in found]


def history(
    conn: Connection,
    *,
    master: MasterKey,
    res_type: str | None,
    res_id: str | None,
    since: datetime | None,
    offset: int,
    count: int,
    visible: ColumnElement[bool] | None = None,
) -> tuple[int, list[Stored]]:
    """Versions newest first, with the total; erased patients' versions are left out.

    ``visible`` (a condition on ``resource_versions.patient_id``) drops what the caller may not see.
    """
    v = resource_versions.c
    conds: list[ColumnElement[bool]] = [patient_keys.c.erased.is_(None)]
    if visible is not None:
        conds.append(visible)
    if res_type:
        conds.append(v.res_type == res_type)
    if res_id:
        conds.append(v.res_id == res_id)
    if since:
        conds.append(v.last_updated >= since)
    where = and_(*conds)
    total = conn.execute(
        select(func.count())
        .select_from(resource_versions.outerjoin(patient_keys, patient_keys.c.patient_id == v.patient_id))
        .where(where)
    ).scalar_one()
    rows = conn.execute(
        _select_versions()
        .where(where)
        .order_by(desc(v.last_updated), desc(v.version_id), v.res_type, v.res_id)
        .offset(offset)
        .limit(count)
    ).all()
    return total, [_decode(master, row, method=row.method) for row in rows]


def current_row(conn: Connection, *, res_type: str, res_id: str) -> Any:
    """``(version_id, deleted, patient_id)`` of the current row, or None; bodies are not read."""
    return conn.execute(
        select(resources.c.version_id, resources.c.deleted, resources.c.patient_id).where(
            resources.c.res_type == res_type, resources.c.res_id == res_id
        )
    ).first()


def write(
    conn: Connection,
    *,
    master: MasterKey,
    res_type: str,
    res_id: str,
    body: dict[str, Any] | None,
    now: datetime,
    expected_version: int | None = None,
    create_only: bool = False,
    authorize: Authorize | None = None,
) -> Stored:
    """Write a new version (``body=None`` deletes). The body's ``meta`` is stamped in place.

    ``authorize(old_patient, new_patient, exists)`` runs before anything that could tell the
    caller whether the resource exists (409, 412, 410), so refusals cannot be used as an oracle.
    """
    r = resources.c
    cur = conn.execute(
        select(r.version_id, r.deleted, r.patient_id).where(r.res_type == res_type, r.res_id == res_id)
    ).first()
    entries: list[IndexEntry] = []
    patient_id = cur.patient_id if cur else None
    if body is not None:
        entries = extract_index(body)
        patients = compartment_patients(body, entries)
        patient_id = patients[0] if patients else None
        entries += care_entries(body)
    if authorize is not None:
        authorize(
            cur.patient_id if cur else None,
            patient_id if body is not None else None,
            bool(cur and not cur.deleted),
        )
    if create_only and cur is not None:
        raise Conflict(f"{res_type}/{res_id} already exists")
    if expected_version is not None and (cur is None or cur.version_id != expected_version):
        raise PreconditionFailed(
            f"{res_type}/{res_id} is at version {cur.version_id if cur else 'none'}, not {expected_version}"
        )
    if cur is not None and cur.patient_id is not None and keys.is_erased(conn, patient_id=cur.patient_id):
        raise Gone(f"{res_type}/{res_id} is gone")
    vid = cur.version_id + 1 if cur else 1
    method = "DELETE" if body is None else ("POST" if cur is None else "PUT")
    blob = None
    if body is not None:
        meta = body.setdefault("meta", {})
        meta["versionId"] = str(vid)
        meta["lastUpdated"] = instant(now)
        dek = keys.data_key_for_write(conn, master=master, patient_id=patient_id) if patient_id else None
        blob = seal(dek, orjson.dumps(body), aad=_aad(res_type, res_id, vid))
    values = {
        "version_id": vid,
        "last_updated": now,
        "deleted": body is None,
        "patient_id": patient_id,
        "body": blob,
    }
    if cur is None:
        try:
            with conn.begin_nested():
                conn.execute(resources.insert().values(res_type=res_type, res_id=res_id, **values))
        except IntegrityError as exc:
            raise WriteRace(f"{res_type}/{res_id}") from exc
    else:
        done = conn.execute(
            update(resources)
            .where(r.res_type == res_type, r.res_id == res_id, r.version_id == cur.version_id)
            .values(**values)
        )
        if done.rowcount != 1:
            if expected_version is not None:
                raise PreconditionFailed(f"{res_type}/{res_id} changed since version {expected_version}")
            raise WriteRace(f"{res_type}/{res_id}")
    conn.execute(resource_versions.insert().values(res_type=res_type, res_id=res_id, method=method, **values))
    conn.execute(version_outbox.insert().values(res_type=res_type, res_id=res_id, version_id=vid))
    if body is None:
        delete_index(conn, res_type=res_type, res_id=res_id)
    else:
        replace_index(
            conn, res_type=res_type, res_id=res_id, patient_id=patient_id, entries=entries, new=cur is None
        )
    return Stored(res_type, res_id, vid, now, body is None, method, body, patient_id)


def patient_compartment_keys(conn: Connection, *, patient_id: str) -> list[tuple[str, str]]:
    """Every live resource whose body is sealed under this patient's key."""
    rows = conn.execute(
        select(resources.c.res_type, resources.c.res_id)
        .where(resources.c.patient_id == patient_id, resources.c.deleted.is_(False))
        .order_by(resources.c.res_type, resources.c.res_id)
    ).all()
    return [(row.res_type, row.res_id) for row in rows]


def erase_patient_rows(conn: Connection, *, patient_id: str) -> int:
    """Destroy the key, drop index rows and current bodies of everything in the compartment."""
    affected = conn.execute(
        select(resources.c.res_type, resources.c.res_id).where(resources.c.patient_id == patient_id)
    ).all()
    for row in affected:
        delete_index(conn, res_type=row.res_type, res_id=row.res_id)
    conn.execute(
        update(resources).where(resources.c.patient_id == patient_id).values(body=None, deleted=True)
    )
    keys.destroy_key(conn, patient_id=patient_id)
    return len(affected)
