"""Video visits through the HTTP stack: booking pages, the waiting room, and the signaling socket's
security (who may join, expired tokens and links, no session, wrong origin)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pages_support import Clinic, build_clinic, sign_in
from sqlalchemy import Engine
from starlette.websockets import WebSocketDisconnect

from medweave.db import is_sqlite
from medweave.records.service import RecordService
from medweave.security.principal import Principal, Role
from medweave.security.scopes import ScopeSet
from medweave.telehealth import rooms, schedule, visits
from medweave.telehealth.availability import Availability, Hours, SlotTime, VisitType
from medweave.telehealth.booking import book

ORIGIN = {"origin": "http://testserver"}
VIDEO = VisitType("standard", 20, 10, "video")


def clinician(clinic: Clinic) -> Principal:
    """Dr Grey, the clinic's clinician, as the domain functions see her."""
    return Principal(
        kind="user",
        subject="grey",
        scopes=ScopeSet.parse("user/*.cruds"),
        role=Role.CLINICIAN,
        practitioner_id=clinic.practitioner_id,
    )


@pytest.fixture
def clinic(records: RecordService, tmp_path: Path) -> Clinic:
    clinic = build_clinic(records, tmp_path)
    everyday = tuple(Hours(time(0), time(23, 59), weekday=d) for d in range(7))
    grey = clinician(clinic)
    schedule.publish(
        records,
        principal=grey,
        practitioner_id=clinic.practitioner_id,
        availability=Availability("UTC", everyday),
        visit_types=(VIDEO,),
        now=datetime.now(UTC),
    )
    return clinic


def alice_visit(clinic: Clinic, *, start: datetime | None = None) -> str:
    start = start or datetime.now(UTC).replace(second=0, microsecond=0)
    alice = Principal(
        kind="user",
        subject="alice",
        scopes=ScopeSet.parse("patient/*.rs patient/Appointment.cu"),
        role=Role.PATIENT,
        patient_id=clinic.patient_id,
    )
    return book(
        clinic.records,
        principal=alice,
        patient_id=clinic.patient_id,
        practitioner_id=clinic.practitioner_id,
        slot=SlotTime(start, start + timedelta(minutes=20)),
        visit=VIDEO,
    ).res_id


@pytest.fixture
def server(clinic: Clinic) -> Iterator[TestClient]:
    """The app, started once (its lifespan), with its event loop: one server, as uvicorn runs it."""
    with TestClient(clinic.app) as running:
        yield running


def browser(clinic: Clinic, server: TestClient) -> TestClient:
    """A browser of its own (its own cookies) talking to the one running server. Clients that each
    ran the app on their own event loop would share the signaling hub across loops, which no
    real server does."""
    client = TestClient(clinic.app)
    client.portal = server.portal
    return client


@pytest.fixture
def browsers(clinic: Clinic, server: TestClient) -> dict[str, TestClient]:
    """Signed-in clients of Alice (patient), Grey (her clinician) and Bob (another patient)."""
    clients = {name: browser(clinic, server) for name in ("alice", "grey", "bob")}
    for name, c in clients.items():
        c.headers["x-csrf-token"] = sign_in(c, clinic, name)
    return clients


def post(client: TestClient, path: str, data: dict[str, str] | None = None) -> Any:
    return client.post(
        path, data={"csrf_token": client.headers["x-csrf-token"], **(data or {})}, follow_redirects=False
    )


def join(client: TestClient, aid: str, token: str, **extra: Any) -> Any:
    ws = client.websocket_connect(f"/visits/{aid}/signal", headers=ORIGIN)
    socket = ws.__enter__()
    socket.send_json({"type": "hello", "token": token, **extra})
    return ws, socket


@contextmanager
def joined(client: TestClient, aid: str, token: str) -> Iterator[Any]:
    """A socket that has said hello, closed when the block ends."""
    with client.websocket_connect(f"/visits/{aid}/signal", headers=ORIGIN) as socket:
        socket.send_json({"type": "hello", "token": token})
        yield socket


def refused(client: TestClient, aid: str, token: object, headers: dict[str, str] | None = None) -> int:
    """The close code a join gets (fails the test if it is let in)."""
    try:
        with client.websocket_connect(
            f"/visits/{aid}/signal", headers=ORIGIN if headers is None else headers
        ) as ws:
            ws.send_json({"type": "hello", "token": token})
            message = ws.receive_json()
    except WebSocketDisconnect as closed:
        return int(closed.code)
    raise AssertionError(f"joined: {message}")


