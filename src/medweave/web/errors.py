"""The one place that turns exceptions into HTTP answers: always an OperationOutcome, never a trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from medweave.errors import Issue, MedweaveError
from medweave.records.fhir import operation_outcome
from medweave.web.responses import FhirResponse

log = logging.getLogger("medweave.web")

_HTTP_CODES = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}


def install(app: FastAPI) -> None:
    @app.exception_handler(MedweaveError)
    async def _domain(_request: Request, exc: MedweaveError) -> Response:
        if exc.status >= 500:
            log.error("server error: %s", type(exc).__name__)
        headers = {"WWW-Authenticate": 'Bearer realm="medweave"'} if exc.status == 401 else None
        return FhirResponse(operation_outcome(exc.issues), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        issues = [
            Issue(
                "error",
                "invalid",
                str(err.get("msg", "invalid")),
                [".".join(str(p) for p in err.get("loc", ()))],
            )
            for err in exc.errors()
        ]
        return FhirResponse(operation_outcome(issues), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "processing")
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        return FhirResponse(
            operation_outcome([Issue("error", code, detail)]),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        # Log the class only: messages of unexpected errors may carry record content (PHI).
        log.exception("unexpected %s", type(exc).__name__, exc_info=False)
        return FhirResponse(
            operation_outcome([Issue("fatal", "exception", "internal error; the request was not completed")]),
            status_code=500,
        )
