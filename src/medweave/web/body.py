"""Reading request bodies safely: size, media type, syntax, nesting depth and forbidden characters."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request

from medweave.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
_FORM_TYPE = "application/x-www-form-urlencoded"
# R4 datatypes.html#string: no character below U+0020 except tab, CR and LF. PostgreSQL cannot
# store U+0000 in text at all, so letting one through would end as a 500.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _media(request: Request, default: str) -> str:
    return request.headers.get("content-type", default).split(";")[0].strip().lower()


async def _read_limited(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, *, max_bytes: int, max_depth: int) -> Any:
    media = _media(request, "application/fhir+json")
    if media not in _JSON_TYPES:
        raise UnsupportedMediaType(f"content type {media!r} is not supported; send application/fhir+json")
    raw = await _read_limited(request, max_bytes)
    if not raw.strip():
        raise InvalidInput("the request needs a JSON body")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body is not valid JSON: {exc.msg} at position {exc.pos}") from exc
    depth, bad_string = inspect_json(data)
    if depth > max_depth:
        raise InvalidInput(f"JSON is nested deeper than {max_depth} levels")
    if bad_string:
        raise InvalidInput("a string holds a control character (below U+0020 other than tab, CR, LF)")
    return data


async def read_form(request: Request, *, max_bytes: int) -> list[tuple[str, str]]:
    """An ``application/x-www-form-urlencoded`` body (search by POST, R4 http.html#search)."""
    media = _media(request, _FORM_TYPE)
    if media != _FORM_TYPE:
        raise UnsupportedMediaType(f"content type {media!r} is not supported; send {_FORM_TYPE}")
    raw = await _read_limited(request, max_bytes)
    try:
        text = raw.decode("ascii")
        return parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidInput("form body must be URL-encoded UTF-8") from exc


def inspect_json(value: Any) -> tuple[int, bool]:
    """Nesting depth, and whether any key or string holds a forbidden control character.

    Walks without recursion so that hostile input cannot blow the stack.
    """
    deepest = 0
    bad = False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, depth)
            bad = bad or any(_CONTROL.search(k) for k in node)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, str) and not bad:
            bad = _CONTROL.search(node) is not None
    return deepest, bad
