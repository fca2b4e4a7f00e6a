"""The video visit's machine endpoints: its signaling WebSocket, room tokens, one-time links.

``GET /visits/{id}/room`` gives a signed-in participant (or a guest holding an invitation
cookie) a short-lived room token and the ``RTCConfiguration`` (ICE servers with TURN
credentials). ``WS /visits/{id}/signal`` is the visit's signaling socket:

1. the handshake is refused (HTTP 403) unless the ``Origin`` is this site's, and unless it carries
   a page session or a guest cookie: a WebSocket without a session never opens;
2. the first frame must be ``{"type": "hello", "token": ROOM_TOKEN[, "resume": PEER]}`` within
   10 s; the token must be for this visit, unexpired, and for the session's own user (or be the
   guest's cookie); then ``visits.participant`` and the visit's state decide: patient and
   clinician while the patient waits and in the call, guests only in the call;
3. every join is audited (an AuditEvent on the patient's record, with the participant).

A socket that drops without a clean close keeps its place for the hub's grace period, so the
page can reconnect and resume. Close codes: 4401 no or wrong credentials, 4403 not allowed now,
4408 no hello in time, 4409 the call is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from medweave.audit import Actor, rest_event
from medweave.errors import MedweaveError, NotFound
from medweave.identity import IdentityService, Session
from medweave.records import fhir
from medweave.records.service import RecordService
from medweave.telehealth import rooms, visits
from medweave.telehealth.calls import Calls
from medweave.telehealth.signaling import SignalingError
from medweave.web import guests
from medweave.web.pages import session as cookies

log = logging.getLogger("medweave.web.visits")
router = APIRouter()
HELLO_SECONDS = 10.0
CLEAN_CLOSE = (1000, 1001)
LIVE_STATES = {
    "patient": ("waiting", "in-call"),
    "clinician": ("scheduled", "waiting", "in-call"),
    "guest": ("in-call",),
}


def _calls(app: Any) -> Calls:
    calls: Calls = app.state.calls
    return calls


def same_origin(origin: str | None, *, base_url: str, host: str | None) -> bool:
    """Whether a browser's ``Origin`` is this site (the public base URL, or the host it asked for)."""
    if not origin:
        return False
    base = urlsplit(base_url)
    allowed = {f"{base.scheme}://{base.netloc}"}
    if host:
        allowed |= {f"http://{host}", f"https://{host}"}
    return origin.rstrip("/") in allowed


def _session(identity: IdentityService, token: str | None) -> Session | None:
    found = identity.load_session(token) if token else None
    return None if found is None or found.needs_second_factor else found


@router.get("/visits/{appointment_id}/room", include_in_schema=False)
def room_pass(request: Request, appointment_id: str) -> Response:
    """A short-lived room token and the RTCConfiguration, for the visit page's script. A browser
    holding this visit's guest pass joins as that guest, even if someone is signed in there."""
    if not fhir.valid_id(appointment_id):
        return JSONResponse({"error": "not found"}, status_code=404)
    calls = _calls(request.app)
    records: RecordService = request.app.state.records
    now = datetime.now(UTC)
    try:
        visit = visits.load(records.engine, appointment_id)
        guest = guests.guest_pass(calls, request, appointment_id, now=now)
        session = cookies.load_session(request)
        if guest is not None:
            who, role, name = guest.who, "guest", guest.name
        elif session is not None and not session.needs_second_factor:
            principal = cookies.identity(request).principal_for_session(session)
            role = visits.participant(visit, principal)
            who, name = f"user:{session.user.id}", session.user.username
        else:
            raise NotFound("no such visit")
    except NotFound:
        return JSONResponse({"error": "not found"}, status_code=404)
    expires = now + rooms.ROOM_TOKEN_TTL
    token = rooms.issue(calls.room_key, room=appointment_id, who=who, role=role, name=name, expires=expires)
    return JSONResponse(
        {
            "token": token,
            "role": role,
            "state": visit.state,
            "rtc": calls.rtc_configuration(peer_ref=who, now=now),
        }
    )


@router.post("/join", include_in_schema=False)
async def join_with_link(request: Request) -> Response:
    """Use a one-time link. The secret travels in the body (the link keeps it after ``#``, which
    browsers never send), so it is in no URL the server or a proxy logs."""
    settings = request.app.state.settings
    if not same_origin(
        request.headers.get("origin"), base_url=settings.base_url, host=request.headers.get("host")
    ):
        return JSONResponse({"error": "forbidden"}, status_code=403)
    try:
        body = orjson.loads(await request.body())
        secret = body["secret"] if isinstance(body, dict) else None
    except (orjson.JSONDecodeError, KeyError):
        secret = None
    if not isinstance(secret, str):
        return JSONResponse({"error": "this link is not valid"}, status_code=400)
    records: RecordService = request.app.state.records
    now = datetime.now(UTC)
    try:
        guest = await run_in_threadpool(visits.redeem, records.engine, secret, now=now)
        visit = await run_in_threadpool(visits.load, records.engine, guest.appointment_id)
    except NotFound:
        return JSONResponse(
            {"error": "this link is not valid, was already used, or has expired"}, status_code=404
        )
    expires = max(visit.end + timedelta(hours=1), now + rooms.ROOM_TOKEN_TTL)
    token = rooms.issue(
        _calls(request.app).guest_key,
        room=visit.appointment_id,
        who=guest.who,
        role="guest",
        name=guest.label,
        expires=expires,
    )
    answer = JSONResponse({"location": f"/visits/{visit.appointment_id}/guest"})
    answer.set_cookie(
        guests.cookie_name(visit.appointment_id),
        token,
        path=f"/visits/{visit.appointment_id}",
        secure=cookies.is_tls(request),
        httponly=True,
        samesite="strict",
        expires=int((expires - now).total_seconds()),
    )
    return answer


