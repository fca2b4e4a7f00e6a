"""Models in a real browser: a clinician reviews a proposed model's validation page (calibration,
ROC and decision curves, subgroups), approves it with a reason, and then sees its risk card in a
patient's chart. Debian's Chromium through Playwright, against uvicorn on loopback; the model is
really trained (Framingham, Coxnet) and served through ONNX Runtime."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import Live, chromium, seeded_clinic, serving, shot
from pages_support import PASSWORD, next_code
from playwright.sync_api import expect

from conftest import observation
from medweave.diagnostics import training, workflow
from medweave.security.principal import Principal, Role
from medweave.security.scopes import ScopeSet


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("e2e-ml")
    clinic, engine, port = seeded_clinic(tmp)
    operator = Principal.internal("test")
    for code, value, unit in (("8480-6", 152, "mm[Hg]"), ("8462-4", 92, "mm[Hg]"), ("2093-3", 246, "mg/dL"),
                              ("39156-5", 31.2, "kg/m2")):  # fmt: skip
        clinic.records.create(
            principal=operator,
            res_type="Observation",
            data=observation(clinic.patient_id, code, code, value, unit, "2026-05-20T09:00:00Z"),
        )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "RESAMPLES", 200)
        result = training.train("framingham", "coxnet", protocol="holdout")
        report, artifacts = workflow.package(result)
    scientist = Principal(kind="user", subject="noor", scopes=ScopeSet.parse(""), role=Role.DATA_SCIENTIST)
    clinic.app.state.registry.propose(
        scientist, name="framingham-coxnet", report=report, code_version=workflow.code_version(),
        intended_use=workflow.INTENDED_USE["framingham"], out_of_scope=workflow.OUT_OF_SCOPE["framingham"],
        artifacts=artifacts,
    )  # fmt: skip
    with serving(clinic.app, port):
        yield Live(f"http://127.0.0.1:{port}", clinic)
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def test_a_clinician_approves_a_model_and_sees_its_card_in_the_chart(browser: Any, live: Live) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    page.goto(f"{live.url}/signin")
    page.get_by_label("Username").fill("grey")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    code = next_code(live.clinic.identity, live.clinic.user_ids["grey"], live.clinic.secrets["grey"])
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Continue").click()

    page.get_by_role("link", name="Models").click()
    page.get_by_role("link", name="framingham-coxnet v1").click()
    expect(page.get_by_role("heading", name="Validation on held-out data")).to_be_visible()
    expect(page.locator("#plot-reliability")).to_be_visible()
    expect(page.locator("#plot-decision")).to_be_visible()
    expect(
        page.get_by_role(
            "table", name="Metrics by sex, age band and race/ethnicity where the data record them"
        )
    ).to_be_visible()
    shot(page, "ml-model", docs=True, full_page=True)

    reason = "Reviewed calibration and subgroups; pilot in clinic A"
    page.get_by_label("Reason (recorded and audited)").fill(reason)
    page.get_by_role("button", name="Approve for use").click()
    expect(page.get_by_text("approved", exact=True).first).to_be_visible()
    lifecycle = page.get_by_role("region", name="Lifecycle")
    expect(lifecycle).to_contain_text(f"approve by grey: “{reason}”")

    page.goto(f"{live.url}/patients/{live.clinic.patient_id}")
    card = page.locator(".card.cds-warning, .card.cds-info").first
    expect(card).to_contain_text("risk of coronary heart disease within 10 years")
    expect(card).to_contain_text("Main contributions")
    expect(card.get_by_role("link", name="Model card, validation and intended use")).to_be_visible()
    shot(page, "ml-chart-card", docs=True)
    assert problems == []
    context.close()
