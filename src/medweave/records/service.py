"""Record services: the one way into the FHIR store for web, CLI, import and other domains.

Every operation validates its input, runs in one database transaction and returns plain data.
(Access checks and audit events join here in the identity issue; they go in this layer so that
no caller can skip them.)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, select, text

from medweave.db import is_sqlite, read_tx, write_tx
from medweave.errors import Gone, InvalidInput, Issue, NotFound
from medweave.records import fhir, keys, search, store
from medweave.records.searchparse import parse_search
from medweave.records.store import Stored, WriteRace
from medweave.records.tables import resources, search_index
from medweave.records.validation import validate_resource
from medweave.security.crypto import MasterKey

T = TypeVar("T")
_MAX_RETRIES = 8
_MAX_OFFSET = 2**31 - 1  # larger offsets overflow SQLite's and PostgreSQL's integers (and mean nothing)


def _check_params(params: Sequence[tuple[str, str]]) -> None:
    """Refuse NUL in parameters: PostgreSQL cannot compare text with it (it would end as a 500)."""
    for name, value in params:
        if "\x00" in name or "\x00" in value:
            raise InvalidInput(f"parameter {name!r} holds a NUL character")


@dataclass
class SearchResult:
    bundle: dict[str, Any]


class RecordService:
    """Create, read, update, delete, history, search and erase, over one engine and master key."""

    def __init__(
        self, *, engine: Engine, master: MasterKey, base_url: str, page_size: int = 50, max_page: int = 1000
    ):
        self.engine = engine
        self.master = master
        self.base = base_url.rstrip("/")
        self.page_size = page_size
        self.max_page = max_page

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
    def create(self, *, res_type: str, data: object) -> Stored:
        body = validate_resource(data, expected_type=res_type)
        body["id"] = str(uuid.uuid4())
        return self.in_write(
            lambda conn: self.write_in(conn, res_type=res_type, res_id=body["id"], body=body)
        )

    def update(
        self, *, res_type: str, res_id: str, data: object, if_match: int | None = None
    ) -> tuple[Stored, bool]:
        body = validate_resource(data, expected_type=res_type)
        if body.get("id") != res_id:
            raise InvalidInput(
                f"the body's id ({body.get('id')!r}) must equal the id in the URL ({res_id!r})",
                expression=[f"{res_type}.id"],
            )

        def run(conn: Connection) -> tuple[Stored, bool]:
            stored = self.write_in(
                conn, res_type=res_type, res_id=res_id, body=body, expected_version=if_match
            )
            return stored, stored.version_id == 1

        return self.in_write(run)

    def delete(self, *, res_type: str, res_id: str) -> Stored | None:
        def run(conn: Connection) -> Stored | None:
            cur = store.current_version(conn, res_type=res_type, res_id=res_id)
            if cur is None or cur[1]:
                return None  # deleting the missing or deleted is a no-op (R4 http.html#delete)
            return self.write_in(conn, res_type=res_type, res_id=res_id, body=None)

        return self.in_write(run)

    def write_in(
        self,
        conn: Connection,
        *,
        res_type: str,
        res_id: str,
        body: dict[str, Any] | None,
        expected_version: int | None = None,
        create_only: bool = False,
    ) -> Stored:
        """Write inside a caller's transaction (used by bundles and import)."""
        return store.write(
            conn,
            master=self.master,
            res_type=res_type,
            res_id=res_id,
            body=body,
            now=datetime.now(UTC),
            expected_version=expected_version,
            create_only=create_only,
        )

    def read(self, *, res_type: str, res_id: str) -> Stored:
        with read_tx(self.engine) as conn:
            return store.read_current(conn, master=self.master, res_type=res_type, res_id=res_id)

    def vread(self, *, res_type: str, res_id: str, version_id: int) -> Stored:
        with read_tx(self.engine) as conn:
            return store.read_version(
                conn, master=self.master, res_type=res_type, res_id=res_id, version_id=version_id
            )

    # -- history ------------------------------------------------------------------------------
    def history(
        self, *, res_type: str | None, res_id: str | None, params: Sequence[tuple[str, str]]
    ) -> dict[str, Any]:
        _check_params(params)
        count, offset, since = self.page_size, 0, None
        for name, value in params:
            try:
                if name == "_count":
                    count = min(int(value), self.max_page)
                elif name == "_offset":
                    offset = int(value)
                elif name == "_since":
                    since = datetime.fromisoformat(value.replace("Z", "+00:00"))
                    if since.tzinfo is None:
                        since = since.replace(tzinfo=UTC)
            except ValueError as exc:
                raise InvalidInput(f"invalid value for {name}: {value!r}") from exc
        if count < 0 or offset < 0 or offset > _MAX_OFFSET:
            raise InvalidInput(
                f"_count must not be negative, and _offset must be between 0 and {_MAX_OFFSET}"
            )
        with read_tx(self.engine) as conn:
            if (
                res_id is not None
                and res_type is not None
                and store.current_version(conn, res_type=res_type, res_id=res_id) is None
            ):
                raise NotFound(f"{res_type}/{res_id} is not known")
            total, items = store.history(
                conn,
                master=self.master,
                res_type=res_type,
                res_id=res_id,
                since=since,
                offset=offset,
                count=count,
            )
        path = "/".join(p for p in (res_type, res_id, "_history") if p)
        return fhir.bundle(
            "history",
            total=total,
            links=self._page_links(path, params, offset, count, total),
            entries=[fhir.history_entry(self.base, item) for item in items],
        )

    def _page_links(
        self, path: str, params: Sequence[tuple[str, str]], offset: int, count: int, total: int
    ) -> list[tuple[str, str]]:
        kept = [(k, v) for k, v in params if k not in ("_offset", "_count")]
        links = [
            ("self", fhir.link(self.base, path, [*kept, ("_count", str(count)), ("_offset", str(offset))]))
        ]
        if count and offset + count < total:
            links.append(
                (
                    "next",
                    fhir.link(
                        self.base, path, [*kept, ("_count", str(count)), ("_offset", str(offset + count))]
                    ),
                )
            )
        if count and offset > 0:
            prev = max(0, offset - count)
            links.append(
                (
                    "previous",
                    fhir.link(self.base, path, [*kept, ("_count", str(count)), ("_offset", str(prev))]),
                )
            )
        return links

    # -- search -------------------------------------------------------------------------------
    def search(
        self, *, res_type: str, params: Sequence[tuple[str, str]], strict: bool = False
    ) -> dict[str, Any]:
        _check_params(params)
        req = parse_search(res_type, list(params))
        warnings = [
            Issue("warning", "not-supported", f"parameter {name!r} ignored: {why}")
            for name, why in req.unknown
        ]
        if strict and warnings:
            raise InvalidInput(
                "unsupported search parameters",
                issues=[Issue("error", "not-supported", w.diagnostics) for w in warnings],
            )
        count = self.page_size if req.count is None else min(req.count, self.max_page)
        offset = req.offset or 0
        unknown_names = {name for name, _ in req.unknown}
        used = [(k, v) for k, v in params if k.split(":")[0] not in unknown_names]
        with read_tx(self.engine) as conn:
            total = search.count_matches(conn, req)
            if req.summary == "count":
                return fhir.bundle(
                    "searchset", total=total, links=[("self", fhir.link(self.base, res_type, used))]
                )
            keys_ = search.page(conn, req, offset, count) if count else []
            matches = store.read_many(conn, master=self.master, keys_=keys_)
            included: list[Stored] = []
            if matches and (req.include or req.revinclude):
                seen = {m.key for m in matches}
                extra = [
                    k
                    for k in search.resolve_includes(conn, req, keys_)
                    + search.resolve_revincludes(conn, req, keys_)
                    if k not in seen and not seen.add(k)  # type: ignore[func-returns-value]
                ]
                included = store.read_many(conn, master=self.master, keys_=extra)
        entries = [fhir.search_entry(self.base, m, "match") for m in matches]
        entries += [fhir.search_entry(self.base, m, "include") for m in included]
        if warnings:
            entries.append(fhir.outcome_entry(warnings))
        return fhir.bundle(
            "searchset",
            total=total,
            links=self._page_links(res_type, used, offset, count, total),
            entries=entries,
        )

    def everything(self, *, patient_id: str) -> dict[str, Any]:
        """``Patient/$everything``: the patient, their compartment, and what those reference."""
        with read_tx(self.engine) as conn:
            patient = store.read_current(conn, master=self.master, res_type="Patient", res_id=patient_id)
            keys_ = store.patient_compartment_keys(conn, patient_id=patient_id)
            referencing = conn.execute(
                select(search_index.c.res_type, search_index.c.res_id)
                .where(search_index.c.ref_type == "Patient", search_index.c.ref_id == patient_id)
                .distinct()
            ).all()
            wanted = list(
                dict.fromkeys([patient.key, *keys_, *[(r.res_type, r.res_id) for r in referencing]])
            )
            items = store.read_many(conn, master=self.master, keys_=wanted)
            have = {i.key for i in items}
            refs = conn.execute(
                select(search_index.c.ref_type, search_index.c.ref_id)
                .where(
                    search_index.c.patient_id == patient_id,
                    search_index.c.ref_type.in_(
                        ["Practitioner", "PractitionerRole", "Device", "Questionnaire"]
                    ),
                )
                .distinct()
            ).all()
            extra = [(r.ref_type, r.ref_id) for r in refs if (r.ref_type, r.ref_id) not in have]
            items += store.read_many(conn, master=self.master, keys_=extra)
        return fhir.bundle(
            "searchset",
            total=len(items),
            links=[("self", f"{self.base}/Patient/{patient_id}/$everything")],
            entries=[fhir.search_entry(self.base, i, "match") for i in items],
        )

    def export_patient(self, *, patient_id: str) -> Iterator[dict[str, Any]]:
        bundle = self.everything(patient_id=patient_id)
        for entry in bundle.get("entry", []):
            yield entry["resource"]

    # -- erasure and keys -----------------------------------------------------------------------
    def erase_patient(self, *, patient_id: str) -> int:
        """Crypto-shred a patient: destroy their key and index rows; reads then answer 410."""

        def run(conn: Connection) -> int:
            if store.current_version(conn, res_type="Patient", res_id=patient_id) is None:
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

    def rotate_master_key(self, *, new: MasterKey) -> int:
        old = self.master
        n = self.in_write(lambda conn: keys.rewrap_all(conn, old=old, new=new))
        self.master = new
        return n

    def is_empty(self) -> bool:
        with read_tx(self.engine) as conn:
            return conn.execute(select(resources.c.res_id).limit(1)).first() is None
