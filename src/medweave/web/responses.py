"""FHIR JSON responses (``application/fhir+json``), serialised with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

FHIR_JSON = "application/fhir+json"


class FhirResponse(Response):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        return orjson.dumps(content)
