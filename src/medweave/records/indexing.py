"""Turn the current version of a resource into search-index rows. Pure: no I/O.

Each search parameter's FHIRPath (precompiled, see ``definitions``) is evaluated and every value
becomes one or more :class:`IndexEntry`, following the value rules of
http://hl7.org/fhir/R4/search.html:

- string (#string): HumanName family/given/prefix/suffix/text, Address line/city/district/state/
  postalCode/country/text, and plain strings. ``str_norm`` is casefolded with accents removed
  (NFKD, combining marks dropped); ``str_exact`` keeps the text as written. Both are cut to
  :data:`MAX_STR` characters so they fit a B-tree index on PostgreSQL.
- token (#token): Coding and CodeableConcept codings (system, code; the display and
  CodeableConcept.text go to ``str_exact``/``str_norm`` for ``:text``), Identifier (system, value),
  ContactPoint (no system, value), and code/boolean/id/string/uri primitives (code only).
- date (#date): date, dateTime, instant, Period and Timing as a half-open range ``[lo, hi)`` in
  epoch microseconds UTC at the precision written ("2013" is all of 2013); values without a
  timezone are taken as UTC; open Period ends are :data:`MIN_TS` / :data:`MAX_TS`.
- reference (#reference): ``Type/id`` (relative, or an absolute http(s) URL ending in a type we
  store, ``/_history/n`` stripped) to ``ref_type``/``ref_id``; other absolute URLs and canonicals go
  to ``str_exact``; contained (``#x``) references are skipped. A ``.where(resolve() is X)`` filter
  keeps only references of type X.
- quantity (#quantity): ``num`` = value, ``system``, ``code`` = unit code, ``str_exact`` = unit.
  Range and SampledData are not indexed.
- number (#number): ``num``. uri (#uri): ``str_exact``.

Nothing here raises on odd but valid input: a value that cannot be indexed is skipped.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from medweave.records.definitions import SearchParamDef, compartment_params, search_params, supported_types

MIN_TS = -(2**63)
MAX_TS = 2**63 - 1
MAX_STR = 512
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATE_RE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$",
    re.ASCII,
)
_REF_RE = re.compile(
    r"^(?:(https?://\S*?)/)?([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$"
)
_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One row of ``search_index`` without its resource key."""

    param: str
    str_norm: str | None = None
    str_exact: str | None = None
    system: str | None = None
    code: str | None = None
    lo: int | None = None
    hi: int | None = None
    num: float | None = None
    ref_type: str | None = None
    ref_id: str | None = None

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


