"""Record services: the one way into the FHIR store for web, CLI, import and other domains.

Every operation takes the ``Principal`` asking, checks it through ``access`` (the one place
where access rules live), validates its input, runs in one database transaction, leaves an
AuditEvent through ``auditing`` whatever the outcome, and returns plain data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, select, text

from medweave.audit import AuditService
from medweave.db import is_sqlite, read_tx, write_tx
from medweave.errors import Gone, InvalidInput, NotFound
from medweave.records import access, keys, store
from medweave.records.auditing import Trail
from medweave.records.queries import Queries
from medweave.records.store import RecordGone, Stored, WriteRace
from medweave.records.tables import resources
from medweave.records.validation import validate_resource
from medweave.security.crypto import MasterKey, open_sealed, seal
from medweave.security.principal import Principal

T = TypeVar("T")
_MAX_RETRIES = 8


class RecordService(Queries):
    """Create, read, update, delete, history, search and erase, over one engine and master key."""

    def __init__(
        self,
        *,
        engine: Engine,
        master: MasterKey,
        base_url: str,
        page_size: int = 50,
        max_page: int = 1000,
        audit: AuditService | None = None,
    ):
        self.engine = engine
        self.master = master
        self.base = base_url.rstrip("/")
        self.page_size = page_size
        self.max_page = max_page
        self.trail = Trail(audit)

    # -- transactions ------------------------------------------------------------------------
    def in_write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one write transaction, retrying when a concurrent writer raced us."""
        for attempt in range(_MAX_RETRIES):
            try:
                with write_tx(self.engine) as conn:
                    return fn(conn)
            except WriteRace:
                if attempt == _MAX_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    # -- single resources -------------------------------------------------------------------
    def create(self, *, principal: Principal, res_type: str, data: object) -> Stored:
        with self.trail.event(principal, "create", res_type=res_type) as note:
            access.may_ever(principal, res_type, "create")  # scopes bound everything, bodies included
            body = validate_resource(data, expected_type=res_type)
            body["id"] = str(uuid.uuid4())
            stored = self.in_write(
                lambda conn: self.write_in(
                    conn, principal=principal, res_type=res_type, res_id=body["id"], body=body
                )
            )
            note.status, note.res_id, note.version_id = 201, stored.res_id, stored.version_id
            note.patients.update(p for p in (stored.patient_id,) if p)
            return stored

    def update(
        self, *, principal: Principal, res_type: str, res_id: str, data: object, if_match: int | None = None
    ) -> tuple[Stored, bool]:
        with self.trail.event(principal, "update", res_type=res_type, res_id=res_id) as note:
            access.require_scope(principal, res_type, "update")  # role rules need the stored record
            body = validate_resource(data, expected_type=res_type)
            if body.get("id") != res_id:
                raise InvalidInput(
                    f"the body's id ({body.get('id')!r}) must equal the id in the URL ({res_id!r})",
                    expression=[f"{res_type}.id"],
                )
            stored = self.in_write(
                lambda conn: self.write_in(
                    conn,
                    principal=principal,
                    res_type=res_type,
                    res_id=res_id,
                    body=body,
                    expected_version=if_match,
                    put=True,
                )
            )
            created = stored.version_id == 1
            note.status, note.version_id = (201 if created else 200), stored.version_id
            note.patients.update(p for p in (stored.patient_id,) if p)
            return stored, created

    def delete(self, *, principal: Principal, res_type: str, res_id: str) -> Stored | None:
        with self.trail.event(principal, "delete", res_type=res_type, res_id=res_id) as note:

            def run(conn: Connection) -> Stored | None:
                if not deletable(conn, principal, res_type, res_id):
                    return None  # deleting the missing, deleted or invisible is a no-op (R4 http.html#delete)
                return self.write_in(conn, principal=principal, res_type=res_type, res_id=res_id, body=None)

            stored = self.in_write(run)
            note.status = 204
            if stored is not None:
                note.version_id = stored.version_id
                note.patients.update(p for p in (stored.patient_id,) if p)
            return stored

    def write_in(
        self,
        conn: Connection,
        *,
        principal: Principal,
        res_type: str,
        res_id: str,
        body: dict[str, Any] | None,
        expected_version: int | None = None,
        create_only: bool = False,
        put: bool = False,
        fresh_patients: frozenset[str] = frozenset(),
    ) -> Stored:
        """Check access and write inside a caller's transaction (used by bundles and import).

        ``put`` marks an update that may create (a client-chosen id). Only system callers may
        create that way: for anyone else a PUT to an id that is not there answers 404, exactly
        like a PUT to a record they may not see, so ids cannot be probed.
        """

        def authorize(old_patient: str | None, new_patient: str | None, exists: bool) -> None:
            # A PUT needs the update scope whether or not the id exists, so the answer to a
            # caller without it cannot depend on existence either.
            op = "delete" if body is None else ("update" if put or exists else "create")
            access.require_writable(
                conn,
                principal,
                res_type=res_type,
                res_id=res_id,
                put=put,
                op=op,
                old_patient=old_patient,
                new_patient=new_patient,
                exists=exists,
                fresh_patients=fresh_patients,
            )

        return store.write(
            conn,
            master=self.master,
            res_type=res_type,
            res_id=res_id,
            body=body,
            now=datetime.now(UTC),
            expected_version=expected_version,
            create_only=create_only,
            authorize=authorize,
        )

    def read(self, *, principal: Principal, res_type: str, res_id: str) -> Stored:
        with self.trail.event(principal, "read", res_type=res_type, res_id=res_id) as note:
            with read_tx(self.engine) as conn:
                access.view(principal, res_type, "read")
                try:
                    stored = store.read_current(conn, master=self.master, res_type=res_type, res_id=res_id)
                except RecordGone as gone:
                    access.require_readable(conn, principal, res_type, res_id, gone.patient_id)
                    raise
                access.require_readable(conn, principal, res_type, res_id, stored.patient_id)
            note.version_id = stored.version_id
            note.patients.update(p for p in (stored.patient_id,) if p)
            return stored

    def vread(self, *, principal: Principal, res_type: str, res_id: str, version_id: int) -> Stored:
        with self.trail.event(principal, "vread", res_type=res_type, res_id=res_id) as note:
            note.version_id = version_id
            with read_tx(self.engine) as conn:
                access.view(principal, res_type, "read")
                current = store.current_row(conn, res_type=res_type, res_id=res_id)
                if current is None:  # word for word what a hidden resource answers
                    raise NotFound(f"{res_type}/{res_id} is not known")
                access.require_readable(conn, principal, res_type, res_id, current.patient_id)
                try:
                    stored = store.read_version(
                        conn, master=self.master, res_type=res_type, res_id=res_id, version_id=version_id
                    )
                except RecordGone as gone:
                    access.require_readable(conn, principal, res_type, res_id, gone.patient_id)
                    raise
                access.require_readable(conn, principal, res_type, res_id, stored.patient_id)
            note.patients.update(p for p in (stored.patient_id,) if p)
            return stored

    def export_patient(self, *, principal: Principal, patient_id: str) -> Iterator[dict[str, Any]]:
        with self.trail.event(principal, "export", res_type="Patient", res_id=patient_id) as note:
            bundle = self.everything_bundle(principal, patient_id)
            note.patients.add(patient_id)
        for entry in bundle.get("entry", []):
            yield entry["resource"]

    # -- erasure and keys -----------------------------------------------------------------------
    def erase_patient(self, *, principal: Principal, patient_id: str) -> int:
        """Crypto-shred a patient: destroy their key and index rows; reads then answer 410."""
        with self.trail.event(
            principal, "delete", res_type="Patient", res_id=patient_id, operation="erase"
        ) as note:
            note.patients.add(patient_id)
            access.require_operator(principal, "erase a patient")

            def run(conn: Connection) -> int:
                if store.current_row(conn, res_type="Patient", res_id=patient_id) is None:
                    raise NotFound(f"Patient/{patient_id} is not known")
                if keys.is_erased(conn, patient_id=patient_id):
                    raise Gone(f"Patient/{patient_id} was already erased")
                return store.erase_patient_rows(conn, patient_id=patient_id)

            n = self.in_write(run)
            self._scrub_free_space()
            return n

    def _scrub_free_space(self) -> None:
        """Make sure deleted plaintext index cells do not linger in database files."""
        if is_sqlite(self.engine):
            # VACUUM cannot run inside a transaction, and our engine opens one on every connect.
            raw = self.engine.raw_connection()
            try:
                cur = raw.cursor()
                for sql in ("PRAGMA wal_checkpoint(TRUNCATE)", "VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"):
                    cur.execute(sql)
                cur.close()
            finally:
                raw.close()
        else:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM search_index"))
                conn.execute(text("VACUUM resources"))

    def require_writer(self, *, principal: Principal, patient_id: str, res_type: str = "Device") -> None:
        """Raise unless ``principal`` may create ``res_type`` records for this patient (a service
        that writes on a user's behalf asks first, so it never writes more than they may)."""
        with read_tx(self.engine) as conn:
            access.require_writable(
                conn,
                principal,
                res_type=res_type,
                res_id="-",
                op="create",
                old_patient=None,
                new_patient=patient_id,
                exists=False,
            )

    # -- files under a patient's key ------------------------------------------------------------
    def seal_for_patient(self, *, patient_id: str, data: bytes, aad: bytes) -> bytes:
        """Encrypt a file (a CT study, a mesh) under the patient's data key, so that it is
        unreadable at rest and shredded with the patient (410 once they are erased)."""
        dek = self.in_write(
            lambda conn: keys.data_key_for_write(conn, master=self.master, patient_id=patient_id)
        )
        return seal(dek, data, aad=aad)

    def open_for_patient(self, *, patient_id: str, blob: bytes, aad: bytes) -> bytes:
        """Decrypt what :meth:`seal_for_patient` sealed; 410 once the patient is erased."""
        with read_tx(self.engine) as conn:
            dek = keys.data_key_for_read(conn, master=self.master, patient_id=patient_id)
        return open_sealed(dek, blob, aad=aad)

    def rotate_master_key(self, *, new: MasterKey, also: Callable[[Connection], object] | None = None) -> int:
        """Re-wrap every data key under ``new`` in one transaction; ``also`` runs in the same one
        (the identity store re-seals its TOTP secrets there, so both move together)."""
        old = self.master

        def run(conn: Connection) -> int:
            n = keys.rewrap_all(conn, old=old, new=new)
            if also is not None:
                also(conn)
            return n

        n = self.in_write(run)
        self.master = new
        return n

    def is_empty(self) -> bool:
        with read_tx(self.engine) as conn:
            return conn.execute(select(resources.c.res_id).limit(1)).first() is None


def deletable(conn: Connection, principal: Principal, res_type: str, res_id: str) -> bool:
    """False when a delete is a no-op: missing, already deleted, or invisible to the caller.

    Deleting what the caller cannot see answers like deleting what does not exist (204, nothing
    done), so a delete cannot be used to probe for records. A caller who may never delete this
    type (scopes or role) gets 403 whatever the id.
    """
    access.may_ever(principal, res_type, "delete")
    row = store.current_row(conn, res_type=res_type, res_id=res_id)
    if row is None or row.deleted:
        return False
    try:
        access.require_readable(conn, principal, res_type, res_id, row.patient_id)
    except NotFound:
        return False
    return True
