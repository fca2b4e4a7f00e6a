"""``transaction`` and ``batch`` Bundles (R4 http.html#transaction).

A transaction is atomic: every entry is validated before anything is written, and the writes
share one database transaction, so one bad entry stores nothing. Entries are processed in the
spec's order (DELETE, POST, PUT, GET) and ``urn:uuid:`` fullUrls are replaced by the ids the
server assigns, everywhere they are referenced in the Bundle. A batch runs each entry on its
own and reports each outcome.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import Connection

from medweave.errors import InvalidInput, MedweaveError
from medweave.records import access, fhir, store
from medweave.records.service import RecordService, deletable
from medweave.records.store import RecordGone, Stored
from medweave.records.validation import validate_resource
from medweave.security.principal import Principal

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class _Entry:
    index: int
    method: str
    url: str
    res_type: str
    res_id: str | None
    query: list[tuple[str, str]]
    body: dict[str, Any] | None
    full_url: str | None
    if_match: int | None


def _bad(index: int, message: str, field: str = "") -> InvalidInput:
    where = f"Bundle.entry[{index}]" + (f".{field}" if field else "")
    return InvalidInput(f"entry {index}: {message}", expression=[where])


def _parse_entry(index: int, raw: object) -> _Entry:
    if not isinstance(raw, dict):
        raise _bad(index, "must be an object")
    request = raw.get("request")
    if not isinstance(request, dict):
        raise _bad(index, "needs a request with method and url", "request")
    method = str(request.get("method", "")).upper()
    url = request.get("url")
    if method not in _ORDER or method in ("PATCH", "HEAD"):
        raise _bad(index, f"method {method!r} is not supported", "request.method")
    if not isinstance(url, str) or not url:
        raise _bad(index, "request.url is required", "request.url")
    parts = urlsplit(url)
    path = parts.path.strip("/").split("/")
    res_type = path[0]
    if res_type not in fhir.SUPPORTED_TYPES:
        raise _bad(index, f"resource type {res_type!r} is not supported", "request.url")
    res_id = path[1] if len(path) > 1 and path[1] else None
    if res_id is not None and not fhir.valid_id(res_id):
        raise _bad(index, f"{res_id!r} is not a valid FHIR id", "request.url")
    if len(path) > 2:
        raise _bad(index, f"url {url!r} is not supported in a bundle", "request.url")
    if_match = None
    if request.get("ifMatch"):
        if_match = fhir.parse_etag(str(request["ifMatch"]))
        if if_match is None:
            raise _bad(index, 'ifMatch must be an ETag like W/"1"', "request.ifMatch")
    body = None
    if method in ("POST", "PUT"):
        try:
            body = validate_resource(raw.get("resource"), expected_type=res_type)
        except MedweaveError as exc:
            prefix = f"Bundle.entry[{index}].resource"
            for issue in exc.issues:
                issue.expression = [_under(prefix, e) for e in issue.expression] or [prefix]
            raise
        if method == "PUT" and (res_id is None or body.get("id") != res_id):
            raise _bad(index, "a PUT needs Type/id in its url and the same id in its resource", "request.url")
    elif method == "DELETE" and res_id is None:
        raise _bad(index, "conditional delete is not supported", "request.url")
    full_url = raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None
    return _Entry(index, method, url, res_type, res_id, parse_qsl(parts.query), body, full_url, if_match)


def _under(prefix: str, expression: str) -> str:
    """``Patient.name[0]`` under ``Bundle.entry[2].resource`` -> ``Bundle.entry[2].resource.name[0]``."""
    _, dot, rest = expression.partition(".")
    return prefix + dot + rest


def _rewrite_refs(node: Any, mapping: dict[str, str]) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and value in mapping:
                node[key] = mapping[value]
            else:
                _rewrite_refs(value, mapping)
    elif isinstance(node, list):
        for item in node:
            _rewrite_refs(item, mapping)
    return node


def _response(
    base: str, stored: Stored | None, status: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if stored is not None:
        entry["fullUrl"] = fhir.full_url(base, *stored.key)
        if body is not None:
            entry["resource"] = body
        entry["response"] = {
            "status": status,
            "location": f"{stored.res_type}/{stored.res_id}/_history/{stored.version_id}",
            "etag": fhir.etag(stored.version_id),
            "lastModified": store.instant(stored.last_updated),
        }
    else:
        entry["response"] = {"status": status}
        if body is not None:
            entry["resource"] = body
    return entry


def _check_bundle(data: object, kind: str) -> list[object]:
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise InvalidInput("expected a Bundle", expression=["Bundle"])
    if data.get("type") != kind:
        raise InvalidInput(f"expected Bundle.type {kind!r}", expression=["Bundle.type"])
    entries = data.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidInput("Bundle.entry must be a list", expression=["Bundle.entry"])
    return entries


def transaction(service: RecordService, data: object, *, principal: Principal) -> dict[str, Any]:
    with service.trail.event(principal, "transaction") as note:
        result = _transaction(service, data, principal)
        note.patients.update(result.pop("_patients"))
        return result


def _transaction(service: RecordService, data: object, principal: Principal) -> dict[str, Any]:
    entries = [_parse_entry(i, raw) for i, raw in enumerate(_check_bundle(data, "transaction"))]
    mapping: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    for e in entries:
        if e.method == "POST":
            e.res_id = str(uuid.uuid4())
            assert e.body is not None
            e.body["id"] = e.res_id
            if e.full_url:
                mapping[e.full_url] = f"{e.res_type}/{e.res_id}"
        if e.method in ("PUT", "DELETE") and e.res_id:
            key = (e.res_type, e.res_id)
            if key in seen:
                raise _bad(e.index, f"{e.res_type}/{e.res_id} appears twice in one transaction")
            seen.add(key)
            if e.full_url:
                mapping[e.full_url] = f"{e.res_type}/{e.res_id}"
    for e in entries:
        if e.body is not None:
            _rewrite_refs(e.body, mapping)
    dangling = [e for e in entries if e.body is not None and _has_urn_ref(e.body)]
    if dangling:
        raise _bad(
            dangling[0].index, "references a urn:uuid that no entry of this Bundle defines", "resource"
        )

    fresh = frozenset(
        e.res_id for e in entries if e.method == "POST" and e.res_type == "Patient" and e.res_id
    )
    touched: set[str] = set()

    def run(conn: Connection) -> list[dict[str, Any]]:
        touched.clear()
        out: list[dict[str, Any] | None] = [None] * len(entries)
        for e in sorted(entries, key=lambda x: _ORDER[x.method]):
            out[e.index] = _apply(service, conn, e, principal, fresh, touched)
        return [o for o in out if o is not None]

    try:
        responses = service.in_write(run)
    except MedweaveError as exc:
        raise type(exc)(f"transaction failed, nothing was stored: {exc.message}", issues=exc.issues) from exc
    return fhir.bundle("transaction-response", entries=responses) | {"_patients": touched}


def _has_urn_ref(node: Any) -> bool:
    if isinstance(node, dict):
        return any(
            (k == "reference" and isinstance(v, str) and v.startswith("urn:uuid:")) or _has_urn_ref(v)
            for k, v in node.items()
        )
    if isinstance(node, list):
        return any(_has_urn_ref(v) for v in node)
    return False


def _apply(
    service: RecordService,
    conn: Connection,
    e: _Entry,
    principal: Principal,
    fresh: frozenset[str],
    touched: set[str],
) -> dict[str, Any]:
    base = service.base
    try:
        if e.method in ("POST", "PUT", "DELETE"):
            assert e.res_id is not None
            if e.method == "DELETE" and not deletable(conn, principal, e.res_type, e.res_id):
                return _response(base, None, "204 No Content")
            stored = service.write_in(
                conn,
                principal=principal,
                res_type=e.res_type,
                res_id=e.res_id,
                body=e.body,
                create_only=e.method == "POST",
                expected_version=e.if_match,
                put=e.method == "PUT",
                fresh_patients=fresh,
            )
            touched.update(p for p in (stored.patient_id,) if p)
            if e.method == "DELETE":
                return _response(base, None, "204 No Content")
            status = "201 Created" if stored.version_id == 1 else "200 OK"
            return _response(base, stored, status, stored.body)
        # GET: a read inside the transaction
        if e.res_id is None:
            raise _bad(e.index, "search inside a transaction is not supported", "request.url")
        access.view(principal, e.res_type, "read")
        try:
            stored = store.read_current(conn, master=service.master, res_type=e.res_type, res_id=e.res_id)
        except RecordGone as gone:
            access.require_readable(conn, principal, e.res_type, e.res_id, gone.patient_id)
            raise
        access.require_readable(conn, principal, e.res_type, e.res_id, stored.patient_id)
        touched.update(p for p in (stored.patient_id,) if p)
        return _response(base, stored, "200 OK", stored.body)
    except MedweaveError as exc:
        for issue in exc.issues:
            issue.expression = issue.expression or [f"Bundle.entry[{e.index}]"]
        raise


def batch(service: RecordService, data: object, *, principal: Principal) -> dict[str, Any]:
    with service.trail.event(principal, "batch"):
        raw_entries = _check_bundle(data, "batch")
        responses = [_batch_one(service, i, raw, principal) for i, raw in enumerate(raw_entries)]
        return fhir.bundle("batch-response", entries=responses)


def _batch_one(service: RecordService, index: int, raw: object, principal: Principal) -> dict[str, Any]:
    def fail(exc: MedweaveError) -> dict[str, Any]:
        return {"response": {"status": str(exc.status), "outcome": fhir.operation_outcome(exc.issues)}}

    try:
        e = _parse_entry(index, raw)
        if e.body is not None and _has_urn_ref(e.body):
            raise _bad(index, "urn:uuid references are not resolved in a batch", "resource")
        if e.method == "GET":
            if e.res_id is None:
                return {
                    "resource": service.search(principal=principal, res_type=e.res_type, params=e.query),
                    "response": {"status": "200 OK"},
                }
            s = service.read(principal=principal, res_type=e.res_type, res_id=e.res_id)
            return _response(service.base, s, "200 OK", s.body)
        if e.method == "POST":
            s = service.create(principal=principal, res_type=e.res_type, data=e.body)
            return _response(service.base, s, "201 Created", s.body)
        if e.method == "PUT":
            assert e.res_id is not None
            s, created = service.update(
                principal=principal, res_type=e.res_type, res_id=e.res_id, data=e.body, if_match=e.if_match
            )
            return _response(service.base, s, "201 Created" if created else "200 OK", s.body)
        assert e.res_id is not None
        service.delete(principal=principal, res_type=e.res_type, res_id=e.res_id)
        return _response(service.base, None, "204 No Content")
    except MedweaveError as exc:
        return fail(exc)


def process_bundle(service: RecordService, data: object, *, principal: Principal) -> dict[str, Any]:
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "transaction":
        return transaction(service, data, principal=principal)
    if kind == "batch":
        return batch(service, data, principal=principal)
    raise InvalidInput(
        "POST to the base needs a Bundle of type transaction or batch", expression=["Bundle.type"]
    )
