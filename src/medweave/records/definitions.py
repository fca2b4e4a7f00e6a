"""The R4 search parameters and patient compartment of the resource types Medweave stores.

Loaded once from ``data/search_parameters.json`` and ``data/compartment_patient.json``, which
``scripts/build_fhir_definitions.py`` generates from the official R4 package
(http://hl7.org/fhir/R4/searchparameter-registry.html,
http://hl7.org/fhir/R4/compartmentdefinition-patient.html). FHIRPath expressions are compiled
with fhirpathpy (R4 model, so choice types and ``as`` work) on first use and cached.

``_id`` and ``_lastUpdated`` (http://hl7.org/fhir/R4/search.html#all) have ``special`` set and
are answered from the ``resources`` table, not from FHIRPath.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

Compiled = Callable[..., list[Any]]

SUPPORTED_PARAM_TYPES = frozenset({"string", "token", "date", "reference", "quantity", "number", "uri"})


@dataclass(frozen=True, slots=True)
class SearchParamDef:
    """One search parameter as it applies to one resource type."""

    code: str
    type: str
    expression_texts: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    resolve_filter: str | None = None  # index only references to this type (from ``.where(resolve() is X)``)
    special: str | None = None  # "id" or "lastUpdated": answered from the resources table
    _compiled: list[tuple[Compiled, ...]] = field(default_factory=list, compare=False, repr=False)

    @property
    def expressions(self) -> tuple[Compiled, ...]:
        """The compiled FHIRPath expressions (compiled on first access)."""
        if not self._compiled:
            self._compiled.append(tuple(_compile(text) for text in self.expression_texts))
        return self._compiled[0]


@cache
def _model() -> dict[str, Any]:
    from fhirpathpy.models import models

    return models["r4"]


@cache
def _compile(text: str) -> Compiled:
    from fhirpathpy import compile as fp_compile

    return fp_compile(text, _model(), {"returnRawData": True})


@cache
def _load(name: str) -> dict[str, Any]:
    data = importlib_resources.files("medweave.records").joinpath("data", name).read_text(encoding="utf-8")
    return json.loads(data)


def supported_types() -> tuple[str, ...]:
    """The resource types Medweave stores and can search."""
    return tuple(_load("search_parameters.json")["types"])


@cache
def search_params(res_type: str) -> dict[str, SearchParamDef]:
    """Every supported search parameter of ``res_type`` by code (empty for unknown types)."""
    data = _load("search_parameters.json")
    if res_type not in data["types"]:
        return {}
    out: dict[str, SearchParamDef] = {}
    for code, entry in data["common"].items():
        exprs = tuple(e.replace("Resource.", f"{res_type}.", 1) for e in entry.get("expressions", ()))
        out[code] = SearchParamDef(code, entry["type"], exprs, special=entry.get("special"))
    for code, entry in data["types"][res_type].items():
        out[code] = SearchParamDef(
            code,
            entry["type"],
            tuple(entry["expressions"]),
            tuple(entry.get("targets", ())),
            entry.get("resolve"),
        )
    return out


@cache
def unsupported_params(res_type: str) -> dict[str, str]:
    """Parameters defined by R4 for ``res_type`` that Medweave does not support, with their type."""
    data = _load("search_parameters.json")
    out = dict(data["common_unsupported"])
    out.update(data["unsupported"].get(res_type, {}))
    return out


#: Types R4's patient CompartmentDefinition leaves out although they carry one patient's data
#: (``Task.for``, ``Device.patient``). Medweave keeps them in that patient's compartment, so they are
#: sealed under the patient's key and guarded like the rest of the record.
LOCAL_COMPARTMENT: dict[str, tuple[str, ...]] = {"Task": ("patient",), "Device": ("patient",)}


@cache
def compartment_params(res_type: str) -> tuple[str, ...]:
    """Codes of the parameters that put a ``res_type`` resource in a Patient compartment.

    Empty for Patient (a Patient is in its own compartment) and for types outside it.
    """
    official = tuple(_load("compartment_patient.json")["types"].get(res_type, ()))
    return official or LOCAL_COMPARTMENT.get(res_type, ())