@router.websocket("/visits/{appointment_id}/signal")
async def signal(ws: WebSocket, appointment_id: str) -> None:
    app = ws.app
    settings = app.state.settings
    calls = _calls(app)
    records: RecordService = app.state.records
    identity: IdentityService = app.state.identity
    if not fhir.valid_id(appointment_id) or not same_origin(
        ws.headers.get("origin"), base_url=settings.base_url, host=ws.headers.get("host")
    ):
        await ws.close(code=4403)
        return
    # The same cookie the pages use: only the __Host- one when the site is https.
    session_cookie = cookies.cookie_name(ws, cookies.SESSION_COOKIE)
    session = await run_in_threadpool(_session, identity, ws.cookies.get(session_cookie))
    guest = guests.guest_pass(calls, ws, appointment_id, now=datetime.now(UTC))
    if session is None and guest is None:
        await ws.close(code=4401)
        return
    await ws.accept()
    try:
        hello = orjson.loads(await asyncio.wait_for(ws.receive_text(), HELLO_SECONDS))
    except (TimeoutError, WebSocketDisconnect, orjson.JSONDecodeError, KeyError, RuntimeError):
        await _close(ws, 4408, "say hello with a room token first")
        return
    now = datetime.now(UTC)
    try:
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            raise rooms.RoomTokenRefused("say hello with a room token first")
        room_pass = rooms.verify(calls.room_key, hello.get("token"), room=appointment_id, now=now)
        if room_pass.role == "guest":
            if guest is None or guest.who != room_pass.who:
                raise rooms.RoomTokenRefused("a guest joins from the browser the link was opened in")
        elif session is None or room_pass.who != f"user:{session.user.id}":
            raise rooms.RoomTokenRefused("this room token belongs to another session")
        visit = await run_in_threadpool(visits.load, records.engine, appointment_id)
        if room_pass.role != "guest" and session is not None:
            principal = await run_in_threadpool(identity.principal_for_session, session)
            if visits.participant(visit, principal) != room_pass.role:
                raise rooms.RoomTokenRefused("the room token does not match this participant")
    except (rooms.RoomTokenRefused, NotFound) as exc:
        await _close(ws, 4401, str(exc))
        return
    if visit.status != "booked" or visit.state not in LIVE_STATES[room_pass.role]:
        await _close(ws, 4403, f"this visit is {visit.state}")
        return
    lock = asyncio.Lock()
    # The welcome is the first message a page gets. The others hear "peer-joined" as soon as the
    # hub has the newcomer, and may signal it while its join is still being audited: those
    # messages wait here and follow the welcome. (A page that got an offer before its welcome
    # dropped it, and that call never connected.)
    early: list[dict[str, Any]] | None = []

    async def send(message: dict[str, Any]) -> None:
        if early is not None:
            early.append(message)
            return
        async with lock:
            await ws.send_text(orjson.dumps(message).decode())

    async def welcome(message: dict[str, Any]) -> None:
        nonlocal early
        async with lock:
            await ws.send_text(orjson.dumps(message).decode())
            while early:  # what arrives while these go out joins the end of the line
                await ws.send_text(orjson.dumps(early.pop(0)).decode())
            early = None

    clean = False  # a page that hangs up or navigates away (1000, 1001) leaves at once
    resume = hello.get("resume") if isinstance(hello.get("resume"), str) else None
    try:
        peer, others = await calls.hub.join(
            room=appointment_id,
            who=room_pass.who,
            name=room_pass.name,
            role=room_pass.role,
            send=send,
            resume=resume,
        )
    except SignalingError as exc:
        await _audit_join(records, room_pass, visit, status=409)
        await _close(ws, 4409, str(exc))
        return
    if not await _audit_join(records, room_pass, visit, status=200):
        await calls.hub.leave(peer)  # no unaudited access: out again, with a reason
        await _close(ws, 1011, "the visit cannot be joined now; try again")
        return
    try:
        await welcome(
            {
                "type": "welcome",
                "peer": peer.peer,
                "peers": others,
                "state": visit.state,
                "role": room_pass.role,
                "rtc": calls.rtc_configuration(peer_ref=room_pass.who, now=now),
            }
        )
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                clean = frame.get("code") in CLEAN_CLOSE
                break
            raw = frame.get("text") or frame.get("bytes") or b""
            try:
                await calls.hub.receive(peer, raw)
            except SignalingError as exc:
                await send({"type": "error", "message": str(exc)})
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        if peer.send is send:  # not already resumed on a newer socket
            await (calls.hub.leave(peer) if clean else calls.hub.drop(peer))


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await ws.close(code=code, reason=reason[:120])


async def _audit_join(
    records: RecordService, room_pass: rooms.RoomPass, visit: visits.Visit, *, status: int
) -> bool:
    """Audit a join (or a refused one) on the patient's record; False if it could not be audited."""
    audit = records.trail.audit
    if audit is None:
        return True
    who = room_pass.who if room_pass.role == "guest" else None
    actor_ref = who or (
        f"Patient/{visit.patient_id}"
        if room_pass.role == "patient"
        else f"Practitioner/{visit.practitioner_id}"
    )
    event = rest_event(
        "operation",
        status=status,
        actor=Actor(who=actor_ref),
        resource_type="Appointment",
        resource_id=visit.appointment_id,
        patient_id=visit.patient_id,
        operation="join-call",
    )
    try:
        await run_in_threadpool(audit.record, event)
    except MedweaveError as exc:
        log.warning("a call join was not audited: %s", type(exc).__name__)
        return False
    return True
