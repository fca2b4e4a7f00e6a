"""Training tables from the clinic's own records, de-identified, and training on them.

A data scientist never reads a chart. `extract` reads every patient's Patient, Observation and
Condition resources from the record store for them, as an internal principal named after them
(``internal:ml-extract/<user>``, so each read is in the audit trail under that name), and hands
back only `fhir_features.cohort_table`'s rows: a keyed pseudonym, the feature values and the
outcome, with no name, identifier or date, ages over 89 set to 90 (HIPAA Safe Harbor,
45 CFR 164.514(b)(2)). The outcome is a condition the clinic names by its codes (present or not
at the extraction date).

`write` stores the table as CSV with a JSON sidecar (the feature spec, the outcome's codes, the
extraction date, the counts); `load` reads it back as a classification `datasets.Dataset` named
``table:<path>``, so ``medweave ml train --dataset table:PATH`` trains on it like any other
dataset, and the model, whose features are the spec's, can be served at the point of care.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from medweave.diagnostics import fhir_features
from medweave.diagnostics.datasets import Dataset, DatasetInfo
from medweave.diagnostics.registry import may_propose
from medweave.diagnostics.tabular import age_band, fingerprint
from medweave.errors import InvalidInput, NotFound, PermissionDenied
from medweave.records.service import RecordService
from medweave.security.principal import Principal

OUTCOME = "outcome"
PREFIX = "table:"
PAGE = 500
#: The FHIR feature specs of the datasets whose predictors a chart holds, by name: a table can be
#: extracted with them, and models trained on those datasets can be served at the point of care.
SPECS: dict[str, fhir_features.FeatureSpec] = {"framingham": fhir_features.FRAMINGHAM}


def outcome_feature(codes: Sequence[str]) -> fhir_features.Feature:
    """The outcome: any active, confirmed condition with one of ``codes`` (``system|code``)."""
    if not codes or any("|" not in c for c in codes):
        raise InvalidInput(
            "an outcome needs condition codes as SYSTEM|CODE (e.g. http://snomed.info/sct|53741008)"
        )
    return fhir_features.Feature(
        OUTCOME, "condition", codes=tuple(codes), aggregate="present", required=False
    )


def _cohort(
    records: RecordService, reader: Principal, plan: dict[str, str], progress: Callable[[int], None] | None
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    offset = 0
    while True:
        bundle = records.search(
            principal=reader, res_type="Patient", params=[("_count", str(PAGE)), ("_offset", str(offset))]
        )
        patients = [
            e["resource"]
            for e in bundle.get("entry", [])
            if e.get("search", {}).get("mode", "match") == "match"
        ]
        for patient in patients:
            resources: list[dict[str, Any]] = []
            for key, template in plan.items():
                if key == "patient":
                    continue
                res_type, _, query = template.replace("{{context.patientId}}", patient["id"]).partition("?")
                params = parse_qsl(query, keep_blank_values=True)
                found = records.search(
                    principal=reader, res_type=res_type, params=[*params, ("_count", "1000")]
                )
                resources += [
                    e["resource"]
                    for e in found.get("entry", [])
                    if e.get("search", {}).get("mode", "match") == "match"
                ]
            yield patient, resources
        offset += len(patients)
        if progress is not None:
            progress(offset)
        if len(patients) < PAGE:
            return


def extract(
    records: RecordService,
    requester: Principal,
    spec_name: str,
    *,
    outcome_codes: Sequence[str],
    as_of: datetime,
    pseudonym_key: bytes,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The de-identified table of every patient (see the module docstring) and its counts."""
    if not may_propose(requester):
        raise PermissionDenied("only data scientists extract training tables")
    spec = SPECS.get(spec_name)
    if spec is None:
        raise NotFound(f"unknown feature spec {spec_name!r}; one of {', '.join(SPECS)}")
    outcome = outcome_feature(outcome_codes)
    reader = Principal.internal(f"ml-extract/{requester.subject}")
    plan = fhir_features.query_plan(fhir_features.FeatureSpec((*spec.features, outcome)))
    rows, report = fhir_features.cohort_table(
        spec,
        _cohort(records, reader, plan, progress),
        as_of=as_of,
        outcome=outcome,
        pseudonym_key=pseudonym_key,
    )
    report = {
        **report,
        "spec": spec_name,
        "outcome_codes": list(outcome_codes),
        "as_of": as_of.date().isoformat(),
    }
    return rows, report