def test_patient_books_reschedules_and_cancels_from_the_pages(
    browsers: dict[str, TestClient], clinic: Clinic
) -> None:
    alice = browsers["alice"]
    page = alice.get(f"/visits/book?clinician={clinic.practitioner_id}&type=standard")
    assert page.status_code == 200
    offered = re.findall(r'name="start" value="([^"]+)"', page.text)
    assert len(offered) >= 2
    r = post(
        alice, "/visits/book", {"clinician": clinic.practitioner_id, "type": "standard", "start": offered[0]}
    )
    assert r.status_code == 303, r.text
    aid = r.headers["location"].rsplit("/", 1)[1]
    assert visits.load(clinic.records.engine, aid).start == datetime.fromisoformat(offered[0])
    # The same time again: taken (and no longer offered).
    again = post(
        alice, "/visits/book", {"clinician": clinic.practitioner_id, "type": "standard", "start": offered[0]}
    )
    assert again.status_code == 409
    assert offered[0] not in alice.get(f"/visits/book?clinician={clinic.practitioner_id}&type=standard").text
    # A made-up time is refused without a trace.
    odd = post(
        alice, "/visits/book", {"clinician": clinic.practitioner_id, "type": "standard", "start": "soon"}
    )
    assert odd.status_code == 400 and "Traceback" not in odd.text
    moved = post(
        alice,
        "/visits/book",
        {"clinician": clinic.practitioner_id, "type": "standard", "start": offered[1], "move": aid},
    )
    assert moved.status_code == 303
    assert visits.load(clinic.records.engine, aid).start == datetime.fromisoformat(offered[1])
    listing = alice.get("/visits").text
    assert f"/visits/{aid}" in listing and f"/fhir/Appointment/{aid}/$ics" in listing
    home = alice.get("/me").text  # the home page lists it too, in her zone once the script runs
    assert f'href="/visits/{aid}"' in home and f'datetime="{offered[1]}"' in home
    # Bob cannot cancel, open or read Alice's visit.
    bob = browsers["bob"]
    assert post(bob, f"/visits/{aid}/cancel").status_code == 404
    assert bob.get(f"/visits/{aid}").status_code == 404
    assert bob.get(f"/fhir/Appointment/{aid}").status_code == 404
    assert bob.get(f"/fhir/Appointment/{aid}/$ics").status_code == 404
    assert aid in alice.get(f"/fhir/Appointment?patient={clinic.patient_id}").text  # her search finds it
    for query in (f"?patient={clinic.patient_id}", f"?actor=Patient/{clinic.patient_id}", ""):
        found = bob.get(f"/fhir/Appointment{query}")  # his searches do not, whatever he asks
        assert found.status_code in (200, 403) and aid not in found.text, query
    assert bob.get(f"/visits/{aid}/room").status_code == 404
    assert aid not in bob.get("/visits").text
    assert post(alice, f"/visits/{aid}/cancel").status_code == 303
    assert visits.load(clinic.records.engine, aid).status == "cancelled"


def test_staff_book_for_a_patient_in_their_care(browsers: dict[str, TestClient], clinic: Clinic) -> None:
    grey = browsers["grey"]
    page = grey.get(
        f"/visits/book?patient={clinic.patient_id}&clinician={clinic.practitioner_id}&type=standard"
    )
    start = re.findall(r'name="start" value="([^"]+)"', page.text)[0]
    r = post(
        grey,
        "/visits/book",
        {
            "patient": clinic.patient_id,
            "clinician": clinic.practitioner_id,
            "type": "standard",
            "start": start,
        },
    )
    assert r.status_code == 303 and r.headers["location"].endswith("/booked")
    assert grey.get(r.headers["location"]).status_code == 200
    # Bob is in nobody's care: no booking for him.
    assert grey.get(f"/visits/book?patient={clinic.other_id}").status_code == 404


