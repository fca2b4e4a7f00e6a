"""FHIR R4 REST interactions under ``/fhir`` (http://hl7.org/fhir/R4/http.html).

Handlers only translate HTTP to record-service calls: headers (ETag, If-Match, Prefer,
Location), status codes and bodies. All rules live in ``medweave.records``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from medweave.errors import InvalidInput, Issue, NotFound
from medweave.ledger.receipt import MEDIA_EXTENSION
from medweave.records import fhir as shapes
from medweave.records.capability import capability_statement
from medweave.records.service import RecordService
from medweave.records.store import Stored, instant
from medweave.records.transactions import process_bundle
from medweave.telehealth import schedule
from medweave.telehealth.availability import FIRST_YEAR, LAST_YEAR
from medweave.telehealth.calendar_file import appointment_ics
from medweave.web.auth import authenticate
from medweave.web.body import read_form, read_json
from medweave.web.responses import FhirResponse

T = TypeVar("T")
router = APIRouter(prefix="/fhir", tags=["FHIR"])

_STARTED = instant(datetime.now(UTC))
# The OpenAPI description documents what the handlers read by hand (FHIR bodies, paging
# parameters); the handlers still take plain strings, so an unknown type answers 404, not 422.
_RESOURCE_SCHEMA = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {"resourceType": {"type": "string", "enum": list(shapes.SUPPORTED_TYPES)}},
    "additionalProperties": True,
}
_JSON_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/fhir+json": {"schema": _RESOURCE_SCHEMA}}}
}
_BUNDLE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/fhir+json": {
                "schema": {
                    "type": "object",
                    "required": ["resourceType", "type"],
                    "properties": {
                        "resourceType": {"const": "Bundle"},
                        "type": {"enum": ["transaction", "batch"]},
                        "entry": {"type": "array", "items": {"type": "object"}},
                    },
                }
            }
        },
    }
}
_FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        },
    }
}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_PAGING = [
    _query("_count", {"type": "integer", "minimum": 0}),
    _query("_offset", {"type": "integer", "minimum": 0}),
]
_SEARCH_QUERY: dict[str, Any] = {"parameters": _PAGING}
RECEIPT_TYPE = "text/plain; charset=utf-8"  # C2SP defines no media type for tlog-proof
_HISTORY_QUERY: dict[str, Any] = {
    "parameters": [*_PAGING, _query("_since", {"type": "string", "format": "date-time"})]
}
ResType = Annotated[str, Path(json_schema_extra={"enum": list(shapes.SUPPORTED_TYPES)})]
ResId = Annotated[str, Path(json_schema_extra={"pattern": "^[A-Za-z0-9\\-.]{1,64}$"})]


async def _call(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a record service call off the event loop; from here on the service writes the audit."""
    request.state.audited = True
    return await run_in_threadpool(fn, *args, **kwargs)


def _records(request: Request) -> RecordService:
    records: RecordService = request.app.state.records
    return records


def _type(res_type: str) -> str:
    if res_type not in shapes.SUPPORTED_TYPES:
        raise NotFound(f"resource type {res_type!r} is not supported by this server")
    return res_type


def _id(res_id: str) -> str:
    if not shapes.valid_id(res_id):
        raise InvalidInput(f"{res_id!r} is not a valid FHIR id", expression=["id"])
    return res_id


async def _body(request: Request) -> Any:
    settings = request.app.state.settings
    return await read_json(request, max_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth)


def _resource_response(
    request: Request, stored: Stored, status: int = 200, *, location: bool = False
) -> Response:
    headers = {"ETag": shapes.etag(stored.version_id), "Last-Modified": _http_date(stored.last_updated)}
    if location:
        headers["Location"] = (
            f"{_records(request).base}/{stored.res_type}/{stored.res_id}/_history/{stored.version_id}"
        )
    prefer = request.headers.get("prefer", "")
    if "return=minimal" in prefer:
        return Response(status_code=status, headers=headers)
    if "return=OperationOutcome" in prefer:
        outcome = shapes.operation_outcome(
            [Issue("information", "informational", f"{stored.res_type}/{stored.res_id} stored")]
        )
        return FhirResponse(outcome, status_code=status, headers=headers)
    return FhirResponse(stored.body, status_code=status, headers=headers)


