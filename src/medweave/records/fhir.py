"""Shapes of FHIR responses: Bundles for search and history, OperationOutcomes, links.

Pure functions; no I/O.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from medweave.errors import Issue
from medweave.records.store import Stored, instant
from medweave.records.types import SUPPORTED_TYPES as SUPPORTED_TYPES

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def valid_id(value: str) -> bool:
    """R4 datatypes.html#id; ``.`` and ``..`` are refused too, as they read as path segments."""
    return _ID.fullmatch(value) is not None and value.strip(".") != ""


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


def etag(version_id: int) -> str:
    return f'W/"{version_id}"'


def parse_etag(value: str) -> int | None:
    """``W/"3"`` or ``"3"`` or ``3`` -> 3; anything else -> None (the caller answers 400)."""
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def full_url(base: str, res_type: str, res_id: str) -> str:
    return f"{base}/{res_type}/{res_id}"


def link(base: str, path: str, params: Sequence[tuple[str, str]]) -> str:
    query = urlencode(list(params))
    return f"{base}/{path}" + (f"?{query}" if query else "")


def bundle(
    kind: str,
    *,
    total: int | None = None,
    links: Sequence[tuple[str, str]] = (),
    entries: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": instant(datetime.now(UTC))},
        "type": kind,
    }
    if total is not None:
        out["total"] = total
    if links:
        out["link"] = [{"relation": rel, "url": url} for rel, url in links]
    if entries:
        out["entry"] = list(entries)
    return out


def search_entry(base: str, item: Stored, mode: str) -> dict[str, Any]:
    return {"fullUrl": full_url(base, *item.key), "resource": item.body, "search": {"mode": mode}}


def outcome_entry(issues: Sequence[Issue]) -> dict[str, Any]:
    return {"resource": operation_outcome(issues), "search": {"mode": "outcome"}}


def history_entry(base: str, item: Stored) -> dict[str, Any]:
    url = f"{item.res_type}/{item.res_id}"
    entry: dict[str, Any] = {"fullUrl": full_url(base, *item.key)}
    if item.body is not None:
        entry["resource"] = item.body
    entry["request"] = {"method": item.method, "url": url if item.method != "POST" else item.res_type}
    status = {"POST": "201 Created", "PUT": "200 OK", "DELETE": "204 No Content"}.get(item.method, "200 OK")
    entry["response"] = {
        "status": status,
        "etag": etag(item.version_id),
        "lastModified": instant(item.last_updated),
    }
    return entry
