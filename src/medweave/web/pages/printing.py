"""Print lab pages: the worklist, a request (studies and designs), a design (progress and cancel,
slice viewer with the mask, 3D viewer, check report, files, approval), and the chart's request form.

The service (``medweave.printing.service``) decides who may do what and records everything on
the patient; these routes only read forms and render. Uploads are multipart bodies limited to
``MEDWEAVE_PRINT_MAX_VOLUME_MB``; everything else is a small URL-encoded form with its CSRF token.
"""

from __future__ import annotations

import math
import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import Response

from medweave.errors import InvalidInput, NotFound, PayloadTooLarge
from medweave.identity import check_csrf
from medweave.jobs import TERMINAL_STATES, JobClient, JobState
from medweave.printing.service import DESIGN_DEFAULTS, OPEN, PrintLab
from medweave.security.principal import Role
from medweave.web.pages import routing
from medweave.web.pages import session as cookies
from medweave.web.pages.render import fragment, page
from medweave.web.pages.routing import Current, Form, posted, redirect, require_role

router = APIRouter(route_class=routing.PageRoute)
LAB = (Role.LAB_TECHNICIAN, Role.CLINICIAN)
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_DESIGN = re.compile(r"pd_[0-9a-f]{16}")
_FILES = {"part.stl": "model/stl", "part.3mf": "model/3mf", "context.stl": "model/stl"}
POLL = "every 2s"
#: Files of one folder upload (a CT series is a few hundred to a few thousand slices).
MAX_FILES = 5000


def _lab(request: Request) -> PrintLab:
    lab: PrintLab = request.app.state.print_lab
    return lab


def _id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise NotFound("no such print request")
    return value


def _design_id(value: str) -> str:
    if not _DESIGN.fullmatch(value):
        raise NotFound("no such design")
    return value


