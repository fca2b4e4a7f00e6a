"""Browser tests: the patient, clinician and admin journeys in a real browser against a real server.

A uvicorn server on 127.0.0.1, and Debian's Chromium driven by Playwright for Python.

The server runs in a thread over a seeded SQLite database (users through the identity service,
records through RecordService as the operator). Chromium is ``/usr/bin/chromium`` (never a
downloaded browser); if it or Playwright is missing the tests fail, they do not skip.
Screenshots go to ``test-artifacts/screenshots/``; with ``MEDWEAVE_UPDATE_SCREENSHOTS=1`` (or when
missing) the ones the README shows are copied to ``docs/screenshots/``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import Live, chromium, earlier_look, seeded_clinic, serving, shot
from pages_support import PASSWORD, next_code
from playwright.sync_api import expect

from medweave.ledger.receipt_check import check_receipt
from medweave.security import totp


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("e2e")
    clinic, engine, port = seeded_clinic(tmp)
    url = f"http://127.0.0.1:{port}"
    earlier_look(clinic)
    clinic.identity.start_break_glass(
        user_id=clinic.user_ids["newbie"],
        patient_id=clinic.other_id,
        reason="Called to the ward at night; no care team reachable",
        minutes=30,
    )
    with serving(clinic.app, port):
        yield Live(url, clinic)
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (its own cookies) and page; fails the test on any CSP violation."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: problems.append(str(e)))
    yield tab
    context.close()
    refused = [p for p in problems if "Content Security Policy" in p or "Refused" in p]
    assert not refused, refused
    others = [p for p in problems if "404" not in p]  # the not-found pages are expected
    assert not others, others


def _password_step(page: Any, live: Live, username: str) -> None:
    page.goto(f"{live.url}/signin")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_patient_sees_record_and_access_history_but_no_other_chart(page: Any, live: Live) -> None:
    clinic = live.clinic
    page.goto(f"{live.url}/me")
    expect(page).to_have_url(f"{live.url}/signin")
    expect(page.get_by_label("Username")).to_be_focused()
    shot(page, "sign-in", docs=True)

    _password_step(page, live, "alice")
    expect(page).to_have_url(f"{live.url}/me")
    expect(page.get_by_role("heading", name="My record", exact=True)).to_be_visible()
    page.keyboard.press("Tab")  # keyboard users skip the header
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    main = page.locator("main")
    expect(main).to_contain_text("Alice Liddell")
    expect(main).to_contain_text("Hypertension")
    expect(page.get_by_role("table", name="My most recent observations, newest first")).to_contain_text(
        "131 mm[Hg]"
    )
    history = page.get_by_role("table", name="Every access to my record, newest first")
    clinician_row = history.get_by_role("row").filter(has_text="grey (clinician)")
    expect(clinician_row.first).to_contain_text("Viewed your details")
    expect(clinician_row.first).to_contain_text("Allowed")
    shot(page, "patient-home", docs=True, full_page=True)

    other = page.goto(f"{live.url}/patients/{clinic.other_id}")
    assert other is not None and other.status == 404
    other_text = page.locator("main").inner_text()
    assert "Bob" not in page.content()
    shot(page, "patient-other-chart-not-found")
    missing = page.goto(f"{live.url}/patients/no-such-patient")
    assert missing is not None and missing.status == 404
    assert page.locator("main").inner_text() == other_text


def test_patient_checks_her_access_history_against_the_ledger(page: Any, live: Live) -> None:
    """The server's sequencer seals the events; the page marks them verified, a receipt downloads
    and verifies offline, and the public ledger page shows the log's key."""
    ledger = live.clinic.app.state.ledger
    _password_step(page, live, "alice")
    expect(page).to_have_url(f"{live.url}/me")
    history = page.get_by_role("table", name="Every access to my record, newest first")
    deadline = time.monotonic() + 20
    while "Verified" not in history.inner_text():  # the sequencer runs every 250 ms
        assert time.monotonic() < deadline, "no event was verified by the ledger"
        time.sleep(0.3)
        page.reload()
    assert "NOT verified" not in history.inner_text()
    link = history.get_by_role("link", name=re.compile("^receipt")).first
    with page.expect_download() as info:
        link.click()
    receipt = Path(info.value.path()).read_text(encoding="utf-8")
    checkpoint, entry = check_receipt(receipt, log=ledger.verifier)
    assert checkpoint.origin == ledger.origin and entry.startswith(b"medweave-audit/v1")
    page.goto(f"{live.url}/ledger")
    expect(page.get_by_role("heading", name="Records ledger")).to_be_visible()
    expect(page.locator("main")).to_contain_text(ledger.vkey)
    shot(page, "ledger", docs=True, full_page=True)


