"""Validate one FHIR R4 resource before it is stored.

``validate_resource(data, expected_type=...)`` returns ``data`` unchanged or raises. The checks
follow http://hl7.org/fhir/R4/validation.html, in this order:

1. Structure (400 :class:`~medweave.errors.InvalidInput`): the body is a JSON object
   (http://hl7.org/fhir/R4/json.html), nested no deeper than :data:`MAX_DEPTH`, ``resourceType``
   names one of :data:`SUPPORTED_TYPES` (otherwise issue code ``not-supported``) and equals
   ``expected_type`` when given, and ``id`` matches ``[A-Za-z0-9\\-\\.]{1,64}``
   (http://hl7.org/fhir/R4/datatypes.html#id; ``.`` and ``..`` are refused too).
2. Content (422 :class:`~medweave.errors.Unprocessable`, as HAPI answers for a resource that
   parses but is invalid; http://hl7.org/fhir/R4/http.html#2.21.0.13), all issues collected:

   * the ``fhir.resources`` R4B model: cardinality, primitive formats (dates such as
     ``2019-13-45`` fail its regex), unknown elements, choice types;
   * required code bindings (http://hl7.org/fhir/R4/terminologies.html#required) on ``code``,
     ``Coding`` and ``CodeableConcept`` elements, wherever the datatype occurs (``HumanName.use``
     inside ``Patient.contact.name``, ``Quantity.comparator`` inside an extension);
   * references (http://hl7.org/fhir/R4/references.html): ``Type/id[/_history/vid]`` with a known
     type allowed by the element's ``targetProfile``, absolute ``http(s)`` URLs (their
     ``.../Type/id`` tail is checked the same way), ``urn:uuid:``/``urn:oid:`` (resolved by the
     bundle layer) and ``#id`` naming a contained resource.

The walk uses the path tables of ``data/bindings.json``, built by
``scripts/build_fhir_bindings.py`` from the official package, so it only visits elements whose
subtree holds a binding or a Reference.

R4 vs R4B: R4 JSON is parsed with the R4B models (fhir.resources has no R4). All 217 official R4
examples of the supported types pass them unchanged, so no compatibility rewriting is done. Two
examples are genuinely invalid and refused: ``Questionnaire-qs1`` (items without ``linkId``) and
``Observation-clinical-gender`` (``Observation.performer`` references an Encounter).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from medweave.errors import InvalidInput, Issue, Unprocessable
from medweave.records import types

SUPPORTED_TYPES: frozenset[str] = frozenset(types.SUPPORTED_TYPES)
#: Deepest nesting of JSON objects/arrays accepted; deeper bodies would exhaust the model's stack.
MAX_DEPTH = 100

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_REL_REF = re.compile(r"([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?")
_ABS_REF = re.compile(r"https?://[^\s/]+(?:/[^\s]*)?")
_ABS_TAIL = re.compile(r".*/([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?")
_URN = re.compile(
    r"urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|urn:oid:[0-2](?:\.(?:0|[1-9][0-9]*))+"
)


@dataclass(frozen=True, slots=True)
class _Entry:
    """What the walk needs to know about one element (see the generator's docstring)."""

    kind: str  # "code" | "Coding" | "CodeableConcept" | "Reference" | other (recurse only)
    codes: frozenset[str] | None  # union of the required ValueSet's codes
    systems: dict[str, frozenset[str]] | None  # the same, per code system
    targets: frozenset[str] | None  # allowed Reference targets; None = any
    into: str | None  # table to recurse into
    vs: str | None


@dataclass(frozen=True, slots=True)
class _Tables:
    tables: dict[str, dict[str, _Entry]]
    resource_types: frozenset[str]


@cache
def _load() -> _Tables:
    raw = json.loads(resources.files("medweave.records").joinpath("data/bindings.json").read_text())
    vsets = {
        name: ({c for codes in by_sys.values() for c in codes}, {s: frozenset(c) for s, c in by_sys.items()})
        for name, by_sys in raw["valueSets"].items()
    }
    tables: dict[str, dict[str, _Entry]] = {}
    for tname, table in raw["tables"].items():
        out: dict[str, _Entry] = {}
        for key, e in table.items():
            vs = e.get("vs")
            codes, systems = (frozenset(vsets[vs][0]), vsets[vs][1]) if vs else (None, None)
            into = e.get("into") or (e["type"] if e["type"] in raw["tables"] else None)
            targets = frozenset(e["targets"]) if "targets" in e else None
            out[key] = _Entry(e["type"], codes, systems, targets, into, vs)
        tables[tname] = out
    ext = _Entry("Extension", None, None, None, "Extension", None)
    for out in tables.values():
        out["extension"] = out["modifierExtension"] = ext
    tables.setdefault("Extension", {})["extension"] = ext
    return _Tables(tables, frozenset(raw["resourceTypes"]))


def validate_resource(data: object, *, expected_type: str | None = None) -> dict[str, Any]:
    """Check one resource; return it unchanged, or raise ``InvalidInput`` (400) / ``Unprocessable`` (422).

    ``expected_type`` is the type named by the URL (``PUT /Patient/1``): a body of another type is
    refused (http://hl7.org/fhir/R4/http.html#update).
    """
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object holding one FHIR resource")
    rtype = data.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise InvalidInput("resourceType is missing", expression=["resourceType"])
    if rtype not in SUPPORTED_TYPES:
        raise InvalidInput(
            f"resourceType {rtype!r} is not supported",
            issues=[Issue("error", "not-supported", f"Resource type {rtype!r} is not supported", [rtype])],
        )
    if expected_type is not None and rtype != expected_type:
        raise InvalidInput(
            f"resourceType {rtype!r} does not match the URL's type {expected_type!r}",
            expression=["resourceType"],
        )
    issues: list[Issue] = []
    if "id" in data and not _valid_id(data["id"]):
        issues.append(Issue("error", "value", f"id {data['id']!r} is not a valid FHIR id", [f"{rtype}.id"]))
    if _too_deep(data, MAX_DEPTH):
        issues.append(Issue("error", "structure", f"Nested deeper than {MAX_DEPTH} levels", [rtype]))
    if issues:
        raise InvalidInput(issues[0].diagnostics, issues=issues)

    issues.extend(_model_issues(rtype, data))
    issues.extend(_walk_resource(data, rtype))
    if issues:
        more = f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""
        raise Unprocessable(f"{rtype} is not valid: {issues[0].diagnostics}{more}", issues=issues)
    return data


def _valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None and value.strip(".") != ""


def _too_deep(data: object, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return False


# --- the fhir.resources model -------------------------------------------------------------------


@cache
def _model(rtype: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class  # heavy import, done once on first use

    return get_fhir_model_class(rtype)


def _render_loc(rtype: str, loc: tuple[int | str, ...]) -> str:
    out = rtype
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


_PYDANTIC_CODES = {
    "extra_forbidden": "structure",
    "missing": "required",
    "model_field_validation.missing": "required",
}


def _model_issues(rtype: str, data: dict[str, Any]) -> list[Issue]:
    from pydantic import ValidationError

    contained = data.get("contained")
    known = _load().resource_types
    unknown = [
        Issue("error", "not-supported", "Contained resource of unknown type", [f"{rtype}.contained[{i}]"])
        for i, c in enumerate(contained if isinstance(contained, list) else [])
        if not isinstance(c, dict) or c.get("resourceType") not in known
    ]
    if unknown:
        return unknown
    try:
        model = _model(rtype).model_validate(data)
    except ValidationError as exc:
        return [
            Issue("error", _PYDANTIC_CODES.get(e["type"], "value"), e["msg"], [_render_loc(rtype, e["loc"])])
            for e in exc.errors(include_url=False)
        ]
    except (RecursionError, KeyError, TypeError, ValueError) as exc:  # defensive: the model must not crash us
        return [Issue("error", "structure", f"The resource could not be parsed: {exc!r}", [rtype])]
    issues: list[Issue] = []
    _json_fidelity(data, model.model_dump(mode="json", by_alias=True, exclude_none=True), rtype, issues)
    return issues


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "null"


def _json_fidelity(sent: object, parsed: object, path: str, issues: list[Issue]) -> None:
    """Refuse what the model only accepted by coercion, and empty or null values.

    The R4B models are lax: ``"active": "yes"`` becomes ``true`` and ``"multipleBirthInteger":
    "3"`` becomes ``3``. R4 JSON fixes each primitive's JSON type (booleans are ``true``/``false``,
    numbers are JSON numbers) and forbids ``null`` and empty objects, arrays and strings
    (http://hl7.org/fhir/R4/json.html#primitive). Comparing the JSON kinds of what was sent with
    what the model parsed finds every coercion, whatever element it happened in. Nulls stay
    allowed inside arrays, where R4 uses them to line up primitives with their ``_x`` extensions.
    """
    if isinstance(sent, dict):
        if not sent:
            issues.append(Issue("error", "value", "Empty objects are not allowed in FHIR JSON", [path]))
            return
        parsed_map = parsed if isinstance(parsed, dict) else {}
        for key, value in sent.items():
            if value is None:
                issues.append(
                    Issue("error", "value", "null is not allowed as a property value", [f"{path}.{key}"])
                )
            else:
                _json_fidelity(value, parsed_map.get(key), f"{path}.{key}", issues)
    elif isinstance(sent, list):
        if not sent:
            issues.append(Issue("error", "value", "Empty arrays are not allowed in FHIR JSON", [path]))
            return
        parsed_list = parsed if isinstance(parsed, list) else []
        for i, item in enumerate(sent):
            if item is not None and i < len(parsed_list):
                _json_fidelity(item, parsed_list[i], f"{path}[{i}]", issues)
    elif isinstance(sent, str) and not sent.strip():
        issues.append(Issue("error", "value", "Empty strings are not allowed in FHIR JSON", [path]))
    elif parsed is not None and _json_kind(sent) != _json_kind(parsed):
        issues.append(
            Issue(
                "error",
                "value",
                f"Expected a JSON {_json_kind(parsed)}, got a JSON {_json_kind(sent)}",
                [path],
            )
        )


# --- the binding and reference walk -------------------------------------------------------------


@dataclass(slots=True)
class _Walk:
    tables: _Tables
    rtype: str
    contained_ids: frozenset[str]
    issues: list[Issue]

    def add(self, code: str, diagnostics: str, path: str) -> None:
        self.issues.append(Issue("error", code, diagnostics, [path]))


def _walk_resource(data: dict[str, Any], rtype: str) -> list[Issue]:
    contained = data.get("contained")
    contained = contained if isinstance(contained, list) else []
    ids = frozenset(c["id"] for c in contained if isinstance(c, dict) and isinstance(c.get("id"), str))
    w = _Walk(_load(), rtype, ids, [])
    _walk(w, data, rtype, rtype)
    for i, c in enumerate(contained):
        if isinstance(c, dict) and isinstance(c.get("resourceType"), str):
            _walk(w, c, c["resourceType"], f"{rtype}.contained[{i}]")
    return w.issues


def _items(value: object, path: str) -> Iterator[tuple[object, str]]:
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield item, f"{path}[{i}]"
    else:
        yield value, path


def _walk(w: _Walk, node: dict[str, Any], table_name: str, path: str) -> None:
    table = w.tables.tables.get(table_name)
    if table is None:
        return
    for key, value in node.items():
        entry = table.get(key)
        if entry is None:
            continue
        for item, ipath in _items(value, f"{path}.{key}"):
            if entry.kind == "code":
                if entry.codes is not None and isinstance(item, str) and item not in entry.codes:
                    w.add("code-invalid", *_code_issue(item, entry, ipath))
                continue
            if not isinstance(item, dict):
                continue
            if entry.systems is not None:
                _check_coded(w, entry, item, ipath)
            if entry.kind == "Reference":
                _check_reference(w, entry, item, ipath)
            if entry.into is not None:
                _walk(w, item, entry.into, ipath)


def _code_issue(code: object, entry: _Entry, path: str) -> tuple[str, str]:
    return f"{code!r} is not in the required value set {entry.vs}", path


def _check_coded(w: _Walk, entry: _Entry, item: dict[str, Any], path: str) -> None:
    """Required binding on Coding/CodeableConcept: some coding must come from the value set."""
    assert entry.systems is not None
    codings: list[tuple[object, str]] = [(item, path)]
    if entry.kind == "CodeableConcept":
        raw = item.get("coding")
        codings = list(_items(raw, f"{path}.coding")) if isinstance(raw, list) else []
    found = False
    for coding, p in codings:
        if not isinstance(coding, dict):
            continue
        allowed = entry.systems.get(coding.get("system"))  # type: ignore[arg-type]
        if allowed is None:
            continue
        found = True
        if coding.get("code") not in allowed:
            w.add("code-invalid", *_code_issue(coding.get("code"), entry, f"{p}.code"))
    if not found:
        w.add("code-invalid", f"No coding from the required value set {entry.vs}", path)


def _check_reference(w: _Walk, entry: _Entry, item: dict[str, Any], path: str) -> None:
    """http://hl7.org/fhir/R4/references.html#Reference: literal reference forms and target types."""
    ref = item.get("reference")
    if not isinstance(ref, str):
        return
    rpath = f"{path}.reference"
    target: str | None = None
    if ref.startswith("#"):
        if ref != "#" and ref[1:] not in w.contained_ids:
            w.add("not-found", f"No contained resource with id {ref[1:]!r}", rpath)
        return
    if m := _REL_REF.fullmatch(ref):
        target = m.group(1)
        if m.group(2).strip(".") == "":
            w.add("value", f"{ref!r} does not name a valid id", rpath)
            return
        if target not in w.tables.resource_types:
            w.add("value", f"{target!r} in {ref!r} is not a FHIR resource type", rpath)
            return
    elif _ABS_REF.fullmatch(ref):
        m = _ABS_TAIL.fullmatch(ref)
        target = m.group(1) if m and m.group(1) in w.tables.resource_types else None
    elif _URN.fullmatch(ref):
        return
    else:
        w.add("value", f"{ref!r} is not a valid reference", rpath)
        return
    declared = item.get("type")
    if isinstance(declared, str) and target is not None and declared != target:
        w.add("value", f"Reference.type {declared!r} contradicts {ref!r}", f"{path}.type")
    if target is not None and entry.targets is not None and target not in entry.targets:
        allowed = ", ".join(sorted(entry.targets))
        w.add("value", f"A {target} may not be referenced here (allowed: {allowed})", rpath)
