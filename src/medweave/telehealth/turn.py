"""ICE servers for a call: STUN, and TURN with time-limited credentials. Pure.

TURN credentials follow coturn's REST-API shared-secret scheme (``use-auth-secret`` with
``static-auth-secret``; draft-uberti-behave-turn-rest-00 §2.2): the username is
``<expiry as Unix seconds>:<user>`` and the password is base64(HMAC-SHA1(secret, username)).
coturn recomputes the password from the username and refuses it once the expiry has passed, so
a leaked credential dies on its own and the server never stores one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any


def turn_credential(secret: bytes, *, user: str, expires: datetime) -> tuple[str, str]:
    """(username, password) valid until ``expires``. ``user`` names no person: pass an opaque id."""
    if expires.tzinfo is None:
        raise ValueError("expiry is a time-zone-aware instant")
    if ":" in user or not user:
        raise ValueError("the user part is a non-empty id without ':'")
    username = f"{int(expires.timestamp())}:{user}"
    password = base64.b64encode(hmac.new(secret, username.encode(), hashlib.sha1).digest()).decode()
    return username, password


def ice_servers(
    *,
    stun_urls: Sequence[str],
    turn_urls: Sequence[str],
    turn_secret: bytes | None,
    user: str,
    now: datetime,
    ttl: timedelta = timedelta(hours=1),
) -> list[dict[str, Any]]:
    """The ``iceServers`` of an ``RTCPeerConnection`` for one participant of one call."""
    servers: list[dict[str, Any]] = []
    if stun_urls:
        servers.append({"urls": list(stun_urls)})
    if turn_urls:
        if turn_secret is None:
            raise ValueError("TURN needs the shared secret coturn was given")
        username, credential = turn_credential(turn_secret, user=user, expires=now + ttl)
        servers.append({"urls": list(turn_urls), "username": username, "credential": credential})
    return servers
