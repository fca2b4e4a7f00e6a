"""Telehealth pages: booking, my visits, the visit itself, and guests' one-time links.

Patients book, reschedule and cancel from "My visits"; staff book for a patient in their care
from the same page (``?patient=``). The visit page holds the device check, check-in, the waiting
room's chat and the call (``static/js/visit.js``). The clinician's day and availability pages
are in ``pages.clinic``. Every record read or
written goes through ``RecordService`` as the signed-in user; the scheduling state (booked,
waiting, in the call) comes from the bookings table and names nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from medweave.errors import Conflict, InvalidInput, NotFound
from medweave.records import fhir
from medweave.security.principal import CARE_ROLES, Role
from medweave.telehealth import booking, schedule, visits
from medweave.telehealth.availability import SlotTime
from medweave.web import guests
from medweave.web.pages import routing
from medweave.web.pages.render import fragment, page
from medweave.web.pages.routing import Current, Form, redirect, require_role
from medweave.web.pages.views import human_name

router = APIRouter(route_class=routing.PageRoute)
BOOKING_DAYS = 14
MAX_SLOTS_SHOWN = 60


@dataclass(frozen=True)
class Shown:
    """An instant as the page shows it: ISO for the browser's own zone, text in the clinic's."""

    iso: str
    text: str


def shown(instant: datetime, zone: str) -> Shown:
    local = instant.astimezone(ZoneInfo(zone))
    return Shown(instant.astimezone(UTC).isoformat(), f"{local:%a %d %b %Y, %H:%M} ({local.tzname()})")


def _clinicians(current: Current) -> dict[str, str]:
    """Practitioner id -> the name patients see (the clinician's username), of published ones."""
    published = set(schedule.published_practitioners(current.records.engine))
    return {
        u.practitioner_id: u.username
        for u in current.identity.list_users()
        if u.practitioner_id in published and u.role in CARE_ROLES
    }


def zone_of(current: Current, practitioner_id: str) -> str:
    try:
        return schedule.load(current.records.engine, practitioner_id).availability.timezone
    except NotFound:
        return "UTC"


def _patient_for(current: Current, requested: str) -> str:
    """Whose visits: the patient themself, or (staff) a patient in their care."""
    if current.user.role == Role.PATIENT:
        if not current.principal.patient_id:
            raise NotFound("this account is not linked to a record")
        return current.principal.patient_id
    require_role(current, *CARE_ROLES)
    if not fhir.valid_id(requested):
        raise NotFound("no such patient")
    current.records.read(principal=current.principal, res_type="Patient", res_id=requested)  # in my care?
    return requested


def _visit_for(current: Current, appointment_id: str) -> tuple[visits.Visit, str]:
    if not fhir.valid_id(appointment_id):
        raise NotFound("no such visit")
    visit = visits.load(current.records.engine, appointment_id)
    return visit, visits.participant(visit, current.principal)


# -- patients: my visits, booking ------------------------------------------------------------------


def visit_rows(
    current: Current, patient_id: str, *, since: datetime, limit: int | None = None
) -> list[dict[str, Any]]:
    """A patient's visits from ``since`` on, as "My visits" and the home page show them."""
    names = _clinicians(current)
    rows = []
    for v in visits.for_patient(current.records.engine, patient_id, since=since)[:limit]:
        rows.append(
            {
                "id": v.appointment_id,
                "when": shown(v.start, zone_of(current, v.practitioner_id)),
                "with": names.get(v.practitioner_id, "your clinician"),
                "status": "cancelled" if v.status == "cancelled" else v.state,
                "modality": v.modality,
                "live": v.status == "booked" and v.state in ("scheduled", "waiting", "in-call"),
                "movable": v.status == "booked" and v.state == "scheduled",
            }
        )
    return rows


@router.get("/visits", include_in_schema=False)
def my_visits(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    if current.user.role != Role.PATIENT:
        raise routing.Redirect("/clinic/today")
    patient_id = _patient_for(current, "")
    rows = visit_rows(current, patient_id, since=datetime.now(UTC) - timedelta(days=1))
    return page(request, "visits.html", title="My visits", visits=rows, bookable=bool(_clinicians(current)))


def _slot_choices(
    current: Current, practitioner_id: str, code: str
) -> tuple[schedule.Published, list[Shown]]:
    published = schedule.load(current.records.engine, practitioner_id)
    visit_type = published.visit(code)
    now = datetime.now(UTC)
    free = schedule.free_slots(
        current.records.engine,
        published,
        visit_type,
        start=now + timedelta(minutes=5),
        end=now + timedelta(days=BOOKING_DAYS),
    )
    return published, [shown(s.start, published.availability.timezone) for s in free[:MAX_SLOTS_SHOWN]]


@router.get("/visits/book", include_in_schema=False)
def book_page(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    q = request.query_params
    patient_id = _patient_for(current, q.get("patient", ""))
    names = _clinicians(current)
    practitioner = q.get("clinician", "") if q.get("clinician", "") in names else ""
    moving = q.get("move", "")
    if moving:
        visit, _role = (
            _visit_for(current, moving)
            if current.user.role == Role.PATIENT
            else (visits.load(current.records.engine, moving), "")
        )
        if visit.patient_id != patient_id:
            raise NotFound("no such visit")
        practitioner = visit.practitioner_id
    kinds: list[dict[str, Any]] = []
    slots_shown: list[Shown] = []
    code = q.get("type", "")
    if practitioner:
        published = schedule.load(current.records.engine, practitioner)
        kinds = [
            {
                "code": k.code,
                "text": f"{k.code}: {k.minutes} minutes, {'video' if k.modality == 'video' else 'in person'}",
            }
            for k in published.visit_types
        ]
        if code in {k.code for k in published.visit_types}:
            _published, slots_shown = _slot_choices(current, practitioner, code)
    return page(
        request,
        "book.html",
        title="Book a visit",
        clinicians=sorted(names.items(), key=lambda kv: kv[1]),
        clinician=practitioner,
        kinds=kinds,
        kind=code,
        slots=slots_shown,
        patient=patient_id if current.user.role != Role.PATIENT else "",
        move=moving,
        error=None,
    )


@router.post("/visits/book", include_in_schema=False)
def book(
    request: Request, form: Form = Depends(routing.posted), current: Current = Depends(routing.signed_in)
) -> Response:
    patient_id = _patient_for(current, form.get("patient"))
    practitioner = form.get("clinician")
    if practitioner not in _clinicians(current):
        raise NotFound("no such clinician")
    published = schedule.load(current.records.engine, practitioner)
    visit_type = published.visit(form.get("type"))
    try:
        start = datetime.fromisoformat(form.get("start"))
    except ValueError:
        raise InvalidInput("choose one of the times offered") from None
    if start.tzinfo is None:
        raise InvalidInput("choose one of the times offered")
    now = datetime.now(UTC)
    free = schedule.free_slots(
        current.records.engine, published, visit_type, start=start, end=start + timedelta(seconds=1)
    )
    if start < now or not free:
        raise Conflict("that time is no longer free; choose another")
    slot = SlotTime(free[0].start, free[0].end)
    moving = form.get("move")
    if moving:
        visit = visits.load(current.records.engine, moving) if fhir.valid_id(moving) else None
        if visit is None or visit.patient_id != patient_id or visit.practitioner_id != practitioner:
            raise NotFound("no such visit")
        booking.reschedule(current.records, principal=current.principal, appointment_id=moving, slot=slot)
        appointment_id = moving
    else:
        stored = booking.book(
            current.records,
            principal=current.principal,
            patient_id=patient_id,
            practitioner_id=practitioner,
            slot=slot,
            visit=visit_type,
        )
        appointment_id = stored.res_id
    return redirect(
        f"/visits/{appointment_id}"
        if current.user.role == Role.PATIENT
        else f"/clinic/visits/{appointment_id}/booked"
    )


@router.get("/clinic/visits/{appointment_id}/booked", include_in_schema=False)
def booked_for_patient(
    request: Request, appointment_id: str, current: Current = Depends(routing.signed_in)
) -> Response:
    require_role(current, *CARE_ROLES)
    if not fhir.valid_id(appointment_id):
        raise NotFound("no such visit")
    visit = visits.load(current.records.engine, appointment_id)
    if visit.patient_id is None:
        raise NotFound("no such visit")
    current.records.read(principal=current.principal, res_type="Appointment", res_id=appointment_id)
    return page(
        request,
        "booked.html",
        title="Visit booked",
        start=shown(visit.start, zone_of(current, visit.practitioner_id)),
        patient_id=visit.patient_id,
        appointment_id=appointment_id,
    )


@router.post("/visits/{appointment_id}/cancel", include_in_schema=False)
def cancel(
    appointment_id: str, _form: Form = Depends(routing.posted), current: Current = Depends(routing.signed_in)
) -> Response:
    if not fhir.valid_id(appointment_id):
        raise NotFound("no such visit")
    booking.cancel(current.records, principal=current.principal, appointment_id=appointment_id)
    return redirect("/visits")


# -- the visit page --------------------------------------------------------------------------------


@router.get("/visits/{appointment_id}", include_in_schema=False)
def visit_page(
    request: Request, appointment_id: str, current: Current = Depends(routing.signed_in)
) -> Response:
    visit, role = _visit_for(current, appointment_id)
    zone = zone_of(current, visit.practitioner_id)
    patient_name = ""
    note = None
    if role == "clinician":
        patient = current.records.read(
            principal=current.principal, res_type="Patient", res_id=visit.patient_id or ""
        )
        patient_name = human_name(patient.body or {})
        note = visits.read_note(current.records, principal=current.principal, visit=visit)
    now = datetime.now(UTC)
    return page(
        request,
        "visit.html",
        title="Video visit",
        visit=visit,
        role=role,
        when=shown(visit.start, zone),
        patient_name=patient_name,
        check_in_open=visit.start - visits.CHECK_IN_EARLY <= now < visit.end,
        note=note,
        invite_link=None,
    )


@router.post("/visits/{appointment_id}/check-in", include_in_schema=False)
def check_in(
    appointment_id: str, _form: Form = Depends(routing.posted), current: Current = Depends(routing.signed_in)
) -> Response:
    _visit_for(current, appointment_id)
    visits.check_in(
        current.records, principal=current.principal, appointment_id=appointment_id, now=datetime.now(UTC)
    )
    return redirect(f"/visits/{appointment_id}")


async def _call_step(request: Request, current: Current, appointment_id: str, step: Any, state: str) -> None:
    """Admit or hang up (``visits.admit``/``visits.end``), then tell everyone in the call."""
    await run_in_threadpool(_visit_for, current, appointment_id)
    await run_in_threadpool(
        lambda: step(
            current.records, principal=current.principal, appointment_id=appointment_id, now=datetime.now(UTC)
        )
    )
    await request.app.state.calls.hub.close_room(appointment_id, {"type": "state", "state": state})


@router.post("/visits/{appointment_id}/admit", include_in_schema=False)
async def admit(
    request: Request,
    appointment_id: str,
    _form: Form = Depends(routing.posted),
    current: Current = Depends(routing.signed_in),
) -> Response:
    await _call_step(request, current, appointment_id, visits.admit, "in-call")
    return redirect(f"/visits/{appointment_id}")


@router.post("/visits/{appointment_id}/end", include_in_schema=False)
async def end(
    request: Request,
    appointment_id: str,
    _form: Form = Depends(routing.posted),
    current: Current = Depends(routing.signed_in),
) -> Response:
    await _call_step(request, current, appointment_id, visits.end, "finished")
    return redirect(f"/visits/{appointment_id}#note")


@router.post("/visits/{appointment_id}/note", include_in_schema=False)
def save_note(
    appointment_id: str, form: Form = Depends(routing.posted), current: Current = Depends(routing.signed_in)
) -> Response:
    _visit_for(current, appointment_id)
    soap = visits.Soap(*(form.fields.get(part, "").strip() for part in visits.SOAP_PARTS))
    visits.save_note(current.records, principal=current.principal, appointment_id=appointment_id, soap=soap)
    return redirect(f"/visits/{appointment_id}?saved=1#note")


@router.post("/visits/{appointment_id}/invite", include_in_schema=False)
def invite(
    request: Request,
    appointment_id: str,
    form: Form = Depends(routing.posted),
    current: Current = Depends(routing.signed_in),
) -> Response:
    visit, _role = _visit_for(current, appointment_id)
    secret = visits.invite(
        current.records.engine,
        principal=current.principal,
        visit=visit,
        label=form.get("label"),
        now=datetime.now(UTC),
    )
    base = str(request.app.state.settings.base_url).rstrip("/")
    label = " ".join(form.get("label").split())
    link = f"{base}/join#{secret}"  # after '#': browsers never send it, so no server logs it
    if request.headers.get("hx-request") == "true":  # from the call page: stay in the call
        return fragment("_invite_link.html", link=link, label=label)
    return page(request, "invite.html", title="Invitation link", link=link, visit=visit, label=label)


# -- guests ----------------------------------------------------------------------------------------


@router.get("/join", include_in_schema=False)
def join_page(request: Request) -> Response:
    """The landing page of a one-time link; its script posts the secret after ``#``."""
    return page(request, "join.html", title="Join a video visit")


@router.get("/visits/{appointment_id}/guest", include_in_schema=False)
def guest_page(request: Request, appointment_id: str) -> Response:
    if not fhir.valid_id(appointment_id):
        raise NotFound("no such visit")
    if guests.guest_pass(request.app.state.calls, request, appointment_id, now=datetime.now(UTC)) is None:
        raise NotFound("no such visit")  # only the browser that used the link sees the visit
    visit = visits.load(request.app.state.records.engine, appointment_id)
    return page(
        request,
        "visit.html",
        title="Video visit",
        visit=visit,
        role="guest",
        when=shown(visit.start, "UTC"),
        patient_name="",
        check_in_open=False,
        note=None,
        invite_link=None,
    )
