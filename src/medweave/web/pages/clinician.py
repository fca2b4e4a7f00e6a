"""Staff pages: my patients (with search by name) and a patient's chart.

The list is a ``Patient`` search as the signed-in user, so it holds only the patients in their
care (or under break-glass); the chart reads through the same service, so a patient they may
not see answers with the same "not found" page as a missing one.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from markupsafe import Markup
from starlette.responses import Response

from medweave.errors import NotFound
from medweave.records import fhir
from medweave.security.principal import STAFF_ROLES, Role
from medweave.web.pages import routing
from medweave.web.pages.charts import chartable, fmt, trend_svg
from medweave.web.pages.ml import chart_cards
from medweave.web.pages.record import load_record
from medweave.web.pages.render import fragment, page
from medweave.web.pages.routing import Current, require_role
from medweave.web.pages.views import (
    condition_rows,
    demographics,
    entries,
    human_name,
    numeric_series,
    observation_rows,
    when_text,
)

router = APIRouter(route_class=routing.PageRoute)
LIST_SIZE = 50
QUERY_MAX = 100
CHART_OBSERVATIONS = 500
#: Medication types in FHIR R4 that the record store does not hold (yet): say so, show nothing.
MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement")


def _patients(current: Current, query: str) -> list[dict[str, str]]:
    params = [("_count", str(LIST_SIZE))]
    if query:
        params.append(("name", query))
    bundle = current.records.search(principal=current.principal, res_type="Patient", params=params)
    return [
        {
            "id": str(p.get("id")),
            "name": human_name(p),
            "birth": str(p.get("birthDate") or ""),
            "gender": str(p.get("gender") or ""),
        }
        for p in entries(bundle)
    ]


def _query(request: Request) -> str:
    return request.query_params.get("q", "").strip()[:QUERY_MAX]


@router.get("/patients", include_in_schema=False)
def my_patients(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    require_role(current, *(STAFF_ROLES - {Role.ADMIN}))
    query = _query(request)
    return page(request, "patients.html", title="My patients", q=query, patients=_patients(current, query))


@router.get("/patients/results", include_in_schema=False)
def patient_results(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    """The result list alone, for the search box's HTMX requests."""
    require_role(current, *(STAFF_ROLES - {Role.ADMIN}))
    query = _query(request)
    return fragment("_patient_results.html", q=query, patients=_patients(current, query))


@router.get("/patients/{patient_id}", include_in_schema=False)
def chart(request: Request, patient_id: str, current: Current = Depends(routing.signed_in)) -> Response:
    if not fhir.valid_id(patient_id):
        raise NotFound("no such patient")
    patient, conditions, observations = load_record(
        current, patient_id, conditions=200, observations=CHART_OBSERVATIONS
    )
    charts = [
        {
            "svg": Markup(trend_svg(s, chart_id=f"trend-{i}")),  # noqa: S704 - our own escaped SVG
            "series": s,
            "rows": [(when_text(p.when), fmt(p.value)) for p in reversed(s.points)],
        }
        for i, s in enumerate(chartable(numeric_series(observations)))
    ]
    stored = [t for t in MEDICATION_TYPES if t in fhir.SUPPORTED_TYPES]
    emergency = patient_id in current.principal.break_glass
    return page(
        request,
        "chart.html",
        title=f"Chart: {human_name(patient)}",
        name=human_name(patient),
        patient_id=patient_id,
        demographics=demographics(patient),
        conditions=condition_rows(conditions),
        observations=observation_rows(observations),
        charts=charts,
        medication_types=MEDICATION_TYPES,
        medications_stored=bool(stored),
        emergency=emergency,
        cds_cards=chart_cards(request, current, patient_id),
    )
