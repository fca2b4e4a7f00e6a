"""Parse a FHIR search query string into a :class:`SearchRequest`. Pure: no I/O.

Semantics follow http://hl7.org/fhir/R4/search.html:

- A name repeated is AND; a comma inside one value is OR (#combining). ``\\,`` ``\\|`` ``\\$`` and
  ``\\\\`` escape (#escaping). Empty values are ignored (#errors).
- Prefixes ``eq ne gt lt ge le sa eb ap`` on date, number and quantity values (#prefix).
- Modifiers (#modifiers): ``:missing`` on every type; string ``:exact`` ``:contains``; token
  ``:not`` ``:text``; reference ``:[Type]``.
- Control parameters (#control): ``_count``, ``_offset`` (our paging), ``_sort``, ``_include``,
  ``_revinclude``, ``_summary``, ``_total``, ``_format``, ``_elements``.

Unknown names, chained or reverse-chained parameters, unsupported modifiers and composite/special
parameters go to ``SearchRequest.unknown`` as ``(name, reason)``: the caller decides between a
warning and a 400 (``Prefer: handling=strict``). A malformed value of a known parameter raises
:class:`~medweave.errors.InvalidInput` naming the parameter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from medweave.errors import InvalidInput
from medweave.records.definitions import search_params, supported_types, unsupported_params
from medweave.records.indexing import date_range, parse_reference

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
PREFIXED_TYPES = frozenset({"date", "number", "quantity"})
MODIFIERS = {
    "string": {"exact", "contains"},
    "token": {"not", "text"},
    "reference": set(),  # plus :[Type]
    "date": set(),
    "number": set(),
    "quantity": set(),
    "uri": set(),
}
SUMMARY_VALUES = frozenset({"count", "true", "false", "text", "data"})
TOTAL_VALUES = frozenset({"none", "estimate", "accurate"})
SORTABLE = frozenset({"string", "date", "token", "number", "quantity", "reference", "uri"})
_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_TYPE_RE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


@dataclass(frozen=True, slots=True)
class SearchValue:
    """One OR-alternative of a parameter, parsed for its type."""

    raw: str
    prefix: str | None = None
    lo: int | None = None  # date: [lo, hi) epoch microseconds
    hi: int | None = None
    num: float | None = None  # number/quantity: the value and its implicit-precision range
    num_lo: float | None = None
    num_hi: float | None = None
    system: str | None = None  # token/quantity: None = any system, "" = no system
    code: str | None = None  # token/quantity: None = any code
    text: str | None = None  # string, uri, :text, or a reference URL that is not local
    ref_type: str | None = None
    ref_id: str | None = None


@dataclass(frozen=True, slots=True)
class SearchParam:
    name: str
    type: str
    modifier: str | None
    values: tuple[SearchValue, ...] = ()  # OR
    missing: bool | None = None  # set for :missing


@dataclass(frozen=True, slots=True)
class IncludeSpec:
    source: str
    param: str
    target: str | None = None


@dataclass
class SearchRequest:
    res_type: str
    params: list[SearchParam] = field(default_factory=list)  # AND
    count: int | None = None
    offset: int = 0
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (param, descending)
    include: list[IncludeSpec] = field(default_factory=list)
    revinclude: list[IncludeSpec] = field(default_factory=list)
    summary: str | None = None
    total: str | None = None
    format: str | None = None
    elements: list[str] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)


def escape(text: str) -> str:
    """Escape a literal so that :func:`split_escaped` and :func:`unescape` give it back."""
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")


def unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ",|$\\":
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def split_escaped(text: str, sep: str, maxsplit: int = -1) -> list[str]:
    """Split on ``sep`` not preceded by an escaping backslash; the pieces stay escaped."""
    parts: list[str] = []
    start = i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            i += 2
            continue
        if text[i] == sep and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _bad(name: str, message: str) -> InvalidInput:
    return InvalidInput(f"Search parameter '{name}': {message}", expression=[name])


def _prefix(name: str, raw: str) -> tuple[str | None, str]:
    if len(raw) > 2 and raw[:2].isalpha():
        if raw[:2] not in PREFIXES:
            raise _bad(name, f"unknown prefix '{raw[:2]}' (expected one of {', '.join(PREFIXES)})")
        return raw[:2], raw[2:]
    return None, raw


def _number(name: str, text: str) -> tuple[float, float, float]:
    try:
        dec = Decimal(text)
    except InvalidOperation:
        raise _bad(name, f"'{text}' is not a number") from None
    if not dec.is_finite() or not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text):
        raise _bad(name, f"'{text}' is not a number")
    exponent = dec.as_tuple().exponent
    half = Decimal(5).scaleb(int(exponent) - 1)
    values = (float(dec), float(dec - half), float(dec + half))
    if not all(math.isfinite(v) for v in values):
        raise _bad(name, f"'{text}' is out of range")
    return values


def _value(name: str, ptype: str, modifier: str | None, raw: str) -> SearchValue:
    prefix = None
    if ptype in PREFIXED_TYPES:
        prefix, raw = _prefix(name, raw)
    if ptype == "date":
        rng = date_range(unescape(raw))
        if rng is None:
            raise _bad(
                name, f"'{raw}' is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss][Z])"
            )
        return SearchValue(raw, prefix, lo=rng[0], hi=rng[1])
    if ptype == "number":
        num, lo, hi = _number(name, unescape(raw))
        return SearchValue(raw, prefix, num=num, num_lo=lo, num_hi=hi)
    if ptype == "quantity":
        parts = [unescape(p) for p in split_escaped(raw, "|")]
        if len(parts) not in (1, 3):
            raise _bad(name, f"'{raw}' is not [prefix]number or [prefix]number|system|code")
        num, lo, hi = _number(name, parts[0])
        system = parts[1] or None if len(parts) == 3 else None
        code = parts[2] or None if len(parts) == 3 else None
        return SearchValue(raw, prefix, num=num, num_lo=lo, num_hi=hi, system=system, code=code)
    if ptype == "token":
        if modifier == "text":
            return SearchValue(raw, text=unescape(raw))
        parts = split_escaped(raw, "|", 1)
        if len(parts) == 1:
            return SearchValue(raw, code=unescape(parts[0]))
        return SearchValue(raw, system=unescape(parts[0]), code=unescape(parts[1]) or None)
    if ptype == "reference":
        return _reference_value(name, modifier, raw)
    return SearchValue(raw, text=unescape(raw))  # string, uri


def _reference_value(name: str, modifier: str | None, raw: str) -> SearchValue:
    text = unescape(raw)
    if modifier:  # :Type, the value is an id (or Type/id of the same type)
        ref_id = text.split("/")[-1] if text.startswith(f"{modifier}/") else text
        if not _ID_RE.match(ref_id):
            raise _bad(name, f"'{text}' is not a resource id")
        return SearchValue(raw, ref_type=modifier, ref_id=ref_id)
    parsed = parse_reference(text)
    if parsed:
        return SearchValue(raw, ref_type=parsed[0], ref_id=parsed[1])
    if _ID_RE.match(text):
        return SearchValue(raw, ref_id=text)
    if ":" in text:
        return SearchValue(raw, text=text)
    raise _bad(name, f"'{text}' is not a reference (Type/id, id or an absolute URL)")


def _include(name: str, res_type: str, raw: str, req: SearchRequest, reverse: bool) -> None:
    parts = raw.split(":")
    if raw == "*" or (len(parts) >= 2 and parts[1] == "*"):
        req.unknown.append((name, f"'{raw}': wildcard includes are not supported"))
        return
    if len(parts) not in (2, 3) or not all(parts):
        raise _bad(name, f"'{raw}' is not SourceType:param[:TargetType]")
    source, param, target = parts[0], parts[1], parts[2] if len(parts) == 3 else None
    if not reverse and source != res_type:
        req.unknown.append((name, f"'{raw}': source type must be {res_type}"))
        return
    definition = search_params(source).get(param)
    if definition is None or definition.type != "reference":
        req.unknown.append((name, f"'{raw}': {source} has no reference parameter '{param}'"))
        return
    if target is not None and target not in supported_types():
        req.unknown.append((name, f"'{raw}': unknown target type '{target}'"))
        return
    (req.revinclude if reverse else req.include).append(IncludeSpec(source, param, target))


def _int(name: str, raw: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise _bad(name, f"'{raw}' is not a non-negative integer")
    return int(raw)


def _control(req: SearchRequest, name: str, modifier: str | None, raw: str) -> None:
    if name == "_count":
        req.count = _int(name, raw)
    elif name == "_offset":
        req.offset = _int(name, raw)
    elif name == "_sort":
        for item in raw.split(","):
            desc = item.startswith("-")
            code = item[1:] if desc else item
            definition = search_params(req.res_type).get(code)
            if definition is None or definition.type not in SORTABLE:
                req.unknown.append((name, f"cannot sort by '{code}'"))
            else:
                req.sort.append((code, desc))
    elif name in ("_include", "_revinclude"):
        if modifier:
            req.unknown.append((f"{name}:{modifier}", "include modifiers (iterate) are not supported"))
            return
        _include(name, req.res_type, raw, req, name == "_revinclude")
    elif name == "_summary":
        if raw not in SUMMARY_VALUES:
            raise _bad(name, f"'{raw}' is not one of {', '.join(sorted(SUMMARY_VALUES))}")
        req.summary = raw
    elif name == "_total":
        if raw not in TOTAL_VALUES:
            raise _bad(name, f"'{raw}' is not one of {', '.join(sorted(TOTAL_VALUES))}")
        req.total = raw
    elif name == "_format":
        req.format = raw
    elif name == "_elements":
        req.elements.extend(e.strip() for e in raw.split(",") if e.strip())


CONTROL = frozenset(
    {"_count", "_offset", "_sort", "_include", "_revinclude", "_summary", "_total", "_format", "_elements"}
)
IGNORED = frozenset({"_pretty"})


def parse_search(res_type: str, pairs: Iterable[tuple[str, str]]) -> SearchRequest:
    """Parse query ``pairs`` (already URL-decoded, repeats allowed) for a search on ``res_type``."""
    if res_type not in supported_types():
        raise InvalidInput(f"Resource type '{res_type}' is not supported")
    req = SearchRequest(res_type)
    params = search_params(res_type)
    for full_name, raw in pairs:
        name, _, modifier_text = full_name.partition(":")
        modifier = modifier_text if _ else None
        if name in IGNORED or raw == "":
            continue
        if name in CONTROL:
            _control(req, name, modifier, raw)
            continue
        parsed = _param(req, params, full_name, name, modifier, raw)
        if parsed is not None:
            req.params.append(parsed)
    return req


def _param(
    req: SearchRequest, params: dict, full_name: str, name: str, modifier: str | None, raw: str
) -> SearchParam | None:
    definition = params.get(name)
    if definition is None:
        if "." in name or name == "_has":
            reason = "chained and reverse-chained parameters are not supported"
        elif name in unsupported_params(req.res_type):
            reason = f"{unsupported_params(req.res_type)[name]} parameters are not supported"
        else:
            reason = f"unknown parameter for {req.res_type}"
        req.unknown.append((full_name, reason))
        return None
    ptype = definition.type
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise _bad(full_name, f"'{raw}' must be true or false")
        return SearchParam(name, ptype, modifier, missing=raw == "true")
    if modifier is not None:
        ok = modifier in MODIFIERS[ptype] or (
            ptype == "reference"
            and _TYPE_RE.match(modifier) is not None
            and (modifier in definition.targets or modifier in supported_types())
        )
        if definition.special == "id" and modifier == "not":
            ok = False
        if not ok:
            req.unknown.append((full_name, f"modifier ':{modifier}' is not supported on {ptype} parameters"))
            return None
    values = tuple(_value(full_name, ptype, modifier, part) for part in split_escaped(raw, ",") if part != "")
    if not values:
        return None
    return SearchParam(name, ptype, modifier, values)