def csv_text(spec_name: str, rows: list[dict[str, Any]]) -> str:
    """The table as CSV: ``pid``, the spec's features, ``outcome``; empty cells where missing."""
    columns = ["pid", *SPECS[spec_name].names(), OUTCOME]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row[c] for c in columns})
    return out.getvalue()


def write(path: Path, spec_name: str, rows: list[dict[str, Any]], report: dict[str, Any]) -> None:
    """The table as CSV and ``<path>.json`` beside it (the spec, the outcome, the counts)."""
    path.write_text(csv_text(spec_name, rows), encoding="utf-8")
    sidecar = {"spec": SPECS[spec_name].to_dict(), "spec_name": spec_name, "report": report}
    Path(f"{path}.json").write_text(json.dumps(sidecar, indent=2), encoding="utf-8")


def spec_of(name: str) -> fhir_features.FeatureSpec | None:
    """The feature spec of a ``table:`` dataset (None for another dataset)."""
    if not name.startswith(PREFIX):
        return None
    return fhir_features.FeatureSpec.from_dict(_sidecar(Path(name.removeprefix(PREFIX)))["spec"])


def _sidecar(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"no training table {path} (with its {path.name}.json)") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}.json is not a training table's description: {exc}") from None
    if not isinstance(data, dict) or "spec" not in data:
        raise InvalidInput(f"{path}.json is not a training table's description")
    return data


def info(name: str) -> DatasetInfo:
    path = Path(name.removeprefix(PREFIX))
    sidecar = _sidecar(path)
    report = sidecar.get("report", {})
    return DatasetInfo(
        name=name,
        task="classification",
        title=f"Clinic records, de-identified ({sidecar.get('spec_name', 'custom')} features)",
        target=f"outcome: a condition coded {', '.join(report.get('outcome_codes', []))} "
        f"on {report.get('as_of')}",
        source=f"this clinic's FHIR store, extracted {report.get('as_of')} ({path.name})",
        package="medweave",
        license="the clinic's own data: use under its governance",
        loader=lambda: load(name),
        groups=("sex", "age_band"),
    )


def load(name: str) -> Dataset:
    """A ``table:<path>`` training table as a classification dataset; rows without an outcome are
    left out, missing feature values stay NaN (the models impute them)."""
    import pandas as pd

    path = Path(name.removeprefix(PREFIX))
    dataset_info = info(name)
    spec = spec_of(name)
    assert spec is not None
    try:
        frame = pd.read_csv(path, dtype={"pid": str})
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the training table {path}: {exc}") from None
    expected = ["pid", *spec.names(), OUTCOME]
    if list(frame.columns) != expected:
        raise InvalidInput(f"{path} has columns {list(frame.columns)[:8]}, expected {expected[:8]}")
    frame = frame[frame[OUTCOME].notna()].reset_index(drop=True)
    outcome = frame[OUTCOME].to_numpy(dtype="float64")
    if not np.isin(outcome, (0.0, 1.0)).all():
        raise InvalidInput(f"{path}: the outcome column must be 0 or 1")
    features = frame[list(spec.names())].astype("float64")
    target = outcome.astype("int64")
    groups = pd.DataFrame(index=frame.index)
    sex = next((f for f in spec.features if f.source == "sex"), None)
    if sex is not None:
        other = "male" if sex.sex_value == "female" else "female"
        groups["sex"] = [
            ("unknown" if math.isnan(v) else sex.sex_value if v >= 0.5 else other) for v in features[sex.name]
        ]
    age = next((f for f in spec.features if f.source == "age"), None)
    if age is not None:
        groups["age_band"] = age_band(features[age.name])
    return Dataset(dataset_info, features, features, target, groups, fingerprint(features, target))
