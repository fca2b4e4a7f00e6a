"""Reading a FHIR JSON request body safely: size, media type, syntax and nesting depth."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from medweave.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")


async def read_json(request: Request, *, max_bytes: int, max_depth: int) -> Any:
    media = request.headers.get("content-type", "application/fhir+json").split(";")[0].strip().lower()
    if media not in _JSON_TYPES:
        raise UnsupportedMediaType(f"content type {media!r} is not supported; send application/fhir+json")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidInput("the request needs a JSON body")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body is not valid JSON: {exc.msg} at position {exc.pos}") from exc
    if json_depth(data) > max_depth:
        raise InvalidInput(f"JSON is nested deeper than {max_depth} levels")
    return data


def json_depth(value: Any) -> int:
    """Nesting depth, computed without recursion so that hostile input cannot blow the stack."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in node)
    return deepest