def test_waiting_room_admission_chat_signaling_and_hang_up(
    browsers: dict[str, TestClient], clinic: Clinic
) -> None:
    aid = alice_visit(clinic)
    alice, grey = browsers["alice"], browsers["grey"]
    early = alice.get(f"/visits/{aid}/room").json()["token"]
    assert refused(alice, aid, early) == 4403  # the waiting room opens at check-in
    assert post(alice, f"/visits/{aid}/check-in").status_code == 303
    queue = grey.get("/clinic/queue.json").json()["visits"]
    assert [(v["id"], v["state"]) for v in queue] == [(aid, "waiting")]
    assert "Liddell" not in grey.get("/clinic/queue.json").text  # ids and times only
    assert aid in grey.get("/clinic/today").text

    patient_pass = alice.get(f"/visits/{aid}/room").json()
    clinician_pass = grey.get(f"/visits/{aid}/room").json()
    assert patient_pass["role"] == "patient" and clinician_pass["role"] == "clinician"
    p_ctx, p = join(alice, aid, patient_pass["token"])
    welcome_p = p.receive_json()
    assert welcome_p["type"] == "welcome" and welcome_p["state"] == "waiting" and welcome_p["peers"] == []
    c_ctx, c = join(grey, aid, clinician_pass["token"])
    welcome_c = c.receive_json()
    assert [x["role"] for x in welcome_c["peers"]] == ["patient"]
    assert p.receive_json() == {
        "type": "peer-joined",
        "peer": welcome_c["peer"],
        "name": "grey",
        "role": "clinician",
    }

    # Chat while waiting, both ways (everyone in the room gets each message, the sender too).
    p.send_json({"type": "chat", "text": "I am here"})
    assert p.receive_json()["text"] == "I am here" and c.receive_json()["text"] == "I am here"
    c.send_json({"type": "chat", "text": "Two minutes"})
    assert c.receive_json()["text"] == "Two minutes" and p.receive_json()["text"] == "Two minutes"

    # Bob, signed in, can neither get a token nor use Alice's.
    bob = browsers["bob"]
    assert bob.get(f"/visits/{aid}/room").status_code == 404
    assert refused(bob, aid, patient_pass["token"]) == 4401

    assert post(grey, f"/visits/{aid}/admit").status_code == 303
    assert p.receive_json() == {"type": "state", "state": "in-call"}
    assert c.receive_json() == {"type": "state", "state": "in-call"}
    c.send_json(
        {"type": "signal", "to": welcome_p["peer"], "data": {"description": {"type": "offer", "sdp": "v=0"}}}
    )
    assert p.receive_json() == {
        "type": "signal",
        "from": welcome_c["peer"],
        "data": {"description": {"type": "offer", "sdp": "v=0"}},
    }
    c.send_json({"type": "signal", "to": "nobody", "data": {}})
    assert c.receive_json()["type"] == "error"
    c.send_text("not json")
    assert c.receive_json()["type"] == "error"

    assert post(grey, f"/visits/{aid}/end").status_code == 303
    assert p.receive_json() == {"type": "state", "state": "finished"}
    p_ctx.__exit__(None, None, None)
    c_ctx.__exit__(None, None, None)
    # After the visit: nobody joins, and the note is saved on the record.
    assert refused(alice, aid, alice.get(f"/visits/{aid}/room").json()["token"]) == 4403
    r = post(
        grey,
        f"/visits/{aid}/note",
        {"subjective": "Feels better", "objective": "", "assessment": "", "plan": "Review"},
    )
    assert r.status_code == 303
    assert "Feels better" in grey.get(f"/visits/{aid}").text


def test_socket_refusals(browsers: dict[str, TestClient], clinic: Clinic, server: TestClient) -> None:
    aid = alice_visit(clinic)
    alice = browsers["alice"]
    post(alice, f"/visits/{aid}/check-in")
    token = alice.get(f"/visits/{aid}/room").json()["token"]
    # No session: refused at the handshake, whatever the token.
    assert refused(browser(clinic, server), aid, token) == 4401
    # A foreign origin (cross-site WebSocket hijacking): refused.
    assert refused(alice, aid, token, headers={"origin": "https://evil.example"}) == 4403
    assert refused(alice, aid, token, headers={}) == 4403
    # Expired, tampered, or for another visit.
    key = clinic.app.state.calls.room_key
    user_id = clinic.user_ids["alice"]
    expired = rooms.issue(
        key,
        room=aid,
        who=f"user:{user_id}",
        role="patient",
        name="alice",
        expires=datetime.now(UTC) - timedelta(seconds=1),
    )
    assert refused(alice, aid, expired) == 4401
    assert refused(alice, aid, token[:-2] + ("AA" if not token.endswith("AA") else "BB")) == 4401
    other = alice_visit(clinic, start=datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=1))
    assert refused(alice, other, token) == 4401
    # No hello at all.
    with alice.websocket_connect(f"/visits/{aid}/signal", headers=ORIGIN) as ws:
        ws.send_json({"type": "chat", "text": "hi"})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4401