def normalize(text: str) -> str:
    """Casefold and strip accents: the form ``str_norm`` holds and string searches compare."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _to_us(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(microseconds=1)


def date_range(text: str) -> tuple[int, int] | None:
    """The half-open range ``[lo, hi)`` in epoch microseconds a FHIR date/dateTime/instant covers.

    The precision written sets the width: "2013" is the year, "2013-01-14T10:00" the minute,
    "...:05.123" the millisecond. No timezone means UTC. ``None`` when ``text`` is not a date.
    """
    m = _DATE_RE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        return None
    year, month, day, hour, minute, second, frac, tz = m.groups()
    tzinfo: timezone = UTC
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        tzinfo = timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
    try:
        start = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((frac or "0")[:6].ljust(6, "0")),
            tzinfo=tzinfo,
        )
        if day is None:
            if month is None:
                end = start.replace(year=start.year + 1) if start.year < 9999 else None
            else:
                end = (start + timedelta(days=32)).replace(day=1)
        elif hour is None:
            end = start + timedelta(days=1)
        elif second is None:
            end = start + timedelta(minutes=1)
        elif frac is None:
            end = start + timedelta(seconds=1)
        else:
            end = start + timedelta(microseconds=10 ** max(0, 6 - len(frac)))
    except (ValueError, OverflowError):
        return None
    return _to_us(start), (MAX_TS if end is None else _to_us(end))


def parse_reference(ref: str) -> tuple[str, str] | None:
    """``(type, id)`` of a relative ``Type/id`` or an absolute URL to one of our types, else None."""
    m = _REF_RE.match(ref)
    if not m:
        return None
    base, ref_type, ref_id = m.groups()
    if base is not None and ref_type not in supported_types():
        return None
    return ref_type, ref_id


def _cut(text: str) -> str:
    return text[:MAX_STR]


def _string_entry(code: str, text: Any) -> IndexEntry | None:
    if not isinstance(text, str) or not text.strip():
        return None
    return IndexEntry(code, str_norm=_cut(normalize(text)), str_exact=_cut(text))


def _strings(value: Any, type_name: str) -> Iterator[str]:
    if isinstance(value, str):
        yield value
        return
    if not isinstance(value, dict):
        return
    if type_name == "Address" or (type_name != "HumanName" and any(k in value for k in _ADDRESS_PARTS[:5])):
        keys: tuple[str, ...] = _ADDRESS_PARTS
    else:
        keys = _NAME_PARTS
    for key in keys:
        part = value.get(key)
        for item in part if isinstance(part, list) else [part]:
            if isinstance(item, str):
                yield item


def _tokens(code: str, value: Any, type_name: str) -> Iterator[IndexEntry]:
    if isinstance(value, bool):
        yield IndexEntry(code, code="true" if value else "false")
    elif isinstance(value, str | int) and not isinstance(value, bool):
        yield IndexEntry(code, code=_cut(str(value)))
    elif isinstance(value, dict):
        if type_name == "CodeableConcept" or "coding" in value:
            for coding in value.get("coding") or []:
                if isinstance(coding, dict):
                    yield from _tokens(code, coding, "Coding")
            text = value.get("text")
            if isinstance(text, str) and text:
                yield IndexEntry(code, str_norm=_cut(normalize(text)), str_exact=_cut(text))
        elif type_name == "ContactPoint" or (type_name != "Identifier" and "rank" in value):
            if isinstance(value.get("value"), str):
                yield IndexEntry(code, code=_cut(value["value"]))
        elif type_name == "Identifier" or "value" in value:
            if isinstance(value.get("value"), str):
                yield IndexEntry(code, system=_str(value.get("system")), code=_cut(value["value"]))
        elif "code" in value or "system" in value:  # Coding
            display = _str(value.get("display"))
            yield IndexEntry(
                code,
                system=_str(value.get("system")),
                code=_str(value.get("code")),
                str_exact=display,
                str_norm=_cut(normalize(display)) if display else None,
            )


def _str(value: Any) -> str | None:
    return _cut(value) if isinstance(value, str) and value else None


def _dates(code: str, value: Any, type_name: str) -> Iterator[IndexEntry]:
    if isinstance(value, str):
        rng = date_range(value)
        if rng:
            yield IndexEntry(code, lo=rng[0], hi=rng[1])
    elif isinstance(value, dict):
        if type_name == "Timing" or "event" in value or "repeat" in value:
            ranges = [r for r in map(date_range, value.get("event") or []) if r]
            if ranges:
                yield IndexEntry(code, lo=min(r[0] for r in ranges), hi=max(r[1] for r in ranges))
            bounds = (value.get("repeat") or {}).get("boundsPeriod")
            if isinstance(bounds, dict):
                yield from _dates(code, bounds, "Period")
        elif "start" in value or "end" in value:
            start = date_range(value["start"]) if isinstance(value.get("start"), str) else None
            end = date_range(value["end"]) if isinstance(value.get("end"), str) else None
            if start or end:
                yield IndexEntry(code, lo=start[0] if start else MIN_TS, hi=end[1] if end else MAX_TS)


def _references(param: SearchParamDef, value: Any) -> Iterator[IndexEntry]:
    ref = value.get("reference") if isinstance(value, dict) else value
    if not isinstance(ref, str) or not ref or ref.startswith("#"):
        return
    parsed = parse_reference(ref)
    if parsed:
        if param.resolve_filter is None or parsed[0] == param.resolve_filter:
            yield IndexEntry(param.code, ref_type=parsed[0], ref_id=parsed[1])
    elif param.resolve_filter is None and ":" in ref:
        yield IndexEntry(param.code, str_exact=_cut(ref))


def _quantities(code: str, value: Any) -> Iterator[IndexEntry]:
    if not isinstance(value, dict) or isinstance(value.get("value"), bool):
        return
    num = value.get("value")
    if isinstance(num, int | float) and math.isfinite(float(num)):
        yield IndexEntry(
            code,
            num=float(num),
            system=_str(value.get("system")),
            code=_str(value.get("code")),
            str_exact=_str(value.get("unit")),
        )


def _entries(param: SearchParamDef, value: Any, type_name: str) -> Iterator[IndexEntry]:
    kind = param.type
    if kind == "string":
        for text in _strings(value, type_name):
            entry = _string_entry(param.code, text)
            if entry:
                yield entry
    elif kind == "token":
        yield from _tokens(param.code, value, type_name)
    elif kind == "date":
        yield from _dates(param.code, value, type_name)
    elif kind == "reference":
        yield from _references(param, value)
    elif kind == "quantity":
        yield from _quantities(param.code, value)
    elif kind == "number":
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value)):
            yield IndexEntry(param.code, num=float(value))
    elif kind == "uri" and isinstance(value, str) and value:
        yield IndexEntry(param.code, str_exact=_cut(value))


def _values(param: SearchParamDef, resource: dict[str, Any]) -> Iterator[tuple[Any, str]]:
    for fn in param.expressions:
        try:
            nodes = fn(resource)
        except Exception:  # noqa: S112 - odd input must not stop indexing
            continue
        for node in nodes:
            data = getattr(node, "data", node)
            type_name = getattr(node, "path", None)
            yield data, type_name if isinstance(type_name, str) else ""


def extract_index(resource: dict[str, Any]) -> list[IndexEntry]:
    """Every index entry of ``resource`` (the version being stored), deduplicated, in a stable order."""
    params = search_params(str(resource.get("resourceType", "")))
    seen: set[IndexEntry] = set()
    out: list[IndexEntry] = []
    for param in params.values():
        if param.special:
            continue
        for value, type_name in _values(param, resource):
            try:
                entries = list(_entries(param, value, type_name))
            except (TypeError, ValueError, AttributeError, OverflowError):
                continue
            for entry in entries:
                if entry not in seen:
                    seen.add(entry)
                    out.append(entry)
    return out


def compartment_patients(resource: dict[str, Any], entries: list[IndexEntry] | None = None) -> list[str]:
    """Ids of the patients whose compartment holds ``resource`` (a Patient: its own id).

    Pass ``entries`` from :func:`extract_index` to avoid evaluating the FHIRPath twice.
    """
    res_type = resource.get("resourceType")
    if res_type == "Patient":
        own = resource.get("id")
        return [own] if isinstance(own, str) and own else []
    codes = set(compartment_params(str(res_type)))
    if not codes:
        return []
    if entries is None:
        entries = extract_index(resource)
    out: list[str] = []
    for e in entries:
        if e.param in codes and e.ref_type == "Patient" and e.ref_id and e.ref_id not in out:
            out.append(e.ref_id)
    return out
