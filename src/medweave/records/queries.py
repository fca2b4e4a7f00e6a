"""Reading many records at once: search, history and ``Patient/$everything``.

Every result set is cut by the caller's ``access.View`` in SQL — matches, totals, included and
revincluded resources, history entries — so none of them can reveal a resource that a read would
refuse (the holes reported in hapi-fhir#6065, microsoft/fhir-server#5683, LinuxForHealth/FHIR#1849
and hapi-fhir#3249).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Connection, Engine, and_, false, or_, select

from medweave.db import read_tx
from medweave.errors import InvalidInput, Issue, NotFound, PermissionDenied
from medweave.records import access, fhir, search, store
from medweave.records.auditing import Trail
from medweave.records.searchparse import parse_search
from medweave.records.store import Stored
from medweave.records.tables import resource_versions, resources, search_index
from medweave.security.crypto import MasterKey
from medweave.security.principal import Principal

_MAX_OFFSET = 2**31 - 1  # larger offsets overflow SQLite's and PostgreSQL's integers (and mean nothing)
_EVERYTHING_REFERENCED = ("Practitioner", "PractitionerRole", "Device", "Questionnaire")


def _check_params(params: Sequence[tuple[str, str]]) -> None:
    """Refuse NUL in parameters: PostgreSQL cannot compare text with it (it would end as a 500)."""
    for name, value in params:
        if "\x00" in name or "\x00" in value:
            raise InvalidInput(f"parameter {name!r} holds a NUL character")


class Queries:
    """Mixed into ``RecordService``: the multi-resource reads."""

    engine: Engine
    master: MasterKey
    base: str
    page_size: int
    max_page: int
    trail: Trail

    def search(
        self,
        *,
        principal: Principal,
        res_type: str,
        params: Sequence[tuple[str, str]],
        strict: bool = False,
    ) -> dict[str, Any]:
        with self.trail.event(principal, "search", res_type=res_type, query=urlencode(list(params))) as note:
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
            visible = access.view(principal, res_type, "search").condition(resources.c.patient_id)
            count = self.page_size if req.count is None else min(req.count, self.max_page)
            offset = req.offset or 0
            unknown_names = {name for name, _ in req.unknown}
            used = [(k, v) for k, v in params if k.split(":")[0] not in unknown_names]
            with read_tx(self.engine) as conn:
                total = search.count_matches(conn, req, visible=visible)
                if req.summary == "count":
                    return fhir.bundle(
                        "searchset", total=total, links=[("self", fhir.link(self.base, res_type, used))]
                    )
                keys_ = search.page(conn, req, offset, count, visible=visible) if count else []
                matches = store.read_many(conn, master=self.master, keys_=keys_, visible=visible)
                included: list[Stored] = []
                if matches and (req.include or req.revinclude):
                    extra = search.resolve_includes(conn, req, keys_) + search.resolve_revincludes(
                        conn, req, keys_
                    )
                    included = _read_visible(self, conn, principal, list(dict.fromkeys(extra)))
            note.patients.update(m.patient_id for m in [*matches, *included] if m.patient_id)
            entries = [fhir.search_entry(self.base, m, "match") for m in matches]
            entries += [fhir.search_entry(self.base, m, "include") for m in included]
            if warnings:
                entries.append(fhir.outcome_entry(warnings))
            return fhir.bundle(
                "searchset",
                total=total,
                links=_page_links(self.base, res_type, used, offset, count, total),
                entries=entries,
            )

    def history(
        self,
        *,
        principal: Principal,
        res_type: str | None,
        res_id: str | None,
        params: Sequence[tuple[str, str]],
    ) -> dict[str, Any]:
        with self.trail.event(principal, "history", res_type=res_type, res_id=res_id) as note:
            count, offset, since = _history_params(params, self.page_size, self.max_page)
            visible = _history_visibility(principal, res_type)
            with read_tx(self.engine) as conn:
                if res_id is not None and res_type is not None:
                    row = conn.execute(
                        select(resources.c.patient_id).where(
                            resources.c.res_type == res_type, resources.c.res_id == res_id
                        )
                    ).first()
                    if row is None:
                        raise NotFound(f"{res_type}/{res_id} is not known")
                    access.require_readable(conn, principal, res_type, res_id, row.patient_id)
                total, items = store.history(
                    conn,
                    master=self.master,
                    res_type=res_type,
                    res_id=res_id,
                    since=since,
                    offset=offset,
                    count=count,
                    visible=visible,
                )
            note.patients.update(i.patient_id for i in items if i.patient_id)
            path = "/".join(p for p in (res_type, res_id, "_history") if p)
            return fhir.bundle(
                "history",
                total=total,
                links=_page_links(self.base, path, params, offset, count, total),
                entries=[fhir.history_entry(self.base, item) for item in items],
            )

    def everything(self, *, principal: Principal, patient_id: str) -> dict[str, Any]:
        """``Patient/$everything``: the patient, their compartment, and what those reference."""
        with self.trail.event(
            principal, "operation", res_type="Patient", res_id=patient_id, operation="everything"
        ) as note:
            bundle = self.everything_bundle(principal, patient_id)
            note.patients.add(patient_id)
            return bundle

    def everything_bundle(self, principal: Principal, patient_id: str) -> dict[str, Any]:
        si = search_index.c
        with read_tx(self.engine) as conn:
            access.view(principal, "Patient", "read")
            row = conn.execute(
                select(resources.c.patient_id, resources.c.deleted).where(
                    resources.c.res_type == "Patient", resources.c.res_id == patient_id
                )
            ).first()
            if row is None:
                raise NotFound(f"Patient/{patient_id} is not known")
            access.require_readable(conn, principal, "Patient", patient_id, row.patient_id)
            keys_ = store.patient_compartment_keys(conn, patient_id=patient_id)
            referencing = conn.execute(
                select(si.res_type, si.res_id)
                .where(si.ref_type == "Patient", si.ref_id == patient_id)
                .distinct()
            ).all()
            referenced = conn.execute(
                select(si.ref_type, si.ref_id)
                .where(si.patient_id == patient_id, si.ref_type.in_(_EVERYTHING_REFERENCED))
                .distinct()
            ).all()
            wanted = [("Patient", patient_id), *keys_, *[(r[0], r[1]) for r in [*referencing, *referenced]]]
            items = _read_visible(self, conn, principal, list(dict.fromkeys(wanted)))
        if not items or items[0].key != ("Patient", patient_id):
            raise NotFound(f"Patient/{patient_id} is not known")
        return fhir.bundle(
            "searchset",
            total=len(items),
            links=[("self", f"{self.base}/Patient/{patient_id}/$everything")],
            entries=[fhir.search_entry(self.base, i, "match") for i in items],
        )


def _read_visible(
    service: Queries, conn: Connection, principal: Principal, keys_: list[tuple[str, str]]
) -> list[Stored]:
    """Read ``keys_`` keeping only types the scopes allow reading and rows the caller may see."""
    conds = []
    for res_type in sorted({t for t, _ in keys_}):
        try:
            v = access.view(principal, res_type, "read")
        except PermissionDenied:
            continue
        conds.append(and_(resources.c.res_type == res_type, v.condition(resources.c.patient_id)))
    if not conds:
        return []
    return store.read_many(conn, master=service.master, keys_=keys_, visible=or_(*conds))


def _history_visibility(principal: Principal, res_type: str | None) -> Any:
    col = resource_versions.c.patient_id
    if res_type is not None:
        return access.view(principal, res_type, "read").condition(col)
    conds = []
    for t in fhir.SUPPORTED_TYPES:
        try:
            conds.append(
                and_(resource_versions.c.res_type == t, access.view(principal, t, "read").condition(col))
            )
        except PermissionDenied:
            continue
    return or_(*conds) if conds else false()


def _history_params(
    params: Sequence[tuple[str, str]], page_size: int, max_page: int
) -> tuple[int, int, datetime | None]:
    _check_params(params)
    count, offset, since = page_size, 0, None
    for name, value in params:
        try:
            if name == "_count":
                count = min(int(value), max_page)
            elif name == "_offset":
                offset = int(value)
            elif name == "_since":
                since = datetime.fromisoformat(value.replace("Z", "+00:00"))
                if since.tzinfo is None:
                    since = since.replace(tzinfo=UTC)
        except ValueError as exc:
            raise InvalidInput(f"invalid value for {name}: {value!r}") from exc
    if count < 0 or offset < 0 or offset > _MAX_OFFSET:
        raise InvalidInput(f"_count must not be negative, and _offset must be between 0 and {_MAX_OFFSET}")
    return count, offset, since


def _page_links(
    base: str, path: str, params: Sequence[tuple[str, str]], offset: int, count: int, total: int
) -> list[tuple[str, str]]:
    kept = [(k, v) for k, v in params if k not in ("_offset", "_count")]

    def at(start: int) -> str:
        return fhir.link(base, path, [*kept, ("_count", str(count)), ("_offset", str(start))])

    links = [("self", at(offset))]
    if count and offset + count < total:
        links.append(("next", at(offset + count)))
    if count and offset > 0:
        links.append(("previous", at(max(0, offset - count))))
    return links
