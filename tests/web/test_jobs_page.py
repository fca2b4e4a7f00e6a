"""The admin jobs page: progress of stored jobs, polling while one is active, cancel with CSRF.

Jobs are real: a ``JobRunner`` over the test database runs a job function whose steps the test
releases with events, so the progress the page shows is known at each point.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pages_support import Clinic, build_clinic, sign_in

from medweave.errors import InvalidInput
from medweave.jobs import JobCancelled, JobContext, JobRunner, JobState
from medweave.records.service import RecordService

WAIT = 10.0


@pytest.fixture
def clinic(records: RecordService, tmp_path: Path) -> Clinic:
    return build_clinic(records, tmp_path)


@pytest.fixture
def client(clinic: Clinic) -> Iterator[TestClient]:
    with TestClient(clinic.app) as c:
        yield c


@dataclass
class Steps:
    """A job that reports 40 of 200, then 120 of 200 when told, then ends when told or cancelled."""

    reported: threading.Event = field(default_factory=threading.Event)
    step: threading.Event = field(default_factory=threading.Event)
    stepped: threading.Event = field(default_factory=threading.Event)
    finish: threading.Event = field(default_factory=threading.Event)

    def __call__(self, ctx: JobContext) -> Any:
        ctx.report(40, 200)
        self.reported.set()
        if self.step.wait(WAIT):
            ctx.report(120)
            self.stepped.set()
        while not self.finish.wait(0.02):
            if ctx.cancelled():
                raise JobCancelled(ctx.job_id, result={"imported": ctx.done})
        return {"imported": ctx.done}


@pytest.fixture
def runner(clinic: Clinic) -> Iterator[JobRunner]:
    jobs = JobRunner(clinic.records.engine, report_interval=0.0)
    yield jobs
    jobs.close()


@pytest.fixture
def running(runner: JobRunner) -> Iterator[tuple[str, Steps]]:
    steps = Steps()
    job_id = runner.submit("records.import", steps, total=200)
    assert steps.reported.wait(WAIT)
    yield job_id, steps
    steps.step.set()
    steps.finish.set()
    runner.wait(job_id, WAIT)


def progress_of(html: str, job_id: str) -> tuple[str, str, str]:
    """(max, value, label) of the job's <progress> element."""
    found = re.search(
        rf'<progress id="job-{job_id}-progress" max="(\d+)" value="(\d+)"[^>]*>[^<]*</progress>\s*'
        rf'<span class="progress-label" id="job-{job_id}-label">([^<]*)</span>',
        html,
    )
    assert found, f"no progress of job {job_id} in the page"
    return found.group(1), found.group(2), found.group(3)


def row_of(html: str, job_id: str) -> str:
    start = html.index(f'<tr id="job-{job_id}">')
    return html[start : html.index("</tr>", start)]


def polls(html: str) -> bool:
    tbody = re.search(r'<tbody id="job-rows"[^>]*>', html)
    assert tbody, "no job rows in the page"
    return 'hx-get="/admin/jobs/rows"' in tbody.group(0) and 'hx-trigger="every 2s"' in tbody.group(0)


def test_admin_sees_a_running_jobs_progress(
    client: TestClient, clinic: Clinic, running: tuple[str, Steps]
) -> None:
    job_id, _ = running
    token = sign_in(client, clinic, "ada")
    r = client.get("/admin/jobs")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert '<a href="/admin/jobs" aria-current="page">Jobs</a>' in r.text
    assert progress_of(r.text, job_id) == ("200", "40", "40 of 200")
    row = row_of(r.text, job_id)
    assert "<td>records.import</td>" in row and "<td>running</td>" in row
    assert f'action="/admin/jobs/{job_id}/cancel"' in row
    assert f'name="csrf_token" value="{token}"' in row
    assert polls(r.text)


