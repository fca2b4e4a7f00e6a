"""Build ``src/medweave/records/data/bindings.json`` from the official FHIR R4 package.

Usage::

    python scripts/build_fhir_bindings.py PATH_TO/hl7.fhir.r4.examples [--out FILE]

The package ``hl7.fhir.r4.examples@4.0.1`` (CC0) holds every StructureDefinition with its
snapshot, every ValueSet and CodeSystem. From it we keep only what
:mod:`medweave.records.validation` needs to walk a resource cheaply:

* ``valueSets``: each ValueSet that a *required* binding names
  (http://hl7.org/fhir/R4/terminologies.html#required), expanded to ``{system: [codes]}``.
  A ValueSet is expanded from ``compose.include`` (a whole CodeSystem, nested concepts included,
  a list of concepts, an ``is-a`` filter, or other ValueSets) minus ``compose.exclude``.
  ValueSets that cannot be expanded from the package (external systems such as UCUM, BCP-47 or
  MIME types, fragments) are left out and printed on stderr.
* ``tables``: one table per walk context (a resource type, a datatype, or a backbone path such as
  ``Patient.contact``). Each maps a JSON key (choice types already expanded, ``value[x]`` ->
  ``valueQuantity``) to ``{"type": T}`` plus ``"vs"`` (required binding), ``"targets"`` (allowed
  Reference targets, http://hl7.org/fhir/R4/references.html; absent means any) and ``"into"``
  (the table to recurse into for backbone elements and ``contentReference``). Elements whose
  subtree holds neither a binding nor a Reference are pruned.
* ``resourceTypes``: every R4 resource type name (for ``Type/id`` references).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medweave.records.validation import SUPPORTED_TYPES

OUT = Path(__file__).resolve().parents[1] / "src/medweave/records/data/bindings.json"


class Package:
    """Lazy access to the flat package folder, indexed by canonical URL."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.value_sets: dict[str, dict] = {}
        self.code_systems: dict[str, dict] = {}
        for p in root.glob("ValueSet-*.json"):
            d = json.loads(p.read_text())
            self.value_sets[d["url"]] = d
        for p in root.glob("CodeSystem-*.json"):
            d = json.loads(p.read_text())
            self.code_systems[d["url"]] = d

    def sd(self, name: str) -> dict | None:
        p = self.root / f"StructureDefinition-{name}.json"
        return json.loads(p.read_text()) if p.exists() else None


class CannotExpand(Exception):
    """The ValueSet needs something the package does not hold."""


def _concepts(concepts: list[dict], parent_chain: tuple[str, ...], out: dict[str, tuple[str, ...]]) -> None:
    for c in concepts:
        out[c["code"]] = parent_chain
        _concepts(c.get("concept", []), (*parent_chain, c["code"]), out)


def code_system_codes(pkg: Package, system: str) -> dict[str, tuple[str, ...]]:
    """All codes of a complete CodeSystem, each with its ancestors (for ``is-a`` filters)."""
    cs = pkg.code_systems.get(system)
    if cs is None or cs.get("content") not in ("complete", None) or not cs.get("concept"):
        raise CannotExpand(f"code system {system} not in package or not complete")
    out: dict[str, tuple[str, ...]] = {}
    _concepts(cs["concept"], (), out)
    return out


def _include(pkg: Package, inc: dict, seen: frozenset[str]) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for vs_url in inc.get("valueSet", []):
        for vs_system, vs_codes in expand(pkg, vs_url, seen).items():
            result.setdefault(vs_system, set()).update(vs_codes)
    system = inc.get("system")
    if system is None:
        return result
    if inc.get("concept"):
        codes = {c["code"] for c in inc["concept"]}
    else:
        all_codes = code_system_codes(pkg, system)
        codes = set(all_codes)
        for flt in inc.get("filter", []):
            if flt.get("property") != "concept" or flt.get("op") not in ("is-a", "descendent-of"):
                raise CannotExpand(f"filter {flt} on {system}")
            root = flt["value"]
            codes = {c for c in codes if root in all_codes[c] or (flt["op"] == "is-a" and c == root)}
    if inc.get("valueSet"):  # intersection with the named value sets (rare)
        return {system: codes & result.get(system, set())}
    result.setdefault(system, set()).update(codes)
    return result


