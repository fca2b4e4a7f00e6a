"""Per-patient data keys: created on first write, unwrapped per request, destroyed on erasure.

This module and ``store`` are the only code that touches ``patient_keys``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from medweave.errors import Gone, NotFound
from medweave.records.tables import patient_keys
from medweave.security.crypto import MasterKey, derive_key, new_data_key


def data_key_for_write(conn: Connection, *, master: MasterKey, patient_id: str) -> bytes:
    """The patient's DEK, made on first use. Writing for an erased patient is refused (410)."""
    row = conn.execute(
        select(patient_keys.c.wrapped_key, patient_keys.c.erased).where(
            patient_keys.c.patient_id == patient_id
        )
    ).first()
    if row is not None:
        if row.erased is not None or row.wrapped_key is None:
            raise Gone(f"Patient/{patient_id} was erased; no data can be written for them")
        return master.unwrap(row.wrapped_key, patient_id=patient_id)
    dek = new_data_key()
    try:
        with conn.begin_nested():
            conn.execute(
                patient_keys.insert().values(
                    patient_id=patient_id,
                    wrapped_key=master.wrap(dek, patient_id=patient_id),
                    master_key_id=master.key_id,
                    created=datetime.now(UTC),
                )
            )
    except IntegrityError:  # another writer made it first; use theirs
        return data_key_for_write(conn, master=master, patient_id=patient_id)
    return dek


def data_key_for_read(conn: Connection, *, master: MasterKey, patient_id: str) -> bytes:
    """The patient's DEK for reading; 410 once they were erased, 404 if they never had one."""
    row = conn.execute(
        select(patient_keys.c.wrapped_key, patient_keys.c.erased).where(
            patient_keys.c.patient_id == patient_id
        )
    ).first()
    if row is None:
        raise NotFound(f"Patient/{patient_id} has no data key")
    if row.erased is not None or row.wrapped_key is None:
        raise Gone(f"Patient/{patient_id} was erased")
    return master.unwrap(row.wrapped_key, patient_id=patient_id)


def destroy_key(conn: Connection, *, patient_id: str) -> bool:
    """Crypto-shred: forget the wrapped key for good. Returns False if there was none."""
    now = datetime.now(UTC)
    res = conn.execute(
        update(patient_keys)
        .where(patient_keys.c.patient_id == patient_id)
        .values(wrapped_key=None, erased=now, master_key_id=None)
    )
    if res.rowcount == 0:
        conn.execute(
            patient_keys.insert().values(patient_id=patient_id, wrapped_key=None, created=now, erased=now)
        )
        return False
    return True


def is_erased(conn: Connection, *, patient_id: str) -> bool:
    row = conn.execute(select(patient_keys.c.erased).where(patient_keys.c.patient_id == patient_id)).first()
    return row is not None and row.erased is not None


def rewrap_all(conn: Connection, *, old: MasterKey, new: MasterKey) -> int:
    """Re-wrap every live DEK under a new master key, in the caller's transaction."""
    rows = conn.execute(
        select(patient_keys.c.patient_id, patient_keys.c.wrapped_key).where(
            patient_keys.c.wrapped_key.is_not(None)
        )
    ).all()
    for row in rows:
        dek = old.unwrap(row.wrapped_key, patient_id=row.patient_id)
        conn.execute(
            update(patient_keys)
            .where(patient_keys.c.patient_id == row.patient_id)
            .values(wrapped_key=new.wrap(dek, patient_id=row.patient_id), master_key_id=new.key_id)
        )
    return len(rows)


#: patient id -> (wrapped key, salt): what ``ledger_salts`` may skip unwrapping and deriving again.
SaltCache = dict[str, tuple[bytes, bytes]]


def ledger_salts(
    conn: Connection,
    *,
    master: MasterKey,
    patient_ids: Iterable[str],
    create: bool = False,
    cache: SaltCache | None = None,
) -> dict[str, bytes | None]:
    """The salts of these patients' ledger commitments, derived from their data keys (HKDF-SHA256).

    A salt lives and dies with its key: after crypto-shredding it is gone, so the ledger's leaves
    still verify as a tree but can no longer be linked to the person. None for a patient erased
    (or, unless ``create``, without a key yet); ``create`` makes the key on first use.

    One query reads every key's current state, so an erased patient is never answered from
    ``cache`` (and is dropped from it); the cache only spares unwrapping and deriving again for
    a key seen before.
    """
    wanted = sorted(set(patient_ids))
    rows = {
        r.patient_id: r
        for r in conn.execute(
            select(patient_keys.c.patient_id, patient_keys.c.wrapped_key, patient_keys.c.erased).where(
                patient_keys.c.patient_id.in_(wanted)
            )
        )
    }
    out: dict[str, bytes | None] = {}
    for pid in wanted:
        row = rows.get(pid)
        if row is None:
            found = (
                derive_key(data_key_for_write(conn, master=master, patient_id=pid), info=_LEDGER_SALT_INFO)
                if create
                else None
            )
        elif row.erased is not None or row.wrapped_key is None:
            found = None
            if cache is not None:
                cache.pop(pid, None)
        elif cache is not None and (seen := cache.get(pid)) is not None and seen[0] == bytes(row.wrapped_key):
            found = seen[1]
        else:
            found = derive_key(master.unwrap(row.wrapped_key, patient_id=pid), info=_LEDGER_SALT_INFO)
            if cache is not None:
                if len(cache) >= _SALT_CACHE_MAX:
                    cache.clear()
                cache[pid] = (bytes(row.wrapped_key), found)
        out[pid] = found
    return out


_SALT_CACHE_MAX = 100_000
_LEDGER_SALT_INFO = b"medweave ledger salt v1"