def test_rows_fragment_follows_progress_and_stops_polling(
    client: TestClient, clinic: Clinic, runner: JobRunner, running: tuple[str, Steps]
) -> None:
    job_id, steps = running
    token = sign_in(client, clinic, "ada")
    first = client.get("/admin/jobs/rows", headers={"HX-Request": "true"})
    assert first.status_code == 200
    assert "<html" not in first.text and "<main" not in first.text  # a fragment, no layout
    assert progress_of(first.text, job_id) == ("200", "40", "40 of 200")
    assert polls(first.text)
    assert f'name="csrf_token" value="{token}"' in row_of(first.text, job_id)

    steps.step.set()
    assert steps.stepped.wait(WAIT)
    later = client.get("/admin/jobs/rows", headers={"HX-Request": "true"})
    assert progress_of(later.text, job_id) == ("200", "120", "120 of 200")
    assert polls(later.text)

    steps.finish.set()
    assert runner.wait(job_id, WAIT).state is JobState.DONE
    settled = client.get("/admin/jobs/rows", headers={"HX-Request": "true"})
    row = row_of(settled.text, job_id)
    assert "<td>done</td>" in row and "/cancel" not in row
    assert not polls(settled.text)  # nothing queued or running: polling stops


def test_failed_job_shows_its_message_and_does_not_poll(
    client: TestClient, clinic: Clinic, runner: JobRunner
) -> None:
    def broken(ctx: JobContext) -> None:
        ctx.report(3, 10)
        raise InvalidInput("line 4 is not valid NDJSON")

    job_id = runner.submit("records.import", broken, total=10)
    assert runner.wait(job_id, WAIT).state is JobState.FAILED
    sign_in(client, clinic, "ada")
    html = client.get("/admin/jobs").text
    row = row_of(html, job_id)
    assert "<td>failed</td>" in row and "line 4 is not valid NDJSON" in row
    assert progress_of(html, job_id) == ("10", "3", "3 of 10")
    assert "/cancel" not in row and not polls(html)


def test_cancel_through_the_page_with_csrf(
    client: TestClient, clinic: Clinic, runner: JobRunner, running: tuple[str, Steps]
) -> None:
    job_id, _ = running
    queued = runner.store.create(kind="demo.seed", args={}, queue="elsewhere", max_attempts=1)
    token = sign_in(client, clinic, "ada")

    r = client.post(f"/admin/jobs/{job_id}/cancel", data={"csrf_token": token}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, f"/admin/jobs?cancelled={job_id}")
    info = runner.wait(job_id, WAIT)
    assert info.state is JobState.CANCELLED
    assert info.result == {"imported": 40}

    r = client.post(f"/admin/jobs/{queued}/cancel", data={"csrf_token": token})
    assert r.status_code == 200 and f"Cancellation requested for job {queued[:8]}." in r.text
    assert runner.get(queued).state is JobState.CANCELLED  # a queued job is cancelled at once
    for done in (job_id, queued):
        assert "<td>cancelled</td>" in row_of(r.text, done)
    assert not polls(r.text)

    again = client.post(f"/admin/jobs/{job_id}/cancel", data={"csrf_token": token}, follow_redirects=False)
    assert (again.status_code, again.headers["location"]) == (303, "/admin/jobs")
    missing = client.post("/admin/jobs/no-such-job/cancel", data={"csrf_token": token})
    assert missing.status_code == 404 and "Not found" in missing.text


@pytest.mark.parametrize("username", ["grey", "alice"])
def test_other_roles_get_not_found(
    client: TestClient, clinic: Clinic, runner: JobRunner, running: tuple[str, Steps], username: str
) -> None:
    job_id, _ = running
    token = sign_in(client, clinic, username)
    home = client.get("/")
    assert 'href="/admin/jobs"' not in home.text
    for path in ("/admin/jobs", "/admin/jobs/rows"):
        r = client.get(path)
        assert r.status_code == 404 and "There is no record or page here" in r.text, path
        assert "records.import" not in r.text
    r = client.post(f"/admin/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert r.status_code == 404
    info = runner.get(job_id)
    assert info.state is JobState.RUNNING and not info.cancel_requested


def test_cancel_without_csrf_is_refused(
    client: TestClient, clinic: Clinic, runner: JobRunner, running: tuple[str, Steps]
) -> None:
    job_id, _ = running
    sign_in(client, clinic, "ada")
    for data in ({}, {"csrf_token": "not-the-token"}):
        r = client.post(f"/admin/jobs/{job_id}/cancel", data=data, follow_redirects=False)
        assert r.status_code == 403 and "did not come from this site" in r.text
    info = runner.get(job_id)
    assert info.state is JobState.RUNNING and not info.cancel_requested