def test_one_time_link_lets_a_guest_in_once(
    browsers: dict[str, TestClient], clinic: Clinic, server: TestClient
) -> None:
    aid = alice_visit(clinic)
    alice, grey = browsers["alice"], browsers["grey"]
    post(alice, f"/visits/{aid}/check-in")
    post(grey, f"/visits/{aid}/admit")
    page = post(grey, f"/visits/{aid}/invite", {"label": "Interpreter"})
    assert page.status_code == 200
    link = re.search(r'value="(http://testserver/join#[^"]+)"', page.text)
    assert link, page.text
    secret = link.group(1).split("#", 1)[1]
    guest = browser(clinic, server)
    assert guest.post("/join", json={"secret": secret}).status_code == 403  # no Origin: refused
    r = guest.post("/join", json={"secret": secret}, headers=ORIGIN)
    assert r.status_code == 200 and r.json()["location"] == f"/visits/{aid}/guest"
    room = guest.get(f"/visits/{aid}/room").json()
    assert room["role"] == "guest"
    ctx, ws = join(guest, aid, room["token"])
    welcome = ws.receive_json()
    assert welcome["role"] == "guest" and welcome["state"] == "in-call"
    ctx.__exit__(None, None, None)
    # The pass in the cookie is not a room token: it cannot be used to say hello.
    cookie = next(c.value for c in guest.cookies.jar if c.name.startswith("medweave-guest"))
    assert refused(guest, aid, cookie) == 4401
    second = browser(clinic, server)
    assert second.post("/join", json={"secret": secret}, headers=ORIGIN).status_code == 404
    assert second.get(f"/visits/{aid}/room").status_code == 404
    assert second.get(f"/visits/{aid}/guest").status_code == 404  # no pass, no visit page
    assert guest.get(f"/visits/{aid}/guest").status_code == 200
    # Someone signed in (here a patient of the clinic) who opens a link joins as the guest.
    bob = browsers["bob"]
    another = post(grey, f"/visits/{aid}/invite", {"label": "Son"})
    bob_secret = re.search(r"join#([^\"]+)\"", another.text)
    assert bob_secret, another.text
    assert bob.post("/join", json={"secret": bob_secret.group(1)}, headers=ORIGIN).status_code == 200
    assert bob.get(f"/visits/{aid}/room").json()["role"] == "guest"
    stranger = browser(clinic, server)
    assert stranger.post("/join", json={"secret": "x" * 43}, headers=ORIGIN).status_code == 404
    stale = visits.invite(  # made two days ago: links live a day
        clinic.records.engine,
        principal=clinician(clinic),
        visit=visits.load(clinic.records.engine, aid),
        label="Neighbour",
        now=datetime.now(UTC) - timedelta(days=2),
    )
    assert stranger.post("/join", json={"secret": stale}, headers=ORIGIN).status_code == 404
    assert stranger.get(f"/visits/{aid}/room").status_code == 404
    assert stranger.post("/join", content=b"{", headers=ORIGIN).status_code == 400


def test_a_dropped_socket_resumes_its_place(browsers: dict[str, TestClient], clinic: Clinic) -> None:
    aid = alice_visit(clinic)
    alice, grey = browsers["alice"], browsers["grey"]
    post(alice, f"/visits/{aid}/check-in")
    post(grey, f"/visits/{aid}/admit")
    c_ctx, c = join(grey, aid, grey.get(f"/visits/{aid}/room").json()["token"])
    c.receive_json()
    p_ctx, p = join(alice, aid, alice.get(f"/visits/{aid}/room").json()["token"])
    first = p.receive_json()["peer"]
    assert c.receive_json()["type"] == "peer-joined"
    p.close(code=4000)  # not a clean close: a network drop
    p_ctx.__exit__(None, None, None)
    r_ctx, r = join(alice, aid, alice.get(f"/visits/{aid}/room").json()["token"], resume=first)
    welcome = r.receive_json()
    assert welcome["peer"] == first  # the same place: the clinician's call to it goes on
    c.send_json({"type": "chat", "text": "still there?"})
    assert c.receive_json()["text"] == "still there?"
    assert r.receive_json()["text"] == "still there?"
    r.close(code=1000)  # a clean close (hang-up, navigation): the others hear it at once
    assert c.receive_json() == {"type": "peer-left", "peer": first}
    r_ctx.__exit__(None, None, None)
    c_ctx.__exit__(None, None, None)


