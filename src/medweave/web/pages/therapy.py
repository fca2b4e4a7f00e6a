"""Therapy pages: the patient's chat with the assistant and their score history; the clinician's
caseload dashboard (live alerts, acknowledgement) and a patient's therapy view (score trends with
bands and reliable change, item-level answers, the pathway recommendation with confirm and
override).

The chat works without JavaScript: the form posts, the page comes back with the new messages
(and the newest in view). The dashboard polls ``/therapy/alerts.json`` every second, which holds
alert ids, levels and times of the clinician's own patients only, and announces new alerts in a
live region; acknowledging is a form post.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from medweave.errors import InvalidInput, NotFound
from medweave.records import fhir
from medweave.security.principal import CARE_ROLES, Role
from medweave.therapy import alerts, caseload, pathway
from medweave.therapy.conversations import Conversations
from medweave.therapy.instruments import INSTRUMENTS
from medweave.therapy.outcomes import outcome
from medweave.web.pages import routing
from medweave.web.pages.charts import Point, Series, Shade, trend_svg
from medweave.web.pages.render import page
from medweave.web.pages.routing import Current, Form, Redirect, require_role
from medweave.web.pages.views import entries, human_name

router = APIRouter(route_class=routing.PageRoute)
CASELOAD_SIZE = 1000


def _conversations(request: Request) -> Conversations:
    found: Conversations = request.app.state.conversations
    return found


def _chart(
    title: str, unit: str, points: list[tuple[datetime, int]], chart_id: str, code: str | None = None
) -> Markup | None:
    """A trend of at least two scores; an instrument's severity bands are shaded behind it."""
    if len(points) < 2:
        return None
    series = Series(chart_id, title, unit, tuple(Point(when, float(v)) for when, v in points))
    bands = INSTRUMENTS[code].bands if code else ()
    shades = [Shade(b.low, b.high + 1 if b.high < INSTRUMENTS[code].max_total else b.high, b.label)
              for b in bands] if code else []  # fmt: skip
    return Markup(trend_svg(series, chart_id=chart_id, shades=shades))  # noqa: S704 - our own escaped SVG


def _history(current: Current, patient_id: str) -> dict[str, Any]:
    found = caseload.scores(current.records, principal=current.principal, patient_id=patient_id)
    mood = caseload.moods(current.records, principal=current.principal, patient_id=patient_id)
    charts = []
    for code, unit in (("phq9", "points"), ("gad7", "points")):
        points = found[code]
        svg = _chart(
            f"{INSTRUMENTS[code].title} total",
            unit,
            [(p.when, p.value) for p in points],
            f"trend-{code}",
            code,
        )
        charts.append({"code": code, "title": INSTRUMENTS[code].title, "svg": svg, "points": points})
    return {"charts": charts, "mood": mood, "mood_svg": _chart("Mood (0-10)", "", mood, "trend-mood")}


# -- the patient -----------------------------------------------------------------------------------


def _patient_id(current: Current) -> str:
    require_role(current, Role.PATIENT)
    if not current.principal.patient_id:
        raise NotFound("this account is not linked to a record")
    return current.principal.patient_id


