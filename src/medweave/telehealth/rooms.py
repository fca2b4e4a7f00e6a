"""Room tokens and one-time invitation links of a video visit. Pure.

A **room token** lets one participant open the signaling socket of one visit, for a short time.
It is ``<payload>.<tag>``, both base64url without padding: the payload is the JSON
``{"v": 1, "room": appointment id, "who": participant, "role": ..., "name": ..., "exp": unix}``
and the tag is HMAC-SHA256 over the payload under a server key (the same construction as a JWT
with HS256, without the header it would not need). The token names no person: ``who`` is an
audit reference (``user:<id>`` or ``guest:<invitation id>``), ``name`` is what the other
participants see (a username, or the label the clinician gave an invitation).

The server checks the tag in constant time, the expiry against its clock, and that the room is
the one being opened. A token is made for a signed-in participant when their visit page asks for
one, so a page reconnecting after a network drop simply asks again; a stolen token is of no use
without that participant's session (``who`` must match the session's user), and dies in minutes.

An **invitation** (an interpreter, a family member) is a random 256-bit secret that the
clinician hands over as a link. Only its SHA-256 is stored; it can be used once, before its
expiry, and using it yields a guest room token that lasts until the end of the visit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

ROOM_TOKEN_TTL = timedelta(minutes=5)
INVITE_TTL = timedelta(hours=24)
ROLES = ("patient", "clinician", "guest")
MAX_TOKEN_CHARS = 2048


class RoomTokenRefused(ValueError):
    """A room token that is malformed, tampered with, expired, or for another room."""


@dataclass(frozen=True)
class RoomPass:
    """What a verified room token says."""

    room: str
    who: str
    role: str
    name: str
    expires: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Strict, canonical base64url: a character outside the alphabet, or unused bits that are not
    zero (two spellings of the same bytes), is an error."""
    data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    if _b64(data) != text:
        raise ValueError("not canonical base64url")
    return data


def issue(key: bytes, *, room: str, who: str, role: str, name: str, expires: datetime) -> str:
    if role not in ROLES:
        raise ValueError(f"role is one of {ROLES}")
    if expires.tzinfo is None:
        raise ValueError("expiry is a time-zone-aware instant")
    payload = orjson.dumps(
        {"v": 1, "room": room, "who": who, "role": role, "name": name, "exp": int(expires.timestamp())}
    )
    tag = hmac.new(key, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(tag)}"


def verify(key: bytes, token: object, *, room: str, now: datetime) -> RoomPass:
    """The pass of a valid token for ``room``; ``RoomTokenRefused`` otherwise (never another error)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise RoomTokenRefused("not a room token")
    body, tag = token.split(".")
    try:
        payload, given = _unb64(body), _unb64(tag)
    except (ValueError, binascii.Error):
        raise RoomTokenRefused("not a room token") from None
    if not hmac.compare_digest(hmac.new(key, payload, hashlib.sha256).digest(), given):
        raise RoomTokenRefused("the room token's signature does not match")
    try:
        claims: Any = orjson.loads(payload)
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
        found = RoomPass(
            room=str(claims["room"]),
            who=str(claims["who"]),
            role=str(claims["role"]),
            name=str(claims["name"]),
            expires=expires,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError):
        raise RoomTokenRefused("not a room token") from None
    if found.room != room:
        raise RoomTokenRefused("the room token is for another visit")
    if now >= found.expires:
        raise RoomTokenRefused("the room token has expired")
    return found


def new_invite_secret() -> str:
    return secrets.token_urlsafe(32)


def invite_digest(secret: str) -> str:
    """What is stored of an invitation: the SHA-256 of its secret, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()