@router.get("/print", include_in_schema=False)
def worklist(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    require_role(current, *LAB)
    status = request.query_params.get("status", "active")
    if status not in ("active", "completed"):
        status = "active"
    rows = _lab(request).worklist(current.principal, status=status)
    return page(request, "print_worklist.html", title="Print lab", rows=rows, shown=status)


@router.post("/patients/{patient_id}/print-requests", include_in_schema=False)
def create_request(
    request: Request,
    patient_id: str,
    form: Form = Depends(posted),
    current: Current = Depends(routing.signed_in),
) -> Response:
    require_role(current, Role.CLINICIAN)
    request_id = _lab(request).create_request(
        principal=current.principal, patient_id=_id(patient_id), kind=form.get("kind"), note=form.get("note")
    )
    return redirect(f"/print/requests/{request_id}")


def _patient_name(current: Current, lab: PrintLab, patient_id: str) -> str:
    reader = lab.lab_principal(current.principal.subject)
    body = current.records.read(principal=reader, res_type="Patient", res_id=patient_id).body or {}
    names = body.get("name") or [{}]
    first = names[0]
    return " ".join([*first.get("given", []), first.get("family", "")]).strip() or f"Patient/{patient_id}"


@router.get("/print/requests/{request_id}", include_in_schema=False)
def request_page(
    request: Request, request_id: str, current: Current = Depends(routing.signed_in)
) -> Response:
    require_role(current, *LAB)
    lab = _lab(request)
    detail = lab.request_detail(current.principal, _id(request_id))
    row = detail["row"]
    return page(
        request,
        "print_request.html",
        title="Print request",
        detail=detail,
        patient=_patient_name(current, lab, row.patient_id),
        defaults=DESIGN_DEFAULTS[row.kind],
        names=_usernames(current, {d["created_by"] for d in detail["designs"]}),
        pacs=bool(lab.config.pacs_url),
        may_design=request.app.state.jobs is not None,
        accept=".stl,.ply,.obj" if row.kind == "splint" else ".zip,.dcm,.nii,.gz",
    )


def _usernames(current: Current, user_ids: set[str]) -> dict[str, str]:
    """Who started each design, by user name (the tables keep the user id)."""
    names = {}
    for user_id in user_ids:
        try:
            names[user_id] = current.identity.get_user(user_id).username
        except NotFound:
            names[user_id] = "a former user"
    return names


async def _upload(request: Request, max_bytes: int) -> list[tuple[str, bytes]]:
    """The files of a multipart upload (one file, or a browser's folder), after the session's CSRF
    token was checked."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        raise InvalidInput("an upload needs a Content-Length")
    if int(declared) > max_bytes + 1024 * 1024:
        raise PayloadTooLarge("the upload is larger than the print lab's limit")
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=4)
    except Exception as exc:  # the multipart parser's own errors: a malformed body, too many files
        raise InvalidInput("the upload could not be read as a form") from exc
    try:
        session = await run_in_threadpool(cookies.load_session, request)
        token = form.get(cookies.CSRF_FIELD)
        if session is None or not isinstance(token, str) or not check_csrf(session, token):
            raise routing.CsrfRejected("the form's CSRF token is missing or wrong")
        files = [
            f
            for f in form.getlist("file") + form.getlist("folder")
            if isinstance(f, UploadFile) and f.filename
        ]
        if not files:
            raise InvalidInput("choose a file or a folder to upload")
        return [(f.filename or "file", await f.read()) for f in files]
    finally:
        await form.close()


@router.post("/print/requests/{request_id}/upload", include_in_schema=False)
async def upload(
    request: Request, request_id: str, current: Current = Depends(routing.signed_in)
) -> Response:
    require_role(current, *LAB)
    lab = _lab(request)
    files = await _upload(request, lab.config.max_bytes)
    await run_in_threadpool(lab.attach_files, current.principal, _id(request_id), files=files)
    return redirect(f"/print/requests/{request_id}")


@router.post("/print/requests/{request_id}/pull", include_in_schema=False)
def pull(
    request: Request,
    request_id: str,
    form: Form = Depends(posted),
    current: Current = Depends(routing.signed_in),
) -> Response:
    require_role(current, *LAB)
    _lab(request).attach_from_pacs(
        current.principal, _id(request_id), study_uid=form.get("study"), series_uid=form.get("series") or None
    )
    return redirect(f"/print/requests/{request_id}")


#: Design fields that may be left empty to mean "none" (the preset's threshold; no uniform plate).
NULLABLE = frozenset({"iso", "hi", "thickness_mm"})


def _params(kind: str, form: Form) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, default in DESIGN_DEFAULTS[kind].items():
        raw = form.get(key)
        if key == "preset":
            out[key] = raw or "bone"
        elif key == "seeds":
            continue  # set by clicks on the slices, not by this form
        elif raw == "":
            out[key] = None if key in NULLABLE and kind != "splint" else default
        else:
            try:
                value = float(raw)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise InvalidInput(f"{key.replace('_', ' ')} must be a number")
            out[key] = value
    return out


@router.post("/print/requests/{request_id}/designs", include_in_schema=False)
def start_design(
    request: Request,
    request_id: str,
    form: Form = Depends(posted),
    current: Current = Depends(routing.signed_in),
) -> Response:
    require_role(current, *LAB)
    jobs = _jobs(request)
    lab = _lab(request)
    row = lab.open_request(current.principal, _id(request_id))
    design_id = lab.start_design(
        current.principal, row.id, input_id=form.get("input"), params=_params(row.kind, form)
    )
    _enqueue(lab, jobs, design_id)
    return redirect(f"/print/designs/{design_id}")


def _number(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int) or abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _shown(value: Any) -> str:
    """A check's value or limit as one line: numbers rounded, nested lists (a rotation) left out."""
    if value is None:
        return ""
    if isinstance(value, dict):
        parts = [
            f"{k.replace('_', ' ')} {_shown(v)}" for k, v in value.items() if not isinstance(v, dict | list)
        ]
        return "; ".join(parts)
    if isinstance(value, list):
        flat = all(not isinstance(v, list) for v in value)
        return " \u00d7 ".join(_number(v) for v in value) if flat else ""
    return _number(value)


def _checks(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for c in (report or {}).get("checks", []):
        rows.append(
            {
                **c,
                "label": c["name"].replace("_", " "),
                "value_text": _shown(c["value"]),
                "limit_text": _shown(c["limit"]),
            }
        )
    return rows


def _jobs(request: Request) -> JobClient:
    """The app's job client; designs run only as background jobs."""
    jobs: JobClient | None = request.app.state.jobs
    if jobs is None:
        raise InvalidInput("this server runs no background jobs")
    return jobs


def _enqueue(lab: PrintLab, jobs: JobClient, design_id: str) -> None:
    try:
        job_id = jobs.enqueue("print.design", {"design_id": design_id})
    except Exception:
        lab.settle(design_id, None)  # never queued: it must not hold the request
        raise
    lab.attach_job(design_id, job_id)


def _progress(request: Request, current: Current, design_id: str) -> dict[str, Any]:
    lab = _lab(request)
    d = lab.design(current.principal, _design_id(design_id))
    job = lab.job_of(d)
    if d["status"] in OPEN and job is not None and job.state in TERMINAL_STATES:
        lab.settle(d["id"], job)  # the job ended without the design knowing (a worker died)
        d = lab.design(current.principal, d["id"])
    active = d["status"] in OPEN
    return {"d": d, "job": job, "polling": POLL if active else None, "active": active}


@router.get("/print/designs/{design_id}", include_in_schema=False)
def design_page(request: Request, design_id: str, current: Current = Depends(routing.signed_in)) -> Response:
    require_role(current, *LAB)
    ctx = _progress(request, current, design_id)
    d = ctx["d"]
    meshes = []
    if d["files"]:
        meshes.append(
            {"url": f"/print/designs/{d['id']}/files/part.stl", "name": d["kind"], "color": "#3b82f6"}
        )
        if d["kind"] != "model":
            meshes.append(
                {
                    "url": f"/print/designs/{d['id']}/files/context.stl",
                    "name": "skull" if d["kind"] == "implant" else "limb",
                    "color": "#e8e0d0",
                    "opacity": 0.6,
                }
            )
    slices = (d.get("summary") or {}).get("preview_slices")
    return page(
        request,
        "print_design.html",
        title=f"Design {d['iteration']}",
        meshes=meshes,
        slices=slices,
        focus=(d.get("summary") or {}).get("preview_focus"),
        checks=_checks(d["report"]),
        decider=_usernames(current, {d["decided_by"]}).get(d["decided_by"], "") if d["decided_by"] else "",
        may_keep=d["kind"] == "model" and d["status"] == "ready" and request.app.state.jobs is not None,
        may_decide=current.user.role == Role.CLINICIAN and d["status"] == "ready",
        **ctx,
    )


@router.get("/print/designs/{design_id}/progress", include_in_schema=False)
def design_progress(
    request: Request, design_id: str, current: Current = Depends(routing.signed_in)
) -> Response:
    require_role(current, *LAB)
    ctx = _progress(request, current, design_id)
    if not ctx["active"]:  # finished: reload the whole page to show the result
        return Response(status_code=200, headers={"HX-Refresh": "true"})
    return fragment("_print_progress.html", csrf_token=current.session.csrf_token, **ctx)


@router.post("/print/designs/{design_id}/cancel", include_in_schema=False)
def cancel(
    request: Request,
    design_id: str,
    form: Form = Depends(posted),
    current: Current = Depends(routing.signed_in),
) -> Response:
    require_role(current, *LAB)
    ctx = _progress(request, current, design_id)
    d = ctx["d"]
    jobs: JobClient | None = request.app.state.jobs
    if ctx["active"] and d["job_id"]:
        client = jobs if jobs is not None else JobClient(current.records.engine)
        info = client.cancel(d["job_id"])
        if info.state == JobState.CANCELLED:
            _lab(request).cancel_design(d["id"])
    elif ctx["active"]:
        _lab(request).settle(d["id"], None)
    return redirect(f"/print/designs/{d['id']}")


@router.post("/print/designs/{design_id}/keep", include_in_schema=False)
def keep(
    request: Request,
    design_id: str,
    form: Form = Depends(posted),
    current: Current = Depends(routing.signed_in),
) -> Response:
    """Click to keep: a new iteration keeping the component under the clicked voxel."""
    require_role(current, *LAB)
    jobs = _jobs(request)
    try:
        i, j, k = (int(form.get(name)) for name in ("i", "j", "k"))
    except ValueError:
        raise InvalidInput("click on the slice to choose a voxel") from None
    lab = _lab(request)
    new_id = lab.keep_component(current.principal, _design_id(design_id), i=i, j=j, k=k)
    _enqueue(lab, jobs, new_id)
    return redirect(f"/print/designs/{new_id}")


@router.post("/print/designs/{design_id}/decision", include_in_schema=False)
def decide(
    request: Request,
    design_id: str,
    form: Form = Depends(posted),
    current: Current = Depends(routing.signed_in),
) -> Response:
    require_role(current, Role.CLINICIAN)
    decision = form.get("decision")
    if decision not in ("approve", "reject"):
        raise InvalidInput("approve or reject")
    _lab(request).decide(
        current.principal, _design_id(design_id), approve=decision == "approve", reason=form.get("reason")
    )
    return redirect(f"/print/designs/{design_id}")


@router.get("/print/designs/{design_id}/files/{name}", include_in_schema=False)
def download(
    request: Request, design_id: str, name: str, current: Current = Depends(routing.signed_in)
) -> Response:
    require_role(current, *LAB)
    if name not in _FILES:
        raise NotFound("no such file")
    data = _lab(request).file(current.principal, _design_id(design_id), name)
    headers = {
        "Content-Disposition": f'attachment; filename="{design_id}-{name}"',
        "Cache-Control": "no-store",
    }
    return Response(data, media_type=_FILES[name], headers=headers)


@router.get("/print/designs/{design_id}/slices/{k}.png", include_in_schema=False)
def slice_image(
    request: Request, design_id: str, k: int, current: Current = Depends(routing.signed_in)
) -> Response:
    require_role(current, *LAB)
    layer = request.query_params.get("layer", "image")
    data = _lab(request).slice_png(current.principal, _design_id(design_id), k, layer)
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})
