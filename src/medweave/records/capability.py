"""The CapabilityStatement (``/fhir/metadata``), built from what the server really supports.

Search parameters come from the same definitions the indexer uses, so the statement cannot
claim a parameter that the search layer does not answer.
"""

from __future__ import annotations

from typing import Any

from medweave import __version__
from medweave.records.definitions import search_params
from medweave.records.fhir import SUPPORTED_TYPES

_INTERACTIONS = [
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]
_REFERENCE_PARAMS_ONLY = "reference"


def capability_statement(*, base: str, software_date: str) -> dict[str, Any]:
    rest_resources = []
    for res_type in SUPPORTED_TYPES:
        params = search_params(res_type)
        includes = sorted(f"{res_type}:{p.code}" for p in params.values() if p.type == _REFERENCE_PARAMS_ONLY)
        entry: dict[str, Any] = {
            "type": res_type,
            "interaction": [{"code": c} for c in _INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": False,
            "conditionalUpdate": False,
            "conditionalDelete": "not-supported",
            "searchInclude": includes,
            "searchRevInclude": [],
            "searchParam": [
                {
                    "name": p.code,
                    "type": p.type,
                    "definition": f"http://hl7.org/fhir/SearchParameter/{res_type}-{p.code}",
                }
                for p in sorted(params.values(), key=lambda p: p.code)
            ],
        }
        if res_type == "Patient":
            entry["operation"] = [
                {
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                }
            ]
        rest_resources.append(entry)
    all_includes = sorted({inc for r in rest_resources for inc in r["searchInclude"]})
    for r in rest_resources:
        r["searchRevInclude"] = [inc for inc in all_includes if r["type"] in _targets(inc)]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": software_date,
        "publisher": "Medweave",
        "kind": "instance",
        "software": {"name": "Medweave", "version": __version__},
        "implementation": {"description": "Medweave FHIR record store", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "resource": rest_resources,
                "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}],
                "searchParam": [
                    {"name": "_count", "type": "number"},
                    {"name": "_sort", "type": "string"},
                    {"name": "_include", "type": "string"},
                    {"name": "_revinclude", "type": "string"},
                    {"name": "_summary", "type": "token"},
                ],
            }
        ],
    }


def _targets(include: str) -> tuple[str, ...]:
    source, code = include.split(":", 1)
    p = search_params(source).get(code)
    return p.targets if p else ()