@contextmanager
def audit_writes_held(engine: Engine) -> Iterator[None]:
    """Hold the audit log's write lock (another writer, as a busy database would): audited work
    waits until the block ends. Reads go on."""
    with engine.connect().execution_options(sqlite_immediate=True) as conn:
        transaction = conn.begin()  # on SQLite, BEGIN IMMEDIATE: the one writer's lock
        if not is_sqlite(engine):
            conn.exec_driver_sql("LOCK TABLE audit_log IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            transaction.rollback()


def test_the_welcome_comes_first_while_the_join_is_being_audited(
    browsers: dict[str, TestClient], clinic: Clinic
) -> None:
    """The others hear that someone joined before that join is audited and welcomed, and may
    already signal the newcomer. Its page must still get its welcome first: a page that got an
    offer before its welcome dropped it, and that call never connected."""
    aid = alice_visit(clinic)
    alice, grey = browsers["alice"], browsers["grey"]
    post(alice, f"/visits/{aid}/check-in")
    post(grey, f"/visits/{aid}/admit")
    with ExitStack() as sockets:  # closed even when an assertion fails, so the server stops
        c = sockets.enter_context(joined(grey, aid, grey.get(f"/visits/{aid}/room").json()["token"]))
        c.receive_json()
        token = alice.get(f"/visits/{aid}/room").json()["token"]
        offer = {"description": {"type": "offer", "sdp": "v=0"}}
        with audit_writes_held(clinic.records.engine):
            p = sockets.enter_context(joined(alice, aid, token))
            arrival = c.receive_json()
            assert arrival["type"] == "peer-joined"
            c.send_json({"type": "signal", "to": arrival["peer"], "data": offer})
            c.send_json({"type": "chat", "text": "hello"})
            assert c.receive_json()["text"] == "hello"  # the server has passed both on to Alice
        welcome = p.receive_json()
        assert welcome["type"] == "welcome" and welcome["peer"] == arrival["peer"]
        assert p.receive_json() == {"type": "signal", "from": welcome["peers"][0]["peer"], "data": offer}
        assert p.receive_json()["text"] == "hello"


def test_a_clinician_publishes_availability_from_the_page(
    browsers: dict[str, TestClient], clinic: Clinic
) -> None:
    grey = browsers["grey"]
    page = grey.get("/schedule")
    assert page.status_code == 200 and "standard 20 min +10 video" in page.text  # today's rules
    bad = post(
        grey,
        "/schedule",
        {
            "timezone": "Europe/Paris",
            "hours": "Mon 09:00-12:00\nFunday 10:00-11:00",
            "visit_types": "short 15 min video",
        },
    )
    assert bad.status_code == 400 and "line 2" in bad.text and "Funday 10:00-11:00" in bad.text  # kept to fix
    unknown = post(
        grey,
        "/schedule",
        {"timezone": "Mars/Olympus", "hours": "Mon 09:00-12:00", "visit_types": "a 15 min video"},
    )
    assert unknown.status_code == 400 and "unknown time zone" in unknown.text
    ok = post(
        grey,
        "/schedule",
        {
            "timezone": "Europe/Paris",
            "hours": "Mon 09:00-12:00\n2027-01-09 10:00-11:00",
            "closures": "2027-01-04 to 2027-01-05 training",
            "visit_types": "short 15 min +5 video",
        },
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/schedule?saved=1"
    published = schedule.load(clinic.records.engine, clinic.practitioner_id)
    assert published.availability.timezone == "Europe/Paris" and published.visit_types == (
        VisitType("short", 15, 5, "video"),
    )
    shown_again = grey.get("/schedule?saved=1").text
    assert "2027-01-04 to 2027-01-05 training" in shown_again and "published" in shown_again
    assert browsers["alice"].get("/schedule").status_code == 404  # not a patient's page


def test_today_lists_every_visit_whose_check_in_opened(
    browsers: dict[str, TestClient], clinic: Clinic
) -> None:
    """Near midnight the next visit is tomorrow's, but its patient can already check in: the
    clinician's day must show it (a browser test once failed at 23:55 UTC for this)."""
    soon = alice_visit(
        clinic, start=datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=25)
    )
    later = alice_visit(clinic, start=datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=2))
    page = browsers["grey"].get("/clinic/today").text
    assert f'data-visit="{soon}"' in page and f'data-visit="{later}"' not in page
