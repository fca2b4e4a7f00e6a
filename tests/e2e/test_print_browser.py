"""The print lab in a real browser: a lab technician finds the request on the worklist, runs a
cranial implant design on the attached skull CT, follows its progress, sees the implant over the
skull in the 3D viewer, the slices with the mask and the check report; the requesting clinician
approves it. Debian's Chromium (WebGL on SwiftShader) through Playwright, against uvicorn on
loopback, with the design running as a real in-process background job."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, Live, seeded_clinic, serving, shot
from pages_support import PASSWORD, enrol, next_code
from playwright.sync_api import expect, sync_playwright

from medweave.cli.worker import job_client
from medweave.security.principal import ROLE_SCOPES, Principal, Role
from medweave.security.scopes import ScopeSet
from print_support import small_skull, write_phantom, zipped

# WebGL without a GPU: ANGLE on SwiftShader (tests/e2e/test_print_viewers.py uses the same).
WEBGL_ARGS = ["--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("e2e-print")
    clinic, engine, port = seeded_clinic(tmp)
    lab_user = clinic.identity.create_user(username="lab", role="lab_technician", password=PASSWORD)
    clinic.user_ids["lab"] = lab_user.id
    clinic.secrets["lab"] = enrol(clinic.identity, lab_user.id)
    jobs = job_client(clinic.records, clinic.app.state.settings)
    clinic.app.state.jobs = jobs
    grey = Principal(
        kind="user",
        subject=clinic.user_ids["grey"],
        scopes=ScopeSet.parse(ROLE_SCOPES[Role.CLINICIAN]),
        role=Role.CLINICIAN,
        practitioner_id=clinic.practitioner_id,
    )
    lab = clinic.app.state.print_lab
    request_id = lab.create_request(
        principal=grey, patient_id=clinic.patient_id, kind="implant", note="Left parietal craniectomy"
    )
    folder = tmp / "ct"
    write_phantom(
        small_skull(size=200, spacing_mm=1.25, tilt_deg=(6.0, -4.0, 5.0), defect="left-parietal"), folder
    )
    tech = Principal(
        kind="user",
        subject=lab_user.id,
        scopes=ScopeSet.parse(ROLE_SCOPES[Role.LAB_TECHNICIAN]),
        role=Role.LAB_TECHNICIAN,
    )
    lab.attach_upload(tech, request_id, filename="skull-ct.zip", data=zipped(folder))
    with serving(clinic.app, port):
        yield Live(f"http://127.0.0.1:{port}", clinic)
    jobs.close()
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + WEBGL_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def sign_in(page: Any, live: Live, username: str) -> None:
    page.goto(f"{live.url}/signin")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    code = next_code(live.clinic.identity, live.clinic.user_ids[username], live.clinic.secrets[username])
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Continue").click()


def test_a_technician_designs_an_implant_and_the_clinician_approves_it(browser: Any, live: Live) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(f"{m.text} {m.location}") if m.type == "error" else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    sign_in(page, live, "lab")
    page.get_by_role("link", name="Print lab").click()
    expect(page.get_by_role("table", name="Open print requests, oldest first")).to_be_visible()
    shot(page, "print-worklist", docs=True)
    page.get_by_role("table").get_by_role("link").first.click()
    expect(page.get_by_text("Left parietal craniectomy")).to_be_visible()
    page.get_by_label("Margin over the defect rim (mm; 0: the missing bone only)").fill("2")
    page.get_by_role("button", name="Run the design").click()

    # The progress bar polls until the job ends, then the page reloads with the result.
    expect(page.locator("#design-status")).to_have_text("ready", timeout=240_000)
    viewer = page.locator("#mesh-viewer")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=60_000)
    assert int(viewer.get_attribute("data-triangles") or 0) > 1000
    expect(page.locator("#report-verdict")).to_be_visible()
    expect(
        page.get_by_role("table", name="Exports, recorded on the patient as Device/", exact=False)
    ).to_be_visible()
    viewer.scroll_into_view_if_needed()
    shot(page, "print-implant-3d", docs=True)
    slices = page.locator("#slice-viewer")
    expect(slices).to_have_attribute("data-state", "ready", timeout=30_000)
    slices.scroll_into_view_if_needed()
    shot(page, "print-slices", docs=True)
    page.locator("#check-report").scroll_into_view_if_needed()
    shot(page, "print-check-report", docs=True)
    design_url = page.url
    assert page.get_by_role("button", name="Approve for printing").count() == 0  # the lab cannot approve
    context.close()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("pageerror", lambda e: problems.append(str(e)))
    sign_in(page, live, "grey")
    page.goto(design_url)
    page.get_by_label("Reason (needed to reject)").fill("Fit and margins reviewed")
    page.get_by_role("button", name="Approve for printing").click()
    expect(page.locator("#decision")).to_contain_text("Approved by grey")
    expect(page.locator("#decision")).to_contain_text("Fit and margins reviewed")
    assert problems == []
    context.close()
