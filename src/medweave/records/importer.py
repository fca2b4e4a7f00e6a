"""Bulk import of FHIR JSON: Bundles, NDJSON (Bulk Data), single resources, or a folder of them.

Everything goes through :func:`medweave.records.transactions.transaction`, the path the
API's ``POST /fhir`` takes, so an import validates and stores exactly as the API does, and only
whole transactions are ever committed:

- a ``transaction`` Bundle is kept whole (it must stay atomic);
- the resources of any other Bundle (``collection``, ``searchset``, ``batch``...), of NDJSON
  lines and of single-resource files become transactions of ``chunk_size`` entries: a resource
  with an id is a ``PUT Type/id``, one without a ``POST``. ``urn:uuid`` fullUrls get their ids
  before chunking, so references across chunks resolve.

This module finds, reads and checks the sources and runs the import; which entries become which
transactions, and how references to what we do not store are rewritten, is planned in
:mod:`medweave.records.import_plan` (its names are re-exported here).

The import stops at the first transaction that fails; the transactions before it stay committed
and the error says how many. Files are read and parsed before anything is written, so a file
that is not JSON stores nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from medweave.errors import InvalidInput, MedweaveError
from medweave.jobs.runner import JobCancelled, JobContext, JobFn
from medweave.records.import_plan import (
    DEFAULT_CHUNK,
    OPERATOR,
    SHARED_TYPES,
    ImportSummary,
    Resolver,
    Unit,
    entry_type,
    fix_references,
    plan_resources,
    plan_transaction,
    stable_id,
)
from medweave.records.service import RecordService
from medweave.records.transactions import transaction

__all__ = [
    "DEFAULT_CHUNK",
    "JSON_SUFFIXES",
    "NDJSON_SUFFIXES",
    "OPERATOR",
    "SHARED_TYPES",
    "ImportSummary",
    "Progress",
    "Resolver",
    "Source",
    "Unit",
    "find_files",
    "fix_references",
    "import_job",
    "import_path",
    "plan_resources",
    "plan_transaction",
    "read_json",
    "read_ndjson",
    "scan",
    "stable_id",
    "units_for",
]

#: File name endings read as NDJSON; every other file is read as one JSON document.
NDJSON_SUFFIXES = (".ndjson", ".jsonl")
JSON_SUFFIXES = (".json",)

_ENTRY_INDEX = re.compile(r"entry\[?\s?(\d+)")

Progress = Callable[[int, int], None]


# -- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One input file, checked and counted."""

    path: Path
    kind: str  # "bundle" | "ndjson" | "resource"
    count: int  # entries or resources, for progress
    bundle_type: str | None = None
    has_patient: bool = False


def find_files(path: Path) -> list[Path]:
    """The file itself, or every ``*.json``/``*.ndjson``/``*.jsonl`` under a folder, sorted."""
    if path.is_dir():
        suffixes = NDJSON_SUFFIXES + JSON_SUFFIXES
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(suffixes))
        if not found:
            raise InvalidInput(f"{path}: no .json, .ndjson or .jsonl files in this folder")
        return found
    if not path.exists():
        raise InvalidInput(f"{path}: no such file or folder")
    return [path]


