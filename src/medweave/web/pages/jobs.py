"""Admin page of background jobs: state and progress of recent jobs, and a cancel button.

The table's rows come from ``/admin/jobs/rows`` too, which HTMX polls every two seconds while
some job is queued or running; once none is, the rows it answers carry no trigger and polling
stops. Jobs store no record content (their messages and results are free of PHI), so the page
shows the stored error message as it is. A cancel goes through the jobs API (``JobClient``):
a queued job is cancelled at once, a running one at its next check.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from medweave.jobs import JobClient, JobInfo, JobState
from medweave.jobs.listing import list_jobs
from medweave.security.principal import Role
from medweave.web.pages import routing
from medweave.web.pages.render import fragment, page
from medweave.web.pages.routing import Current, Form, posted, redirect, require_role

router = APIRouter(route_class=routing.PageRoute, prefix="/admin")
SHOWN = 50
ACTIVE = frozenset({JobState.QUEUED, JobState.RUNNING})
POLL = "every 2s"


def _client(request: Request, current: Current) -> JobClient:
    """The app's job client where it has one, else a client over the record store's database."""
    client = getattr(request.app.state, "jobs", None)
    return client if isinstance(client, JobClient) else JobClient(current.records.engine)


def _rows(current: Current) -> dict[str, Any]:
    jobs: list[JobInfo] = list_jobs(current.records.engine, SHOWN)
    return {
        "jobs": jobs,
        "active": ACTIVE,
        "polling": POLL if any(j.state in ACTIVE for j in jobs) else None,
    }


@router.get("/jobs", include_in_schema=False)
def jobs_page(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    require_role(current, Role.ADMIN)
    cancelled = request.query_params.get("cancelled", "")[:36]
    done = f"Cancellation requested for job {cancelled[:8]}." if cancelled else None
    return page(request, "admin_jobs.html", title="Jobs", done=done, **_rows(current))


@router.get("/jobs/rows", include_in_schema=False)
def jobs_rows(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    require_role(current, Role.ADMIN)
    return fragment("_job_rows.html", csrf_token=current.session.csrf_token, **_rows(current))


@router.post("/jobs/{job_id}/cancel", include_in_schema=False)
def cancel_job(
    request: Request,
    job_id: str,
    form: Form = Depends(posted),
    current: Current = Depends(routing.signed_in),
) -> Response:
    require_role(current, Role.ADMIN)
    job = _client(request, current)
    info = job.get(job_id[:36])  # an unknown job answers the not-found page
    if info.state not in ACTIVE:
        return redirect("/admin/jobs")  # finished meanwhile: nothing to cancel
    job.cancel(info.id)
    return redirect(f"/admin/jobs?cancelled={quote(info.id)}")
