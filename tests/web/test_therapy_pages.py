"""Therapy through the HTTP stack: the patient's chat, the clinician's live alert feed and
acknowledgement, the therapy view with item answers and the pathway decision, and who may see what."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pages_support import Clinic, build_clinic, sign_in

from medweave.records.service import RecordService
from medweave.therapy.risk import Detector


@pytest.fixture
def clinic(records: RecordService, tmp_path: Path) -> Clinic:
    clinic = build_clinic(records, tmp_path)
    clinic.app.state.conversations._detector = Detector(model=False)  # the model has its own tests
    return clinic


@pytest.fixture
def server(clinic: Clinic) -> Iterator[TestClient]:
    with TestClient(clinic.app) as running:
        yield running


@pytest.fixture
def browsers(clinic: Clinic, server: TestClient) -> dict[str, TestClient]:
    clients = {}
    for name in ("alice", "grey", "bob", "ada"):
        client = TestClient(clinic.app)
        client.portal = server.portal
        client.headers["x-csrf-token"] = sign_in(client, clinic, name)
        clients[name] = client
    return clients


def say(client: TestClient, text: str) -> str:
    r = client.post(
        "/therapy/say",
        data={"csrf_token": client.headers["x-csrf-token"], "text": text},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return html.unescape(client.get(r.headers["location"]).text)


def post(client: TestClient, path: str, data: dict[str, str] | None = None) -> Any:
    return client.post(
        path, data={"csrf_token": client.headers["x-csrf-token"], **(data or {})}, follow_redirects=False
    )


def test_a_risky_message_gets_the_safety_message_and_reaches_the_clinician(
    browsers: dict[str, TestClient], clinic: Clinic
) -> None:
    alice, grey, bob = browsers["alice"], browsers["grey"], browsers["bob"]
    assert grey.get("/therapy/alerts.json").json() == {"alerts": []}
    page = say(alice, "hello")
    assert "not a human" in page and "988" in page
    page = say(alice, "I can’t do this any more, I want to kill myself")
    assert "I'm worried about what you've just told me" in page and "911" in page

    feed = grey.get("/therapy/alerts.json").json()["alerts"]
    assert [(a["level"], a["patient"]) for a in feed] == [("ideation", clinic.patient_id)]
    assert "kill myself" not in str(feed)
    assert bob.get("/therapy/alerts.json").status_code == 404  # patients have no feed
    dashboard = grey.get("/therapy/caseload").text
    assert "Acknowledge" in dashboard and "Liddell" in dashboard

    r = post(grey, f"/therapy/alerts/{feed[0]['id']}/acknowledge")
    assert r.status_code == 303
    assert grey.get("/therapy/alerts.json").json() == {"alerts": []}


def test_the_patient_sees_only_their_own_chat(browsers: dict[str, TestClient]) -> None:
    say(browsers["alice"], "check in please")
    page = say(browsers["alice"], "6")
    assert "check in please" in page and "noted your mood as 6" in page
    assert "check in please" not in browsers["bob"].get("/therapy").text
    assert browsers["grey"].get("/therapy").status_code == 404  # the chat page is the patient's
    assert post(browsers["alice"], "/therapy/say", {"text": "x" * 20_001}).status_code == 400


def test_the_therapy_view_shows_items_and_records_a_pathway_decision(
    browsers: dict[str, TestClient], clinic: Clinic
) -> None:
    alice, grey = browsers["alice"], browsers["grey"]
    for text in ["PHQ-9", "3", "3", "2", "2", "2", "2", "2", "1", "0"]:
        say(alice, text)
    for text in ["GAD-7", "3", "3", "2", "2", "2", "1", "1"]:
        say(alice, text)
    view = html.unescape(grey.get(f"/therapy/patients/{clinic.patient_id}").text)
    assert "Little interest or pleasure in doing things" in view and "Nearly every day" in view
    assert "Outcome so far" not in view  # one score of each: no course yet
    assert "step 3" in view and "NG222" in view  # PHQ-9 17: more severe depression

    r = post(grey, f"/therapy/patients/{clinic.patient_id}/pathway", {"step": "2", "reason": ""})
    assert r.status_code == 303 and "error=" in r.headers["location"]  # an override needs a reason
    r = post(
        grey,
        f"/therapy/patients/{clinic.patient_id}/pathway",
        {"step": "2", "reason": "patient prefers group CBT"},
    )
    assert r.status_code == 303 and "error" not in r.headers["location"]
    view = html.unescape(grey.get(f"/therapy/patients/{clinic.patient_id}").text)
    assert "Overridden to step 2: patient prefers group CBT" in view
    # What only the clinician can judge: preferences reorder the options, never the step.
    judged = html.unescape(grey.get(f"/therapy/patients/{clinic.patient_id}?pref_declines_medication=1").text)
    assert (
        "Recommended: <strong>Step 3" in judged
        and 'name="pref_declines_medication" value="1" checked' in judged
    )
    r = post(grey, f"/therapy/patients/{clinic.patient_id}/pathway", {"step": "3", "impaired": "1"})
    assert r.status_code == 303 and "error" not in r.headers["location"]
    assert "Clinician's judgement: marked functional impairment" in html.unescape(
        grey.get(f"/therapy/patients/{clinic.patient_id}").text
    )

    assert grey.get(f"/therapy/patients/{clinic.other_id}").status_code == 404  # Bob is not in Grey's care
    assert browsers["ada"].get(f"/therapy/patients/{clinic.patient_id}").status_code == 404

    for text in ["PHQ-9", *["1"] * 8, "0", "GAD-7", *["1"] * 7]:
        say(alice, text)
    view = html.unescape(grey.get(f"/therapy/patients/{clinic.patient_id}").text)
    assert "Outcome so far" in view and 'class="shades"' in view  # PHQ-9 17 to 8: a course, and bands
