"""What both the patient's home and a clinician's chart read: the Patient, conditions, observations.

Through ``RecordService`` with the page's principal, so the access rules and the audit apply.
"""

from __future__ import annotations

from typing import Any

from medweave.web.pages.routing import Current
from medweave.web.pages.views import entries


def load_record(
    current: Current, patient_id: str, *, conditions: int, observations: int
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The Patient resource, up to ``conditions`` Conditions, and the newest ``observations``."""
    records, principal = current.records, current.principal
    patient = records.read(principal=principal, res_type="Patient", res_id=patient_id).body or {}
    found_conditions = entries(
        records.search(
            principal=principal,
            res_type="Condition",
            params=[("patient", patient_id), ("_count", str(conditions))],
        )
    )
    found_observations = entries(
        records.search(
            principal=principal,
            res_type="Observation",
            params=[("patient", patient_id), ("_sort", "-date"), ("_count", str(observations))],
        )
    )
    return patient, found_conditions, found_observations
