"""Telehealth over HTTP: an appointment as an .ics file, for whoever may read it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import icalendar
from fastapi.testclient import TestClient

from conftest import bearer


def _appointment(client: Any, pid: str, **extra: Any) -> str:
    body = {
        "resourceType": "Appointment",
        "status": "booked",
        "serviceType": [{"text": "video visit"}],
        "participant": [{"actor": {"reference": f"Patient/{pid}"}, "status": "accepted"}],
        **extra,
    }
    created = client.post("/fhir/Appointment", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_an_appointment_downloads_as_ics(client: Any, app: Any) -> None:
    pid = client.post("/fhir/Patient", json={"resourceType": "Patient"}).json()["id"]
    aid = _appointment(client, pid, start="2026-12-07T09:00:00Z", end="2026-12-07T09:30:00Z")
    r = client.get(f"/fhir/Appointment/{aid}/$ics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    event = next(iter(icalendar.Calendar.from_ical(r.text).walk("VEVENT")))
    assert event.decoded("dtstart") == datetime(2026, 12, 7, 9, tzinfo=UTC)
    assert str(event["summary"]) == "Video visit" and str(event["uid"]) == f"{aid}@testserver"
    other = client.post("/fhir/Patient", json={"resourceType": "Patient"}).json()["id"]
    as_other = TestClient(
        app, headers=bearer("patient/*.rs", kind="user", subject="p2", role="patient", patient=other)
    )
    assert as_other.get(f"/fhir/Appointment/{aid}/$ics").status_code == 404  # not someone else's
    as_owner = TestClient(
        app, headers=bearer("patient/*.rs", kind="user", subject="p1", role="patient", patient=pid)
    )
    assert as_owner.get(f"/fhir/Appointment/{aid}/$ics").status_code == 200
    assert client.get("/fhir/Appointment/no-such/$ics").status_code == 404
    undated = _appointment(client, pid)
    assert client.get(f"/fhir/Appointment/{undated}/$ics").status_code == 400