def _http_date(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def _strict(request: Request) -> bool:
    return "handling=strict" in request.headers.get("prefer", "")


@router.get("/metadata", summary="CapabilityStatement")
async def metadata(request: Request) -> Response:
    return FhirResponse(capability_statement(base=_records(request).base, software_date=_STARTED))


@router.post("", summary="transaction or batch Bundle", openapi_extra=_BUNDLE_BODY)
async def bundle(request: Request) -> Response:
    principal = authenticate(request)
    data = await _body(request)
    result = await _call(request, process_bundle, _records(request), data, principal=principal)
    return FhirResponse(result)


@router.get("/_history", summary="history of all resources", openapi_extra=_HISTORY_QUERY)
async def history_system(request: Request) -> Response:
    principal = authenticate(request)
    params = list(request.query_params.multi_items())
    result = await _call(
        request, _records(request).history, principal=principal, res_type=None, res_id=None, params=params
    )
    return FhirResponse(result)


@router.get("/{res_type}", summary="search", openapi_extra=_SEARCH_QUERY)
async def search(request: Request, res_type: ResType) -> Response:
    principal = authenticate(request)
    params = list(request.query_params.multi_items())
    result = await _call(
        request,
        _records(request).search,
        principal=principal,
        res_type=_type(res_type),
        params=params,
        strict=_strict(request),
    )
    return FhirResponse(result)


@router.post("/{res_type}/_search", summary="search by form post", openapi_extra=_FORM_BODY)
async def search_post(request: Request, res_type: ResType) -> Response:
    principal = authenticate(request)
    form = await read_form(request, max_bytes=request.app.state.settings.max_body_bytes)
    params = list(request.query_params.multi_items()) + form
    result = await _call(
        request,
        _records(request).search,
        principal=principal,
        res_type=_type(res_type),
        params=params,
        strict=_strict(request),
    )
    return FhirResponse(result)


@router.post("/{res_type}", summary="create", openapi_extra=_JSON_BODY)
async def create(request: Request, res_type: ResType) -> Response:
    principal = authenticate(request)
    _type(res_type)
    data = await _body(request)
    stored = await _call(request, _records(request).create, principal=principal, res_type=res_type, data=data)
    return _resource_response(request, stored, 201, location=True)


@router.get("/{res_type}/_history", summary="type history", openapi_extra=_HISTORY_QUERY)
async def history_type(request: Request, res_type: ResType) -> Response:
    principal = authenticate(request)
    params = list(request.query_params.multi_items())
    result = await _call(
        request,
        _records(request).history,
        principal=principal,
        res_type=_type(res_type),
        res_id=None,
        params=params,
    )
    return FhirResponse(result)


@router.get("/Patient/{res_id}/$everything", summary="Patient $everything")
async def everything(request: Request, res_id: ResId) -> Response:
    principal = authenticate(request)
    result = await _call(request, _records(request).everything, principal=principal, patient_id=_id(res_id))
    return FhirResponse(result)


@router.get("/{res_type}/{res_id}", summary="read")
async def read(request: Request, res_type: ResType, res_id: ResId) -> Response:
    principal = authenticate(request)
    stored = await _call(
        request, _records(request).read, principal=principal, res_type=_type(res_type), res_id=_id(res_id)
    )
    return _resource_response(request, stored)


@router.put("/{res_type}/{res_id}", summary="update (or create with a client id)", openapi_extra=_JSON_BODY)
async def update(request: Request, res_type: ResType, res_id: ResId) -> Response:
    principal = authenticate(request)
    _type(res_type)
    _id(res_id)
    if_match = None
    if "if-match" in request.headers:
        if_match = shapes.parse_etag(request.headers["if-match"])
        if if_match is None:
            raise InvalidInput('If-Match must be an ETag such as W/"3"')
    data = await _body(request)
    stored, created = await _call(
        request,
        _records(request).update,
        principal=principal,
        res_type=res_type,
        res_id=res_id,
        data=data,
        if_match=if_match,
    )
    return _resource_response(request, stored, 201 if created else 200, location=created)


@router.delete("/{res_type}/{res_id}", summary="delete")
async def delete(request: Request, res_type: ResType, res_id: ResId) -> Response:
    principal = authenticate(request)
    stored = await _call(
        request, _records(request).delete, principal=principal, res_type=_type(res_type), res_id=_id(res_id)
    )
    headers = {"ETag": shapes.etag(stored.version_id)} if stored else {}
    return Response(status_code=204, headers=headers)


@router.get("/{res_type}/{res_id}/_history", summary="instance history", openapi_extra=_HISTORY_QUERY)
async def history_instance(request: Request, res_type: ResType, res_id: ResId) -> Response:
    principal = authenticate(request)
    params = list(request.query_params.multi_items())
    result = await _call(
        request,
        _records(request).history,
        principal=principal,
        res_type=_type(res_type),
        res_id=_id(res_id),
        params=params,
    )
    return FhirResponse(result)


async def _vread(request: Request, res_type: str, res_id: str, version_id: str) -> Stored:
    principal = authenticate(request)
    # str.isdigit() also accepts "¹" and other Unicode digits that int() refuses (found by schemathesis).
    if not (version_id.isascii() and version_id.isdigit()) or len(version_id) > 9:
        raise NotFound(f"version {version_id!r} is not known")
    return await _call(
        request,
        _records(request).vread,
        principal=principal,
        res_type=_type(res_type),
        res_id=_id(res_id),
        version_id=int(version_id),
    )


@router.get("/{res_type}/{res_id}/_history/{version_id}", summary="vread")
async def vread(request: Request, res_type: ResType, res_id: ResId, version_id: str) -> Response:
    return _resource_response(request, await _vread(request, res_type, res_id, version_id))


@router.get("/{res_type}/{res_id}/_history/{version_id}/$receipt", summary="ledger receipt of a version")
async def version_receipt(request: Request, res_type: ResType, res_id: ResId, version_id: str) -> Response:
    """A C2SP tlog-proof receipt that this version is in the tamper-evident ledger.

    Whoever may read the version may have its receipt (the read is checked and audited as a
    vread); ``medweave ledger verify-receipt`` checks it offline. 404 until it is sequenced."""
    stored = await _vread(request, res_type, res_id, version_id)
    ref = f"{stored.res_type}/{stored.res_id}/_history/{stored.version_id}"
    text = await run_in_threadpool(lambda: request.app.state.ledger.receipt(kind="version", ref=ref))
    name = f"{stored.res_type}-{stored.res_id}-{stored.version_id}{MEDIA_EXTENSION}"
    return Response(
        text, media_type=RECEIPT_TYPE, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get("/Appointment/{res_id}/$ics", summary="an appointment as an iCalendar file")
async def appointment_calendar(request: Request, res_id: ResId) -> Response:
    """The appointment as an RFC 5545 ``.ics`` file, for whoever may read it (the read is checked
    and audited as a read)."""
    principal = authenticate(request)
    stored = await _call(
        request, _records(request).read, principal=principal, res_type="Appointment", res_id=_id(res_id)
    )
    body = stored.body or {}
    try:
        start = datetime.fromisoformat(str(body["start"]))
        end = datetime.fromisoformat(str(body["end"]))
    except (KeyError, ValueError):
        raise InvalidInput("this appointment has no start and end to put in a calendar") from None
    kind = next((s.get("text") for s in body.get("serviceType", []) if s.get("text")), "appointment")
    host = urlsplit(str(request.app.state.settings.base_url)).netloc or "medweave"
    text = appointment_ics(
        uid=f"{stored.res_id}@{host}",
        start=start,
        end=end,
        summary=str(kind).capitalize(),
        cancelled=body.get("status") == "cancelled",
        sequence=stored.version_id - 1,
    )
    headers = {"Content-Disposition": f'attachment; filename="appointment-{stored.res_id}.ics"'}
    return Response(text, media_type="text/calendar; charset=utf-8", headers=headers)


MAX_SLOT_DAYS = 90
_SLOTS_QUERY: dict[str, Any] = {
    "parameters": [
        {"name": "start", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "end", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "visit-type", "in": "query", "required": False, "schema": {"type": "string"}},
    ]
}


def _instant_param(request: Request, name: str, default: datetime) -> datetime:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        found = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        found = None
    if found is None or found.tzinfo is None:
        raise InvalidInput(f"{name} is an instant with a time zone (2027-01-04T09:00:00Z)", expression=[name])
    if not FIRST_YEAR <= found.year <= LAST_YEAR:
        raise InvalidInput(f"{name} falls between {FIRST_YEAR} and {LAST_YEAR}", expression=[name])
    return found


@router.get(
    "/Schedule/{res_id}/$slots", summary="free slots of a published schedule", openapi_extra=_SLOTS_QUERY
)
async def free_slots(request: Request, res_id: ResId) -> Response:
    """The free ``Slot`` resources of a practitioner's published ``Schedule`` in [start, end)
    (default: the next 14 days, at most 90), for one visit type (``visit-type``, default the first
    published). Slots are made from the availability rules and the live bookings, not stored: a
    searchset Bundle of ``Slot`` resources with status ``free``. The Schedule read is checked and
    audited as a read."""
    principal = authenticate(request)
    records = _records(request)
    stored = await _call(request, records.read, principal=principal, res_type="Schedule", res_id=_id(res_id))
    actors = [a.get("reference", "") for a in (stored.body or {}).get("actor", []) if isinstance(a, dict)]
    practitioner = next((r.split("/", 1)[1] for r in actors if r.startswith("Practitioner/")), None)
    published = None
    if practitioner is not None:
        try:
            published = await run_in_threadpool(schedule.load, records.engine, practitioner)
        except NotFound:
            published = None
    if published is None or published.schedule_id != stored.res_id:
        raise NotFound(f"Schedule/{stored.res_id} publishes no bookable hours")
    code = request.query_params.get("visit-type") or published.visit_types[0].code
    visit = published.visit(code)
    now = datetime.now(UTC)
    start = _instant_param(request, "start", now)
    end = _instant_param(request, "end", start + timedelta(days=14))
    if not start < end or end - start > timedelta(days=MAX_SLOT_DAYS):
        raise InvalidInput(f"end comes after start, at most {MAX_SLOT_DAYS} days later", expression=["end"])
    free = await run_in_threadpool(
        schedule.free_slots, records.engine, published, visit, start=start, end=end
    )
    slots = schedule.slot_resources(published, free)
    for slot in slots:
        slot["appointmentType"] = {"coding": [{"system": "urn:medweave:visit-type", "code": visit.code}]}
        slot["serviceType"] = [{"text": "video visit" if visit.modality == "video" else "in-person visit"}]
    entries = [{"resource": slot, "search": {"mode": "match"}} for slot in slots]
    return FhirResponse(shapes.bundle("searchset", total=len(entries), entries=entries))