def test_clinician_signs_in_with_totp_searches_and_sees_the_trend(page: Any, live: Live) -> None:
    clinic = live.clinic
    _password_step(page, live, "grey")
    expect(page).to_have_url(f"{live.url}/signin/totp")
    code = next_code(clinic.identity, clinic.user_ids["grey"], clinic.secrets["grey"])
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{live.url}/patients")

    page.get_by_label("Search by name").fill("Lidd")  # HTMX swaps the results in, no page load
    results = page.locator("#results")
    expect(results).to_contain_text("matching “Lidd”")
    expect(page).to_have_url(f"{live.url}/patients")
    expect(results).not_to_contain_text("Bob")
    results.get_by_role("link", name="Alice Liddell").click()
    expect(page).to_have_url(f"{live.url}/patients/{clinic.patient_id}")
    expect(page.get_by_role("heading", name="Alice Liddell")).to_be_visible()

    charts = page.locator("svg.trend")
    expect(charts).to_have_count(2)
    lines = page.locator("svg.trend polyline.line")
    counts = sorted(len(lines.nth(i).get_attribute("points").split()) for i in range(lines.count()))
    assert counts == [3, 5]
    expect(page.locator("svg.trend circle")).to_have_count(8)
    bp = page.get_by_role("img", name="Systolic blood pressure (mm[Hg])")
    expect(bp).to_be_visible()
    box = bp.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100  # drawn, not collapsed
    expect(page.locator("#medications-heading + p")).to_contain_text("does not store medication records")
    page.get_by_text("Data table: Systolic blood pressure").click()
    expect(page.get_by_role("table", name="Systolic blood pressure, newest first")).to_contain_text("148")
    shot(page, "clinician-chart", docs=True, full_page=True)

    response = page.goto(f"{live.url}/patients/{clinic.other_id}")
    assert response is not None and response.status == 404


def test_admin_enrols_totp_by_qr_code_and_reviews_break_glass(page: Any, live: Live) -> None:
    clinic = live.clinic
    _password_step(page, live, "ada")
    expect(page).to_have_url(f"{live.url}/signin/enrol")
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    shot(page, "totp-enrolment", docs=True)
    page.get_by_label("Code from the app").fill(totp.code_for(secret))
    page.get_by_role("button", name="Confirm and sign in").click()
    expect(page).to_have_url(f"{live.url}/admin/users")
    expect(page.get_by_role("table", name="All accounts")).to_contain_text("newbie")

    page.get_by_role("link", name="Break-glass reviews").click()
    card = page.locator(".card").filter(has_text=f"newbie opened Patient/{clinic.other_id}")
    expect(card).to_contain_text("Called to the ward at night")
    shot(page, "admin-break-glass-reviews", docs=True)
    card.get_by_label("Review note").fill("Confirmed with the night registrar; justified.")
    card.get_by_role("button", name="Mark as reviewed").click()
    expect(page.locator("main")).to_contain_text("No break-glass access is waiting for review")
    assert clinic.identity.pending_reviews() == []
    assert clinic.identity.get_user(clinic.user_ids["ada"]).totp_enabled