def _loads(raw: bytes, where: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{where}: not valid JSON ({exc.args[0].split(':')[0]})") from None


def read_json(path: Path) -> Any:
    return _loads(path.read_bytes().removeprefix(b"\xef\xbb\xbf"), str(path))


def read_ndjson(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, resource)`` for each non-blank line."""
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.strip().removeprefix(b"\xef\xbb\xbf")
            if not line:
                continue
            item = _loads(line, f"{path}: line {number}")
            if not isinstance(item, dict) or not isinstance(item.get("resourceType"), str):
                raise InvalidInput(f"{path}: line {number}: not a FHIR resource (no resourceType)")
            yield number, item


def _is_ndjson(path: Path) -> bool:
    return path.name.lower().endswith(NDJSON_SUFFIXES)


def scan(path: Path) -> list[Source]:
    """Read and check every input before anything is written; order them for import.

    Bundles without a Patient (directories of practitioners, organisations) go first, so that
    the patient bundles after them can refer to what they define.
    """
    sources: list[Source] = []
    for file in find_files(path):
        if _is_ndjson(file):
            sources.append(Source(file, "ndjson", sum(1 for _ in read_ndjson(file))))
            continue
        data = read_json(file)
        if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
            raise InvalidInput(f"{file}: not a FHIR resource or Bundle (no resourceType)")
        if data["resourceType"] != "Bundle":
            sources.append(Source(file, "resource", 1, has_patient=data["resourceType"] == "Patient"))
            continue
        entries = data.get("entry", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise InvalidInput(f"{file}: Bundle.entry must be a list of objects")
        types = {entry_type(e) for e in entries}
        sources.append(Source(file, "bundle", len(entries), str(data.get("type")), "Patient" in types))
    return sorted(sources, key=lambda s: (s.has_patient, str(s.path)))


def units_for(
    source: Source, resolver: Resolver, summary: ImportSummary, *, chunk_size: int
) -> Iterator[Unit]:
    """The transactions one input file becomes."""
    if source.kind == "ndjson":
        lines = ((f"line {n}", res) for n, res in read_ndjson(source.path))
        yield from plan_resources(lines, resolver, summary, chunk_size=chunk_size)
        return
    data = read_json(source.path)
    if source.kind == "resource":
        yield from plan_resources([("the resource", data)], resolver, summary, chunk_size=chunk_size)
    elif data.get("type") == "transaction":
        yield plan_transaction(data, resolver, summary)
    else:
        entries = ((f"entry {i}", e) for i, e in enumerate(data.get("entry", [])))
        yield from plan_resources(entries, resolver, summary, chunk_size=chunk_size)


# -- running ------------------------------------------------------------------------------------


def import_path(
    service: RecordService,
    path: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    report: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> ImportSummary:
    """Import a file or folder; see the module docstring. Stops early (``cancelled``) between
    transactions when ``cancelled()`` turns true."""
    sources = scan(path)
    summary = ImportSummary(total=sum(s.count for s in sources))
    resolver = Resolver(service)
    if report:
        report(0, summary.total)
    for source in sources:
        summary.files += 1
        for unit in units_for(source, resolver, summary, chunk_size=chunk_size):
            if cancelled is not None and cancelled():
                summary.cancelled = True
                return summary
            if unit.bundle is not None:
                _run(service, unit, source, summary)
            for res_type, res_id, resource in unit.shared:
                resolver.remember(res_type, res_id, resource)
            summary.imported.update(unit.imported)
            summary.done += unit.consumed
            if report:
                report(summary.done, summary.total)
    return summary


def _run(service: RecordService, unit: Unit, source: Source, summary: ImportSummary) -> None:
    try:
        transaction(service, unit.bundle, principal=OPERATOR)
    except MedweaveError as exc:
        where = _origin(exc, unit)
        n = summary.transactions
        before = f"; {n} earlier transaction(s) stay committed" if n else ""
        message = f"{source.path}{' ' + where if where else ''}: {exc.message}{before}"
        raise type(exc)(message, issues=exc.issues) from None
    summary.transactions += 1


def _origin(exc: MedweaveError, unit: Unit) -> str:
    """Where in the input file the failing entry came from (``line 12``), if we can tell."""
    texts = [e for issue in exc.issues for e in issue.expression] + [exc.message]
    for text in texts:
        m = _ENTRY_INDEX.search(text)
        if m and int(m.group(1)) < len(unit.origins):
            return f"({unit.origins[int(m.group(1))]})"
    return ""


def import_job(service: RecordService, path: Path, *, chunk_size: int = DEFAULT_CHUNK) -> JobFn:
    """The import as a job: progress and cancellation through the job's context."""

    def run(ctx: JobContext) -> dict[str, Any]:
        summary = import_path(
            service, path, chunk_size=chunk_size, report=ctx.report, cancelled=ctx.cancelled
        )
        if summary.cancelled:
            raise JobCancelled(ctx.job_id, result=summary.to_dict())
        return summary.to_dict()

    return run