@router.get("/therapy", include_in_schema=False)
def chat_page(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    patient_id = _patient_id(current)
    talk = _conversations(request)
    messages, choices = talk.transcript(principal=current.principal, patient_id=patient_id)
    return page(
        request,
        "therapy_chat.html",
        title="Support assistant",
        messages=messages,
        choices=choices,
        place=talk.place,
        **_history(current, patient_id),
    )


@router.post("/therapy/say", include_in_schema=False)
def say(
    request: Request, form: Form = Depends(routing.posted), current: Current = Depends(routing.signed_in)
) -> Response:
    patient_id = _patient_id(current)
    text = form.fields.get("text", "")
    if not text.strip():
        raise Redirect("/therapy#compose")
    talk = _conversations(request)
    talk.say(principal=current.principal, patient_id=patient_id, text=text, now=datetime.now(UTC))
    raise Redirect("/therapy#latest")


# -- the clinician ---------------------------------------------------------------------------------


def _judgement(fields: Any) -> caseload.Judgement:
    """The clinician's ticks (query string or form): duration, functioning, preferences."""

    def on(name: str) -> bool:
        return fields.get(name, "") in ("1", "on", "true")

    prefs = tuple(p for p in pathway.PREFERENCES if on(f"pref_{p}"))
    if {"prefers_group", "prefers_individual"} <= set(prefs):
        raise InvalidInput("choose group or individual, not both")
    return caseload.Judgement(persistent=on("persistent"), impaired=on("impaired"), preferences=prefs)


def _recommend(
    request: Request,
    current: Current,
    patient_id: str,
    judged: caseload.Judgement,
    found: dict[str, list[caseload.ScorePoint]] | None = None,
) -> tuple[pathway.Recommendation, pathway.PathwayInput]:
    """The pathway recommendation for a patient the signed-in clinician may see."""
    _staff(current)
    if not fhir.valid_id(patient_id):
        raise NotFound("no such patient")
    return caseload.recommendation(
        current.records,
        principal=current.principal,
        patient_id=patient_id,
        now=datetime.now(UTC),
        review_after=request.app.state.settings.therapy_review_after_sessions,
        judged=judged,
        found=found,
    )


def _staff(current: Current) -> str:
    require_role(current, *CARE_ROLES)
    if not current.principal.practitioner_id:
        raise NotFound("this account is not linked to a practitioner")
    return current.principal.practitioner_id


def _names(current: Current) -> dict[str, str]:
    bundle = current.records.search(
        principal=current.principal, res_type="Patient", params=[("_count", str(CASELOAD_SIZE))]
    )
    return {str(p["id"]): human_name(p) for p in entries(bundle)}


@router.get("/therapy/caseload", include_in_schema=False)
def dashboard(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    _staff(current)
    names = _names(current)
    rows = caseload.caseload(
        current.records,
        principal=current.principal,
        names=names,
        now=datetime.now(UTC),
        review_after=request.app.state.settings.therapy_review_after_sessions,
    )
    return page(request, "therapy_caseload.html", title="Therapy caseload", rows=rows, names=names)


@router.get("/therapy/alerts.json", include_in_schema=False)
async def alert_feed(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    practitioner = _staff(current)

    def read() -> list[dict[str, Any]]:
        with current.records.engine.connect() as conn:
            return [a.as_json() for a in caseload.live_alerts(conn, practitioner_id=practitioner)]

    return JSONResponse({"alerts": await run_in_threadpool(read)}, headers={"Cache-Control": "no-store"})


@router.post("/therapy/alerts/{alert_id}/acknowledge", include_in_schema=False)
def acknowledge(
    request: Request,
    alert_id: str,
    _form: Form = Depends(routing.posted),
    current: Current = Depends(routing.signed_in),
) -> Response:
    _staff(current)
    if not fhir.valid_id(alert_id):
        raise NotFound("no such alert")
    done = alerts.acknowledge(
        current.records, principal=current.principal, alert_id=alert_id, now=datetime.now(UTC)
    )
    back = request.query_params.get("back", "")
    target = f"/therapy/patients/{done.patient_id}" if back == "patient" else "/therapy/caseload"
    raise Redirect(target)


@router.get("/therapy/patients/{patient_id}", include_in_schema=False)
def patient_view(
    request: Request, patient_id: str, current: Current = Depends(routing.signed_in)
) -> Response:
    _staff(current)
    if not fhir.valid_id(patient_id):
        raise NotFound("no such patient")
    patient = (
        current.records.read(principal=current.principal, res_type="Patient", res_id=patient_id).body or {}
    )
    judged = _judgement(request.query_params)
    history = _history(current, patient_id)
    phq, gad = history["charts"][0]["points"], history["charts"][1]["points"]
    recommended, data = _recommend(request, current, patient_id, judged, {"phq9": phq, "gad7": gad})
    with current.records.engine.connect() as conn:
        open_alerts = alerts.alerts_for(conn, [patient_id])
    items = {
        code: caseload.latest_items(
            current.records, principal=current.principal, patient_id=patient_id, code=code
        )
        for code in ("phq9", "gad7")
    }
    plans = caseload.plans(current.records, principal=current.principal, patient_id=patient_id)
    course = None
    if len(phq) >= 2 and len(gad) >= 2:  # NHS Talking Therapies needs both, first and last
        course = outcome(phq9=(phq[0].value, phq[-1].value), gad7=(gad[0].value, gad[-1].value)).as_json()
    return page(
        request,
        "therapy_patient.html",
        title=f"Therapy: {human_name(patient)}",
        name=human_name(patient),
        patient_id=patient_id,
        alerts=open_alerts,
        items=items,
        titles={code: INSTRUMENTS[code].title for code in items},
        recommended=recommended,
        pathway_input=data,
        plans=list(reversed(plans)),
        steps=pathway.STEPS,
        judged=judged,
        preferences=pathway.PREFERENCES,
        error=request.query_params.get("error", "")[:200],
        course=course,
        **history,
    )


@router.post("/therapy/patients/{patient_id}/pathway", include_in_schema=False)
def decide(
    request: Request,
    patient_id: str,
    form: Form = Depends(routing.posted),
    current: Current = Depends(routing.signed_in),
) -> Response:
    judged = _judgement(form.fields)
    recommended, _ = _recommend(request, current, patient_id, judged)
    raw = form.fields.get("step", "").strip()
    if raw and (not raw.isdigit() or int(raw) not in pathway.STEPS):
        raise InvalidInput("choose a step from 1 to 4")
    try:
        caseload.decide(
            current.records,
            principal=current.principal,
            patient_id=patient_id,
            recommended=recommended,
            chosen_step=int(raw) if raw else None,
            reason=form.fields.get("reason", ""),
            now=datetime.now(UTC),
            judged=judged,
        )
    except pathway.InvalidDecision as exc:
        raise Redirect(f"/therapy/patients/{patient_id}?error={quote(str(exc), safe='')}#pathway") from None
    raise Redirect(f"/therapy/patients/{patient_id}#pathway")
