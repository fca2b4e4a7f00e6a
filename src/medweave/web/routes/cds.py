"""CDS Hooks 2.0 over HTTP: discovery, ``patient-view`` calls and card feedback.

Discovery is public (it lists services and prefetch templates, no patient data). A call and its
feedback need the CDS Hooks JWT of a registered client (``MEDWEAVE_CDS_CLIENTS_FILE``), whose
``aud`` is the service's own URL (https://cds-hooks.hl7.org/2.0/#trusting-cds-clients). Data the
client did not prefetch are read from our store only with a ``fhirAuthorization`` bearer token
issued by this server for this server's FHIR base, as that token's user: the record store checks
their access to the patient and audits the reads. Errors are OperationOutcomes with their status.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from medweave.diagnostics.serving import Services
from medweave.errors import InvalidInput, NotFound, Unauthenticated
from medweave.records.service import RecordService
from medweave.security import cds_jwt
from medweave.security.principal import Principal
from medweave.web.body import read_json

log = logging.getLogger("medweave.cds")
router = APIRouter(tags=["CDS Hooks"])
MAX_BODY = 4 * 1024 * 1024
MAX_DEPTH = 64


class StoreReader:
    """Reads a patient's data from the record store as ``principal`` (access checked, audited)."""

    def __init__(self, records: RecordService, principal: Principal) -> None:
        self.records = records
        self.principal = principal

    def patient(self, patient_id: str) -> dict[str, Any]:
        body = self.records.read(principal=self.principal, res_type="Patient", res_id=patient_id).body
        if body is None:
            raise NotFound(f"Patient/{patient_id} is deleted")
        return body

    def search(self, res_type: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        query = [*params, ("_count", "1000")]
        bundle = self.records.search(principal=self.principal, res_type=res_type, params=query)
        for entry in bundle.get("entry", []):
            if entry.get("search", {}).get("mode", "match") == "match":
                out.append(entry["resource"])
        return out


def _services(request: Request) -> Services:
    services: Services = request.app.state.cds
    return services


def _caller(request: Request, service_id: str, suffix: str = "") -> cds_jwt.CdsCaller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("a CDS Hooks JWT is required (Authorization: Bearer ...)")
    settings = request.app.state.settings
    audience = f"{settings.base_url.rstrip('/')}/cds-services/{service_id}{suffix}"
    try:
        return cds_jwt.verify(
            token.strip(),
            audience=audience,
            clients=request.app.state.cds_clients,
            replay=request.app.state.cds_replay,
        )
    except cds_jwt.InvalidCdsToken as exc:
        # The CDS Hooks guidance: do not tell the caller why a JWT failed; the operator's log says.
        log.warning("CDS Hooks JWT rejected for %r: %s", service_id[:80], exc.reason)
        raise Unauthenticated("the CDS Hooks JWT was not accepted") from None


def _reader(request: Request, body: dict[str, Any]) -> StoreReader | None:
    auth = body.get("fhirAuthorization")
    if auth is None:
        return None
    server = body.get("fhirServer")
    if not isinstance(auth, dict) or not isinstance(server, str):
        raise InvalidInput("fhirAuthorization needs an object and a fhirServer (CDS Hooks cds-r-1)")
    settings = request.app.state.settings
    if server.rstrip("/") != settings.fhir_base.rstrip("/"):
        return None  # a token for another FHIR server is not ours to use
    token = auth.get("access_token")
    if not isinstance(token, str) or not token:
        raise InvalidInput("fhirAuthorization.access_token is missing")
    address = request.client.host if request.client else None
    principal = request.app.state.authenticator.from_bearer(token, address=address)
    return StoreReader(request.app.state.records, principal)


@router.get("/cds-services")
async def discovery(request: Request) -> JSONResponse:
    """The CDS services this deployment offers: one per approved model that a chart can feed."""
    return JSONResponse(await run_in_threadpool(_services(request).discovery))


@router.post("/cds-services/{service_id}")
async def call(service_id: str, request: Request) -> JSONResponse:
    """A ``patient-view`` call: the model's card for the patient in context."""
    caller = _caller(request, service_id)
    body = await read_json(request, max_bytes=MAX_BODY, max_depth=MAX_DEPTH)
    if not isinstance(body, dict):
        raise InvalidInput("a CDS request is a JSON object")
    if body.get("hook") != "patient-view":
        raise InvalidInput("this service answers the patient-view hook")
    context = body.get("context")
    patient_id = context.get("patientId") if isinstance(context, dict) else None
    if not isinstance(patient_id, str) or not patient_id:
        raise InvalidInput("context.patientId is required")
    prefetch = body.get("prefetch")
    if prefetch is not None and not isinstance(prefetch, dict):
        raise InvalidInput("prefetch must be an object")
    reader = _reader(request, body)
    result = await run_in_threadpool(
        lambda: _services(request).call(service_id, patient_id=patient_id, prefetch=prefetch, reader=reader)
    )
    del caller
    return JSONResponse(result)


@router.post("/cds-services/{service_id}/feedback")
async def feedback(service_id: str, request: Request) -> JSONResponse:
    """CDS Hooks feedback: whether each card was accepted or overridden (and why)."""
    caller = _caller(request, service_id, "/feedback")
    body = await read_json(request, max_bytes=MAX_BODY, max_depth=MAX_DEPTH)
    if not isinstance(body, dict):
        raise InvalidInput("feedback is a JSON object")
    who = f"{caller.issuer} {caller.subject}".strip()
    stored = await run_in_threadpool(lambda: _services(request).feedback(service_id, body, caller=who))
    return JSONResponse({"stored": stored})
