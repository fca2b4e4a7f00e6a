"""Planning an import: which input entries become which transactions, and how references are fixed.

:mod:`medweave.records.importer` reads the sources and runs what is planned here. A ``transaction``
Bundle is kept whole (:func:`plan_transaction`); the resources of any other Bundle, of NDJSON lines
and of single-resource files become transactions of ``chunk_size`` entries
(:func:`plan_resources`): a resource with an id is a ``PUT Type/id``, one without a ``POST``.
``urn:uuid`` fullUrls get their ids before chunking, so references across chunks resolve.

Other servers' exports (Synthea above all) hold more than we store. Entries of types we do not
store are dropped and counted; references to them are turned into logical references (``type``,
``identifier``, ``display``), as are conditional references (``Practitioner?identifier=s|v``)
that name nothing we hold. Directory resources (:data:`SHARED_TYPES`) are created once: a POST
with an id or an ``identifier=`` ``ifNoneExist`` becomes create-if-absent under a stable id, so
importing 100 patients who share a clinician stores that clinician once.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from medweave.errors import Gone, MedweaveError, NotFound
from medweave.records.fhir import SUPPORTED_TYPES
from medweave.records.service import RecordService
from medweave.security.principal import Principal

#: Imports are run by the operator (CLI, demo seed, jobs) and audited under this name.
OPERATOR = Principal.internal("import")

#: Non-patient resources that many source bundles repeat; stored once, under a stable id.
SHARED_TYPES = frozenset({"Practitioner", "PractitionerRole"})
DEFAULT_CHUNK = 200

_SUPPORTED = frozenset(SUPPORTED_TYPES)
_NAMESPACE = uuid.UUID("6f1c1f5e-3c1a-4b7e-9a55-2d0c5e1e7a10")  # stable ids for shared resources
_CONDITIONAL = re.compile(r"([A-Z][A-Za-z]+)\?(.+)")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def entry_type(entry: dict[str, Any]) -> str:
    """The resource type of a Bundle entry: from its request URL, else from its resource."""
    request = entry.get("request")
    if isinstance(request, dict) and isinstance(request.get("url"), str):
        head = request["url"].split("?")[0].strip("/").split("/")[0]
        if head:
            return head
    resource = entry.get("resource")
    return str(resource.get("resourceType")) if isinstance(resource, dict) else ""


# -- outcome ------------------------------------------------------------------------------------


@dataclass
class ImportSummary:
    """What an import did, in counts only (it is stored with the job, so no record content)."""

    files: int = 0
    transactions: int = 0
    imported: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    merged: int = 0  # shared resources found already stored (or repeated) and not written again
    references_neutralised: int = 0
    done: int = 0
    total: int = 0
    cancelled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "transactions": self.transactions,
            "imported": dict(sorted(self.imported.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "merged": self.merged,
            "references_neutralised": self.references_neutralised,
            "done": self.done,
            "total": self.total,
            "cancelled": self.cancelled,
        }


# -- references ---------------------------------------------------------------------------------


@dataclass
class _Dropped:
    """What a reference to a dropped entry keeps: its type, a name and an identifier."""

    res_type: str
    display: str | None
    identifier: dict[str, str] | None


def _first_identifier(resource: dict[str, Any]) -> dict[str, str] | None:
    ids = resource.get("identifier")
    for ident in ids if isinstance(ids, list) else []:
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            out = {"value": ident["value"]}
            if isinstance(ident.get("system"), str):
                out["system"] = ident["system"]
            return out
    return None


def _dropped(resource: object, res_type: str) -> _Dropped:
    if not isinstance(resource, dict):
        return _Dropped(res_type, None, None)
    name = resource.get("name")
    return _Dropped(res_type, name if isinstance(name, str) else None, _first_identifier(resource))


def stable_id(res_type: str, system: str | None, value: str) -> str:
    """The id a shared resource gets from its identifier: the same in every import."""
    return str(uuid.uuid5(_NAMESPACE, f"{res_type}|{system or ''}|{value}"))


def _identifier_query(query: str) -> tuple[str | None, str] | None:
    """``identifier=sys|val`` -> ``(sys, val)``; anything else -> None."""
    params = parse_qsl(query)
    if len(params) != 1 or params[0][0] != "identifier":
        return None
    system, bar, value = params[0][1].rpartition("|")
    return (system or None, value) if bar else (None, params[0][1])


class Resolver:
    """Knows which shared resources exist: those this import wrote, then the database."""

    def __init__(self, service: RecordService | None):
        self.service = service
        self.known: set[tuple[str, str]] = set()
        self.by_identifier: dict[tuple[str, str | None, str], str] = {}

    def exists(self, res_type: str, res_id: str) -> bool:
        if (res_type, res_id) in self.known:
            return True
        if self.service is None:
            return False
        try:
            self.service.read(principal=OPERATOR, res_type=res_type, res_id=res_id)
        except (NotFound, Gone):
            return False
        self.known.add((res_type, res_id))
        return True

    def find(self, res_type: str, system: str | None, value: str) -> str | None:
        """The id of a stored ``res_type`` with this identifier, if exactly one is known."""
        hit = self.by_identifier.get((res_type, system, value))
        if hit is not None:
            return hit
        candidate = stable_id(res_type, system, value)
        if self.exists(res_type, candidate):
            return candidate
        if self.service is None or res_type not in _SUPPORTED:
            return None
        token = f"{system}|{value}" if system else value
        try:
            found = self.service.search(
                principal=OPERATOR, res_type=res_type, params=[("identifier", token), ("_count", "2")]
            )
        except MedweaveError:
            return None
        entries = [e for e in found.get("entry", []) if e.get("search", {}).get("mode") == "match"]
        return entries[0]["resource"]["id"] if found.get("total") == 1 and entries else None

    def remember(self, res_type: str, res_id: str, resource: dict[str, Any]) -> None:
        self.known.add((res_type, res_id))
        ident = _first_identifier(resource)
        if ident is not None:
            self.by_identifier[(res_type, ident.get("system"), ident["value"])] = res_id


def fix_references(
    node: Any, *, mapping: dict[str, str], dropped: dict[str, _Dropped], resolver: Resolver
) -> int:
    """Rewrite references in place: known fullUrls to ``Type/id``; dropped and unresolvable
    conditional targets to logical references. Returns how many were neutralised."""
    count = 0
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            if ref in mapping:
                node["reference"] = mapping[ref]
            elif ref in dropped:
                _neutralise(node, dropped[ref])
                count += 1
            elif (m := _CONDITIONAL.fullmatch(ref)) is not None:
                res_type, query = m.group(1), m.group(2)
                ident = _identifier_query(query)
                found = resolver.find(res_type, *ident) if ident and res_type in _SUPPORTED else None
                if found is not None:
                    node["reference"] = f"{res_type}/{found}"
                else:
                    identifier = {"value": ident[1]} if ident else None
                    if ident and ident[0] and identifier is not None:
                        identifier["system"] = ident[0]
                    _neutralise(node, _Dropped(res_type, None, identifier))
                    count += 1
        for key, value in node.items():
            if key != "reference":
                count += fix_references(value, mapping=mapping, dropped=dropped, resolver=resolver)
    elif isinstance(node, list):
        for item in node:
            count += fix_references(item, mapping=mapping, dropped=dropped, resolver=resolver)
    return count


def _neutralise(ref: dict[str, Any], target: _Dropped) -> None:
    del ref["reference"]
    ref.setdefault("type", target.res_type)
    if target.identifier and "identifier" not in ref:
        ref["identifier"] = dict(target.identifier)
    if not ref.get("display"):
        ref["display"] = target.display or f"{target.res_type} (not imported)"


# -- planning transactions ----------------------------------------------------------------------


@dataclass
class Unit:
    """One transaction to run, with what it accounts for."""

    bundle: dict[str, Any] | None  # None: nothing left to store (all skipped or merged)
    consumed: int  # input entries it covers, for progress
    origins: list[str]  # where each entry came from ("line 12", "entry 3")
    imported: Counter[str] = field(default_factory=Counter)
    shared: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


def _tx(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _shared_id(entry: dict[str, Any], res_type: str) -> str | None:
    """The stable id for create-if-absent, or None to leave the POST as it is."""
    request = entry.get("request", {})
    resource = entry.get("resource")
    if_none = request.get("ifNoneExist") if isinstance(request, dict) else None
    if isinstance(if_none, str) and (ident := _identifier_query(if_none.partition("?")[2] or if_none)):
        return stable_id(res_type, *ident)
    if isinstance(resource, dict) and isinstance(resource.get("id"), str) and _ID.fullmatch(resource["id"]):
        return str(resource["id"])
    return None


def plan_transaction(bundle: dict[str, Any], resolver: Resolver, summary: ImportSummary) -> Unit:
    """Keep a transaction Bundle whole: drop what we do not store, create shared resources once."""
    raw = copy.deepcopy(bundle.get("entry", []))
    kept: list[dict[str, Any]] = []
    origins: list[str] = []
    mapping: dict[str, str] = {}
    dropped: dict[str, _Dropped] = {}
    unit = Unit(None, len(raw), origins)
    claimed: set[tuple[str, str]] = set()
    for index, entry in enumerate(raw):
        res_type = entry_type(entry)
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        if res_type not in _SUPPORTED:
            summary.skipped[res_type or "(unknown)"] += 1
            if full_url:
                dropped[full_url] = _dropped(entry.get("resource"), res_type)
            continue
        request = entry.get("request")
        method = str(request.get("method", "")).upper() if isinstance(request, dict) else ""
        if method == "POST" and res_type in SHARED_TYPES and (sid := _shared_id(entry, res_type)):
            if full_url:
                mapping[full_url] = f"{res_type}/{sid}"
            if (res_type, sid) in claimed or resolver.exists(res_type, sid):
                summary.merged += 1
                continue
            claimed.add((res_type, sid))
            entry["request"] = {"method": "PUT", "url": f"{res_type}/{sid}"}
            entry["resource"]["id"] = sid
            unit.shared.append((res_type, sid, entry["resource"]))
        if method in ("POST", "PUT"):
            unit.imported[res_type] += 1
        kept.append(entry)
        origins.append(f"entry {index}")
    for entry in kept:
        if isinstance(entry.get("resource"), dict):
            summary.references_neutralised += fix_references(
                entry["resource"], mapping=mapping, dropped=dropped, resolver=resolver
            )
    unit.bundle = _tx(kept) if kept else None
    return unit


def plan_resources(
    items: Iterable[tuple[str, Any]],
    resolver: Resolver,
    summary: ImportSummary,
    *,
    chunk_size: int = DEFAULT_CHUNK,
) -> Iterator[Unit]:
    """Resources (``(origin, resource)`` pairs, or Bundle entries) as transactions of PUT/POST.

    ``items`` must be the whole of one Bundle when its entries use ``urn:uuid`` fullUrls, since
    those are assigned ids here, before chunking.
    """
    prepared: list[tuple[str, str, dict[str, Any], str | None]] = []  # origin, method, resource, id
    mapping: dict[str, str] = {}
    dropped: dict[str, _Dropped] = {}
    pending_skips = 0
    for origin, item in items:
        resource, full_url = item, None
        if isinstance(item, dict) and "resourceType" not in item:  # a Bundle entry
            resource = item.get("resource")
            full_url = item.get("fullUrl") if isinstance(item.get("fullUrl"), str) else None
        res_type = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(resource, dict) or res_type not in _SUPPORTED:
            name = str(res_type) if res_type else "(no resource)"
            summary.skipped[name] += 1
            pending_skips += 1
            if full_url:
                dropped[full_url] = _dropped(resource, name)
            continue
        resource = copy.deepcopy(resource)
        res_id = resource.get("id") if isinstance(resource.get("id"), str) else None
        if res_id is None and full_url and full_url.startswith("urn:uuid:"):
            res_id = resource["id"] = str(uuid.uuid4())
        if res_id is not None and full_url:
            mapping[full_url] = f"{res_type}/{res_id}"
        prepared.append((origin, "PUT" if res_id is not None else "POST", resource, res_id))
    chunk: list[dict[str, Any]] = []
    unit = Unit(None, pending_skips, [])
    in_chunk: set[tuple[str, str]] = set()
    for origin, method, resource, res_id in prepared:
        key = (resource["resourceType"], res_id or "")
        if len(chunk) >= chunk_size or (res_id is not None and key in in_chunk):
            unit.bundle = _tx(chunk)
            yield unit
            chunk, unit, in_chunk = [], Unit(None, 0, []), set()
        summary.references_neutralised += fix_references(
            resource, mapping=mapping, dropped=dropped, resolver=resolver
        )
        url = f"{key[0]}/{res_id}" if method == "PUT" else key[0]
        chunk.append({"resource": resource, "request": {"method": method, "url": url}})
        unit.origins.append(origin)
        unit.consumed += 1
        unit.imported[key[0]] += 1
        if res_id is not None:
            in_chunk.add(key)
    unit.bundle = _tx(chunk) if chunk else None
    if chunk or unit.consumed:
        yield unit
