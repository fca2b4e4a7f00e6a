"""The therapy assistant in a real browser: a patient types a risky message in the chat and sees
the safety message; her clinician's caseload dashboard, open in another browser context, shows
the alert within 2 seconds. Debian's Chromium through Playwright, against uvicorn on loopback,
with the real risk detector (embedding model included)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import Live, chromium, seeded_clinic, serving, shot
from pages_support import PASSWORD, next_code
from playwright.sync_api import expect


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("e2e-therapy")
    clinic, engine, port = seeded_clinic(tmp)
    url = f"http://127.0.0.1:{port}"
    with serving(clinic.app, port):
        yield Live(url, clinic)
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def tab(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.problems = problems
    return page


def sign_in(page: Any, live: Live, username: str) -> None:
    page.goto(f"{live.url}/signin")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if username in live.clinic.secrets:
        expect(page).to_have_url(f"{live.url}/signin/totp")
        code = next_code(live.clinic.identity, live.clinic.user_ids[username], live.clinic.secrets[username])
        page.get_by_label("Code").fill(code)
        page.get_by_role("button", name="Continue").click()


def send(page: Any, text: str) -> None:
    page.get_by_label("Your message").fill(text)
    page.get_by_label("Your message").press("Tab")  # the keyboard reaches Send
    page.keyboard.press("Enter")


def test_a_risky_message_reaches_the_clinicians_dashboard_within_2_seconds(browser: Any, live: Live) -> None:
    clinician, patient = tab(browser), tab(browser)
    sign_in(clinician, live, "grey")
    clinician.goto(f"{live.url}/therapy/caseload")
    expect(clinician.get_by_text("No open alerts.")).to_be_visible()

    sign_in(patient, live, "alice")
    patient.get_by_role("link", name="Support assistant").click()
    send(patient, "hello")  # the first message loads the embedding model
    expect(patient.locator("#assistant-log")).to_contain_text("not a human", timeout=60_000)
    send(patient, "check in")
    patient.get_by_role("button", name="4", exact=True).click()  # a quick reply
    expect(patient.locator("#assistant-log")).to_contain_text("noted your mood as 4")

    send(patient, "PHQ-9")
    for answer in ["several days", "More than half the days", "2", "1", "1", "2", "1", "0", "0"]:
        send(patient, answer)
    expect(patient.locator("#assistant-log")).to_contain_text("score is 10 (moderate)")

    started = time.monotonic()
    send(patient, "I’ve been stockpiling my tablets and I’m going to take them all tonight")
    alert = clinician.locator("#live-alerts li.alert-high")
    expect(alert).to_be_visible(timeout=2_000)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, elapsed
    expect(alert).to_contain_text("Alice Liddell")
    expect(clinician.locator("#alert-status")).to_contain_text("New high alert")

    safety = patient.locator("#assistant-log li.safety").last
    expect(safety).to_contain_text("call 911 now")
    expect(safety).to_contain_text("988")
    shot(patient, "therapy-chat", docs=True, full_page=True)
    shot(clinician, "therapy-caseload", docs=True)

    alert.get_by_role("button", name="Acknowledge").click()
    expect(clinician.get_by_text("No open alerts.")).to_be_visible()
    clinician.goto(f"{live.url}/therapy/patients/{live.clinic.patient_id}")
    expect(clinician.get_by_role("heading", name="Care pathway (NICE stepped care)")).to_be_visible()
    expect(clinician.locator("#pathway")).to_contain_text("Step 4")  # the recent high risk
    expect(
        clinician.get_by_role(
            "table", name="Patient Health Questionnaire-9: the latest answers, item by item"
        )
    ).to_contain_text("More than half the days")
    shot(clinician, "therapy-patient", docs=True, full_page=True)
    for page in (clinician, patient):
        assert not page.problems, page.problems