def expand(pkg: Package, url: str, seen: frozenset[str] = frozenset()) -> dict[str, set[str]]:
    """Expand a ValueSet (http://hl7.org/fhir/R4/valueset.html#compose) to ``{system: codes}``."""
    url = url.split("|")[0]
    if url in seen:
        raise CannotExpand(f"cycle at {url}")
    vs = pkg.value_sets.get(url)
    if vs is None:
        raise CannotExpand(f"value set {url} not in package")
    compose = vs.get("compose")
    if not compose:
        raise CannotExpand(f"value set {url} has no compose")
    out: dict[str, set[str]] = {}
    for inc in compose.get("include", []):
        for system, codes in _include(pkg, inc, seen | {url}).items():
            out.setdefault(system, set()).update(codes)
    for exc in compose.get("exclude", []):
        for system, codes in _include(pkg, exc, seen | {url}).items():
            out.get(system, set()).difference_update(codes)
    return out


def _vs_name(url: str) -> str:
    return url.split("|")[0].rsplit("/", 1)[-1]


def build(root: Path) -> tuple[dict, dict[str, str]]:
    """Return (bindings document, skipped value sets with reasons)."""
    pkg = Package(root)
    resource_types = sorted(
        d["type"]
        for p in root.glob("StructureDefinition-*.json")
        if (d := json.loads(p.read_text())).get("kind") == "resource"
        and d.get("derivation") == "specialization"
        and d["type"] not in ("Resource", "DomainResource")
    )
    tables: dict[str, dict[str, dict]] = {}
    value_sets: dict[str, dict[str, list[str]]] = {}
    skipped: dict[str, str] = {}
    todo = [*sorted(SUPPORTED_TYPES), "Extension", "Meta", "Narrative"]
    done: set[str] = set()
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        sd = pkg.sd(name)
        if sd is None or sd.get("kind") == "primitive-type":
            continue
        for el in sd["snapshot"]["element"]:
            path: str = el["path"]
            if "." not in path:
                continue
            parent, key = path.rsplit(".", 1)
            table = tables.setdefault(parent, {})
            if "contentReference" in el:
                table[key] = {"type": "BackboneElement", "into": el["contentReference"].lstrip("#")}
                continue
            types = el.get("type", [])
            binding = el.get("binding", {})
            for t in types:
                code = t["code"]
                if code.startswith("http://"):  # System.String for ids
                    continue
                entry: dict = {"type": code}
                if code in ("BackboneElement", "Element"):
                    entry["into"] = path
                elif code[0].isupper() and code != "Resource":
                    todo.append(code)
                if code == "Reference":
                    targets = sorted(p.rsplit("/", 1)[-1] for p in t.get("targetProfile", []))
                    if targets and "Resource" not in targets:
                        entry["targets"] = targets
                if binding.get("strength") == "required" and code in ("code", "Coding", "CodeableConcept"):
                    vs = _vs_name(binding["valueSet"])
                    if vs not in value_sets and vs not in skipped:
                        try:
                            expanded = expand(pkg, binding["valueSet"])
                            value_sets[vs] = {s: sorted(c) for s, c in expanded.items()}
                        except CannotExpand as exc:
                            skipped[vs] = str(exc)
                    if vs in value_sets:
                        entry["vs"] = vs
                json_key = key[:-3] + code[0].upper() + code[1:] if key.endswith("[x]") else key
                table[json_key] = entry
    return {"resourceTypes": resource_types, "valueSets": value_sets, "tables": _prune(tables)}, skipped


def _prune(tables: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    """Keep only entries that lead to a binding or a Reference (extensions are walked generically)."""
    live: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, table in tables.items():
            if name in live:
                continue
            for key, e in table.items():
                if key in ("extension", "modifierExtension"):
                    continue
                if "vs" in e or e["type"] == "Reference" or e.get("into", e["type"]) in live:
                    live.add(name)
                    changed = True
                    break
    out: dict[str, dict[str, dict]] = {}
    for name in sorted(tables):
        if name not in live:
            continue
        kept = {
            k: e
            for k, e in sorted(tables[name].items())
            if k not in ("extension", "modifierExtension")
            and ("vs" in e or e["type"] == "Reference" or e.get("into", e["type"]) in live)
        }
        out[name] = kept
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", type=Path)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    doc, skipped = build(args.package)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, separators=(",", ":"), sort_keys=True) + "\n")
    print(
        f"wrote {args.out}: {len(doc['tables'])} tables, {len(doc['valueSets'])} value sets, "
        f"{len(doc['resourceTypes'])} resource types",
        file=sys.stderr,
    )
    for vs, why in sorted(skipped.items()):
        print(f"skipped value set {vs}: {why}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
