"""Break-glass: a staff member states a reason and a duration, and the patient's chart opens.

The grant is time-limited, read-only (the access rules say so), audited as a Security Alert with
the reason, and stays in the admins' review queue until another admin reviews it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from medweave.errors import InvalidInput, PermissionDenied
from medweave.records import fhir
from medweave.security.principal import STAFF_ROLES
from medweave.web.pages import auditing, routing
from medweave.web.pages.render import page
from medweave.web.pages.routing import Current, Form, posted, redirect, require_role

router = APIRouter(route_class=routing.PageRoute)
DURATIONS = [(15, "15 minutes"), (30, "30 minutes"), (60, "1 hour"), (120, "2 hours"), (240, "4 hours")]


def _form_page(
    request: Request, current: Current, *, patient: str, reason: str, error: str | None, status: int = 200
) -> Response:
    grants = current.identity.active_grants(current.user.id)
    return page(
        request,
        "break_glass.html",
        status=status,
        title="Emergency access",
        patient=patient,
        reason=reason,
        durations=DURATIONS,
        grants=grants,
        error=error,
    )


@router.get("/break-glass", include_in_schema=False)
def request_form(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    require_role(current, *STAFF_ROLES)
    patient = request.query_params.get("patient", "")[:64]
    return _form_page(
        request, current, patient=patient if fhir.valid_id(patient) else "", reason="", error=None
    )


@router.post("/break-glass", include_in_schema=False)
def start(
    request: Request, form: Form = Depends(posted), current: Current = Depends(routing.signed_in)
) -> Response:
    require_role(current, *STAFF_ROLES)
    patient, reason = form.get("patient"), form.get("reason")
    try:
        if not fhir.valid_id(patient):
            raise InvalidInput("Enter the patient's record id.")
        minutes = int(form.get("minutes") or "60")
        grant = current.identity.start_break_glass(
            user_id=current.user.id, patient_id=patient, reason=reason, minutes=minutes
        )
    except ValueError:
        return _form_page(
            request, current, patient=patient, reason=reason, error="Choose a duration.", status=400
        )
    except (InvalidInput, PermissionDenied) as exc:
        return _form_page(request, current, patient=patient, reason=reason, error=exc.message, status=400)
    auditing.break_glass(request, current.user, grant)
    return redirect(f"/patients/{grant.patient_id}")
