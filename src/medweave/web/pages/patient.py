"""The patient's home page: my record summary and who looked at it.

Everything is read through ``RecordService`` as the signed-in patient, so the access rules and the
audit trail apply exactly as for the API. Upcoming visits come from telehealth's bookings (with
their own page, "My visits"); sections of later capabilities (questionnaires, messages) appear in
the navigation once they exist; none is faked here.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from medweave.errors import NotFound
from medweave.identity import IdentityService
from medweave.ledger.receipt import MEDIA_EXTENSION
from medweave.ledger.service import LedgerService
from medweave.security.principal import Role
from medweave.web.pages import routing
from medweave.web.pages.history import access_rows
from medweave.web.pages.record import load_record
from medweave.web.pages.render import page
from medweave.web.pages.routing import Current, require_role
from medweave.web.pages.views import condition_rows, demographics, human_name, observation_rows
from medweave.web.pages.visits import visit_rows

router = APIRouter(route_class=routing.PageRoute)
RECENT_OBSERVATIONS = 20
HISTORY_ROWS = 50
UPCOMING_VISITS = 5


def staff_names(identity: IdentityService) -> dict[str, str]:
    """Audit agent references of staff accounts, mapped to their usernames and roles."""
    names: dict[str, str] = {}
    for user in identity.list_users():
        if user.role == Role.PATIENT:
            continue
        label = f"{user.username} ({user.role.value.replace('_', ' ')})"
        names[f"user:{user.id}"] = label
        if user.practitioner_id:
            names[f"Practitioner/{user.practitioner_id}"] = label
    return names


@router.get("/me", include_in_schema=False)
def my_record(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    require_role(current, Role.PATIENT)
    patient_id = current.principal.patient_id
    if not patient_id:
        raise NotFound("this account is not linked to a record")
    patient, conditions, observations = load_record(
        current, patient_id, conditions=100, observations=RECENT_OBSERVATIONS
    )
    audit = current.records.trail.audit
    history = None
    if audit is not None:
        events = audit.for_patient(patient_id, limit=HISTORY_ROWS)
        ledger: LedgerService = request.app.state.ledger
        history = access_rows(
            events,
            me=f"Patient/{patient_id}",
            names=staff_names(current.identity),
            ledger=ledger.check_entries(kind="audit", refs=[str(e.seq) for e in events]),
        )
    upcoming = visit_rows(current, patient_id, since=datetime.now(UTC), limit=UPCOMING_VISITS)
    return page(
        request,
        "patient_home.html",
        title="My record",
        upcoming=[v for v in upcoming if v["live"]],
        name=human_name(patient),
        demographics=demographics(patient),
        conditions=condition_rows(conditions),
        observations=observation_rows(observations),
        history=history,
    )


@router.get("/me/access/{seq}/receipt", include_in_schema=False)
def my_access_receipt(request: Request, seq: int, current: Current = Depends(routing.signed_in)) -> Response:
    """A tlog-proof receipt of one access to my record, to check with ``medweave ledger
    verify-receipt`` (or any C2SP tlog-proof verifier). Only events about my own record."""
    require_role(current, Role.PATIENT)
    patient_id = current.principal.patient_id
    audit = current.records.trail.audit
    event = audit.get(seq) if audit is not None and 0 < seq < 2**63 else None
    if event is None or patient_id is None or event.patient_id != patient_id:
        raise NotFound(f"access event {seq} is not known")
    ledger: LedgerService = request.app.state.ledger
    text = ledger.receipt(kind="audit", ref=str(seq))
    name = f"access-{seq}{MEDIA_EXTENSION}"
    return Response(
        text,
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
