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


def test_free_slots_of_a_published_schedule(client: Any, app: Any) -> None:
    from datetime import time, timedelta

    from medweave.security.principal import Principal
    from medweave.telehealth import schedule
    from medweave.telehealth.availability import Availability, Hours, SlotTime, VisitType
    from medweave.telehealth.booking import book

    records = app.state.records
    practitioner = client.post("/fhir/Practitioner", json={"resourceType": "Practitioner"}).json()["id"]
    patient = client.post("/fhir/Patient", json={"resourceType": "Patient"}).json()["id"]
    published = schedule.publish(
        records,
        principal=Principal.internal("test"),
        practitioner_id=practitioner,
        availability=Availability("Europe/London", (Hours(time(9), time(10), weekday=0),)),
        visit_types=(VisitType("standard", 20, 10, "video"), VisitType("long", 50, 0, "in-person")),
        now=datetime(2027, 1, 1, tzinfo=UTC),
    )
    url = f"/fhir/Schedule/{published.schedule_id}/$slots"
    window = {"start": "2027-01-04T00:00:00Z", "end": "2027-01-05T00:00:00Z"}
    r = client.get(url, params=window)
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["type"] == "searchset" and bundle["total"] == 2
    starts = [e["resource"]["start"] for e in bundle["entry"]]
    assert starts == ["2027-01-04T09:00:00Z", "2027-01-04T09:30:00Z"]
    slot = bundle["entry"][0]["resource"]
    assert slot["resourceType"] == "Slot" and slot["status"] == "free"
    assert slot["schedule"] == {"reference": f"Schedule/{published.schedule_id}"}
    long = client.get(url, params={**window, "visit-type": "long"}).json()
    assert [e["resource"]["end"] for e in long["entry"]] == ["2027-01-04T09:50:00Z"]

    start = datetime(2027, 1, 4, 9, tzinfo=UTC)
    book(
        records,
        principal=Principal.internal("test"),
        patient_id=patient,
        practitioner_id=practitioner,
        slot=SlotTime(start, start + timedelta(minutes=20)),
        visit=published.visit_types[0],
    )
    after = client.get(url, params=window).json()
    assert [e["resource"]["start"] for e in after["entry"]] == ["2027-01-04T09:30:00Z"]

    for bad in (
        {"start": "monday"},
        {"start": "2027-01-04T09:00:00"},  # no time zone
        {"start": "2027-01-04T00:00:00Z", "end": "2027-06-04T00:00:00Z"},  # over 90 days
        {"start": "2027-01-05T00:00:00Z", "end": "2027-01-04T00:00:00Z"},
        {"visit-type": "nope"},
        {"start": "9999-12-31T00:00:00Z"},  # beyond any calendar: a clear 400, not an overflow
    ):
        r = client.get(url, params=bad)
        assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome", bad
    unpublished = client.post(
        "/fhir/Schedule",
        json={"resourceType": "Schedule", "actor": [{"reference": f"Practitioner/{practitioner}"}]},
    ).json()["id"]
    assert client.get(f"/fhir/Schedule/{unpublished}/$slots").status_code == 404
    assert client.get("/fhir/Schedule/no-such/$slots").status_code == 404
