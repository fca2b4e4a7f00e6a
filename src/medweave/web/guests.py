"""The guest pass a one-time link leaves in the browser: an HttpOnly, SameSite=Strict cookie,
scoped to the visit's path, signed with the guest key (``Calls.guest_key``), valid until an hour
after the visit. Only the server reads it; the page gets short-lived room tokens instead."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import HTTPConnection

from medweave.telehealth import rooms
from medweave.telehealth.calls import Calls

GUEST_COOKIE = "medweave-guest"


def cookie_name(appointment_id: str) -> str:
    return f"{GUEST_COOKIE}-{appointment_id[:36]}"


def guest_pass(
    calls: Calls, request: HTTPConnection, appointment_id: str, *, now: datetime
) -> rooms.RoomPass | None:
    """The valid guest pass of this visit in the browser's cookie, or None."""
    try:
        return rooms.verify(
            calls.guest_key, request.cookies.get(cookie_name(appointment_id)), room=appointment_id, now=now
        )
    except rooms.RoomTokenRefused:
        return None
