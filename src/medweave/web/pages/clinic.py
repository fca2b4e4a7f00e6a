"""The clinician's telehealth pages: the day's visits and waiting room, and availability.

"Today's visits" lists the local day (and, past midnight, any visit whose check-in has opened,
and anyone still waiting or in a call) and polls who is waiting and for how long, as ids and
times only (``/clinic/queue.json``), so polling reads no record and writes no audit event.
"My availability" publishes the rules that make slots (``telehealth.schedule``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from medweave.errors import NotFound
from medweave.security.principal import CARE_ROLES
from medweave.telehealth import hours_text, schedule, visits
from medweave.telehealth.availability import Availability, AvailabilityError
from medweave.web.pages import routing
from medweave.web.pages.render import page
from medweave.web.pages.routing import Current, Form, redirect, require_role
from medweave.web.pages.views import human_name
from medweave.web.pages.visits import shown, zone_of

router = APIRouter(route_class=routing.PageRoute)


@router.get("/clinic/today", include_in_schema=False)
def today(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    require_role(current, *CARE_ROLES)
    practitioner = current.principal.practitioner_id
    if not practitioner:
        raise NotFound("this account is not linked to a practitioner")
    zone = ZoneInfo(zone_of(current, practitioner))
    local_day = datetime.now(zone).date()
    day = datetime.combine(local_day, datetime.min.time(), zone)
    # The local day, and past midnight any visit whose check-in has already opened; a patient
    # still waiting or in the call from earlier stays listed until the visit ends.
    end = max(day + timedelta(days=1), datetime.now(UTC) + visits.CHECK_IN_EARLY)
    found = visits.for_practitioner(current.records.engine, practitioner, start=day, end=end)
    listed = {v.appointment_id for v in found}
    found += [v for v in visits.queue(current.records.engine, practitioner) if v.appointment_id not in listed]
    found.sort(key=lambda v: v.start)
    patients = {v.patient_id for v in found if v.patient_id}
    names: dict[str, str] = {}
    if patients:
        bundle = current.records.search(
            principal=current.principal, res_type="Patient", params=[("_id", ",".join(sorted(patients)))]
        )
        for entry in bundle.get("entry", []):
            resource = entry.get("resource", {})
            names[str(resource.get("id"))] = human_name(resource)
    rows = [
        {
            "id": v.appointment_id,
            "when": shown(v.start, zone.key),
            "patient": names.get(v.patient_id or "", "(not in your care)"),
            "patient_id": v.patient_id,
            "state": v.state,
            "modality": v.modality,
        }
        for v in found
    ]
    return page(request, "today.html", title="Today's visits", rows=rows, day=local_day)


@router.get("/clinic/queue.json", include_in_schema=False)
def queue_json(current: Current = Depends(routing.signed_in)) -> Response:
    """Who is waiting, for how long, and who is in the call: ids and times only, no names."""
    require_role(current, *CARE_ROLES)
    now = datetime.now(UTC)
    rows = visits.queue(current.records.engine, current.principal.practitioner_id or "")
    return JSONResponse(
        {
            "visits": [
                {
                    "id": v.appointment_id,
                    "state": v.state,
                    "waitedSeconds": int(v.waited(now).total_seconds()),
                }
                for v in rows
            ]
        }
    )


@router.get("/schedule", include_in_schema=False)
def schedule_page(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    require_role(current, *CARE_ROLES)
    try:
        published = schedule.load(current.records.engine, current.principal.practitioner_id or "")
        values = {
            "timezone": published.availability.timezone,
            "hours": hours_text.format_hours(published.availability.hours),
            "closures": hours_text.format_closures(
                published.availability.closures, published.availability.timezone
            ),
            "visit_types": hours_text.format_visit_types(published.visit_types),
        }
    except NotFound:
        values = {
            "timezone": "Europe/London",
            "hours": "Mon 09:00-12:30\nTue 09:00-12:30\nWed 13:00-17:00",
            "closures": "",
            "visit_types": "standard 20 min +10 video\nfirst 40 min +5 video",
        }
    return page(
        request,
        "schedule.html",
        title="My availability",
        values=values,
        error=None,
        saved=bool(request.query_params.get("saved")),
    )


@router.post("/schedule", include_in_schema=False)
def publish_schedule(
    request: Request, form: Form = Depends(routing.posted), current: Current = Depends(routing.signed_in)
) -> Response:
    require_role(current, *CARE_ROLES)
    practitioner = current.principal.practitioner_id
    if not practitioner:
        raise NotFound("this account is not linked to a practitioner")
    values = {name: form.fields.get(name, "") for name in ("timezone", "hours", "closures", "visit_types")}
    try:
        zone = values["timezone"].strip()
        availability = Availability(
            zone,
            hours_text.parse_hours(values["hours"]),
            hours_text.parse_closures(values["closures"], zone) if _known(zone) else (),
        )
        kinds = hours_text.parse_visit_types(values["visit_types"])
    except AvailabilityError as exc:
        return page(
            request,
            "schedule.html",
            status=400,
            title="My availability",
            values=values,
            error=str(exc),
            saved=False,
        )
    schedule.publish(
        current.records,
        principal=current.principal,
        practitioner_id=practitioner,
        availability=availability,
        visit_types=kinds,
        now=datetime.now(UTC),
    )
    return redirect("/schedule?saved=1")


def _known(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except (ValueError, KeyError, OSError):
        return False
    return True
