"""Signaling of video visits: rooms of up to four peers, and the messages relayed between them.

The protocol (JSON text frames over the visit's WebSocket) is the same whoever carries it, so a
later SFU (janus, LiveKit) can take the media without the pages changing how they talk:

client -> server, after the ``hello`` that carries the room token (see ``web.routes.visits``):
    {"type": "signal", "to": PEER, "data": {...}}   an SDP offer/answer or an ICE candidate
    {"type": "chat", "text": "..."}                   at most 500 characters
    {"type": "ping"}

server -> client:
    {"type": "welcome", "peer": ME, "peers": [{"peer", "name", "role"}], "iceServers": [...], ...}
    {"type": "peer-joined" | "peer-left", "peer": ..., ...}
    {"type": "signal", "from": PEER, "data": {...}}
    {"type": "chat", "from": PEER, "name": ..., "text": ..., "at": ISO}
    {"type": "state", "state": "in-call" | "finished"}   the clinician admitted or hung up
    {"type": "error", "message": ...}

``Hub`` keeps the peers of each room. A peer whose socket drops is kept for ``grace`` seconds,
so a page that reconnects (a network blip) resumes the same peer id and its calls go on; only
then do the others hear ``peer-left``. Messages between peers and server events go through a
``Bus``: ``LocalBus`` delivers in this process (the embedded default) and ``RedisBus`` publishes
on Redis pub/sub, so peers connected to different app processes reach each other.

Nothing here stores chat text or SDP, and nothing is logged of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

log = logging.getLogger("medweave.telehealth.signaling")

MAX_PEERS = 4
MAX_CHAT = 500
MAX_SIGNAL_BYTES = 64 * 1024
GRACE_SECONDS = 15.0
Send = Callable[[dict[str, Any]], Awaitable[None]]


class SignalingError(ValueError):
    """A message or join the hub refuses (room full, unknown peer, malformed message)."""


@dataclass
class Peer:
    peer: str
    room: str
    who: str  # audit reference of the participant (user:<id>, guest:<hash>)
    name: str
    role: str
    send: Send | None = None  # None while away (socket dropped, within the grace period)
    away_since: float | None = None

    def public(self) -> dict[str, str]:
        return {"peer": self.peer, "name": self.name, "role": self.role}


class Bus(Protocol):
    """Carries envelopes ``{"room", "to" (peer or None for all), "from", "msg"}`` to every process."""

    async def publish(self, envelope: dict[str, Any]) -> None: ...

    async def start(self, deliver: Callable[[dict[str, Any]], Awaitable[None]]) -> None: ...

    async def watch(self, room: str) -> None: ...

    async def unwatch(self, room: str) -> None: ...

    async def members(self, room: str) -> list[dict[str, str]]: ...

    async def add_member(self, room: str, info: dict[str, str], *, limit: int) -> bool: ...

    async def remove_member(self, room: str, peer: str) -> None: ...

    async def close(self) -> None: ...


class LocalBus:
    """The embedded default: one process, so publishing is delivering."""

    def __init__(self) -> None:
        self._deliver: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self._members: dict[str, dict[str, dict[str, str]]] = {}

    async def start(self, deliver: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self._deliver = deliver

    async def publish(self, envelope: dict[str, Any]) -> None:
        if self._deliver is not None:
            await self._deliver(envelope)

    async def watch(self, room: str) -> None:
        return None

    async def unwatch(self, room: str) -> None:
        return None

    async def members(self, room: str) -> list[dict[str, str]]:
        return list(self._members.get(room, {}).values())

    async def add_member(self, room: str, info: dict[str, str], *, limit: int) -> bool:
        present = self._members.setdefault(room, {})
        if info["peer"] not in present and len(present) >= limit:
            return False
        present[info["peer"]] = info
        return True

    async def remove_member(self, room: str, peer: str) -> None:
        present = self._members.get(room, {})
        present.pop(peer, None)
        if not present:
            self._members.pop(room, None)

    async def close(self) -> None:
        return None


@dataclass
class Hub:
    bus: Bus = field(default_factory=LocalBus)
    grace: float = GRACE_SECONDS
    _peers: dict[str, Peer] = field(default_factory=dict)  # the peers connected to THIS process
    _rooms: dict[str, dict[str, Peer]] = field(default_factory=dict)  # the same, by room
    _roster: dict[str, set[str]] = field(default_factory=dict)  # every peer of a watched room
    _started: bool = False
    _reapers: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    async def _ensure_started(self) -> None:
        if not self._started:
            self._started = True
            await self.bus.start(self._deliver)

    # -- joining and leaving ----------------------------------------------------------------------

    async def join(
        self, *, room: str, who: str, name: str, role: str, send: Send, resume: str | None = None
    ) -> tuple[Peer, list[dict[str, str]]]:
        """Add a peer (or resume one within its grace period); returns it and the others."""
        await self._ensure_started()
        kept = self._peers.get(resume) if resume else None
        if kept is not None and kept.room == room and kept.who == who:
            reaper = self._reapers.pop(kept.peer, None)
            if reaper is not None:
                reaper.cancel()
            kept.send, kept.away_since = send, None
            others = [m for m in await self.bus.members(room) if m["peer"] != kept.peer]
            return kept, [{k: m[k] for k in ("peer", "name", "role")} for m in others]
        # The same participant back without its peer id (the tab was reloaded or crashed): its
        # old place, kept for the grace period, goes now, so a full call has room for it.
        for stale in [p for p in self._rooms.get(room, {}).values() if p.who == who and p.send is None]:
            reaper = self._reapers.pop(stale.peer, None)
            if reaper is not None:
                reaper.cancel()
            await self.leave(stale)
        peer = Peer(secrets.token_urlsafe(9), room, who, name, role, send)
        if not await self.bus.add_member(room, {**peer.public(), "who": who}, limit=MAX_PEERS):
            raise SignalingError(f"this call already has {MAX_PEERS} participants")
        self._peers[peer.peer] = peer
        self._rooms.setdefault(room, {})[peer.peer] = peer
        await self.bus.watch(room)
        members = await self.bus.members(room)
        self._roster.setdefault(room, set()).update(m["peer"] for m in members)
        others = [m for m in members if m["peer"] != peer.peer]
        await self.bus.publish(
            {"room": room, "to": None, "from": peer.peer, "msg": {"type": "peer-joined", **peer.public()}}
        )
        return peer, [{k: m[k] for k in ("peer", "name", "role")} for m in others]

    async def drop(self, peer: Peer) -> None:
        """The peer's socket closed: keep it for the grace period, then let it go."""
        if self._peers.get(peer.peer) is not peer:
            return
        peer.send, peer.away_since = None, time.monotonic()
        self._reapers[peer.peer] = asyncio.create_task(self._reap_later(peer))

    async def _reap_later(self, peer: Peer) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(self.grace)
            if peer.send is None:
                self._reapers.pop(peer.peer, None)
                await self.leave(peer)

    async def leave(self, peer: Peer) -> None:
        if self._peers.pop(peer.peer, None) is None:
            return
        here = self._rooms.get(peer.room, {})
        here.pop(peer.peer, None)
        await self.bus.remove_member(peer.room, peer.peer)
        await self.bus.publish(
            {
                "room": peer.room,
                "to": None,
                "from": peer.peer,
                "msg": {"type": "peer-left", "peer": peer.peer},
            }
        )
        if not here:
            self._rooms.pop(peer.room, None)
            self._roster.pop(peer.room, None)
            await self.bus.unwatch(peer.room)

    async def close_room(self, room: str, message: dict[str, Any]) -> None:
        """Tell everyone in the room (on every process) something from the server."""
        await self._ensure_started()
        await self.bus.publish({"room": room, "to": None, "from": None, "msg": message})

    def local_peers(self, room: str | None = None) -> list[Peer]:
        if room is not None:
            return list(self._rooms.get(room, {}).values())
        return list(self._peers.values())

    # -- messages ---------------------------------------------------------------------------------

    async def receive(self, peer: Peer, raw: str | bytes) -> None:
        """Handle one frame from ``peer``; ``SignalingError`` for anything not in the protocol."""
        if len(raw) > MAX_SIGNAL_BYTES:
            raise SignalingError("message too large")
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise SignalingError("not JSON") from None
        if not isinstance(msg, dict):
            raise SignalingError("a message is a JSON object")
        kind = msg.get("type")
        if kind == "ping":
            if peer.send is not None:
                await peer.send({"type": "pong"})
            return
        if kind == "signal":
            to, data = msg.get("to"), msg.get("data")
            if not isinstance(to, str) or not isinstance(data, dict):
                raise SignalingError("a signal names a peer ('to') and carries an object ('data')")
            if to not in self._roster.get(peer.room, ()):
                raise SignalingError("no such peer in this call")
            await self.bus.publish(
                {
                    "room": peer.room,
                    "to": to,
                    "from": peer.peer,
                    "msg": {"type": "signal", "from": peer.peer, "data": data},
                }
            )
            return
        if kind == "chat":
            text = msg.get("text")
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_CHAT:
                raise SignalingError(f"a chat message is 1 to {MAX_CHAT} characters")
            at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            chat = {
                "type": "chat",
                "from": peer.peer,
                "name": peer.name,
                "role": peer.role,
                "text": text.strip(),
                "at": at,
            }
            await self.bus.publish({"room": peer.room, "to": None, "from": None, "msg": chat})
            return
        raise SignalingError(f"unknown message type {kind!r}")

    async def _deliver(self, envelope: dict[str, Any]) -> None:
        room, to, sender, msg = envelope["room"], envelope.get("to"), envelope.get("from"), envelope["msg"]
        here = self._rooms.get(room)
        if here is None:
            return
        kind = msg.get("type")
        if kind == "peer-joined":  # keep the roster of the room: who a signal may go to
            self._roster.setdefault(room, set()).add(msg["peer"])
        elif kind == "peer-left":
            self._roster.get(room, set()).discard(msg["peer"])
        if to:
            target = here.get(to)
            targets = [target] if target is not None else []
        else:
            targets = [p for p in here.values() if p.peer != sender]
        for target in targets:
            send = target.send
            if send is None:
                continue  # away: within its grace period, it reconnects and is told what it needs
            try:
                await send(msg)
            except Exception as exc:  # a socket closing under us: its own handler drops it
                log.info("a signaling send failed: %s", type(exc).__name__)

    async def close(self) -> None:
        for task in self._reapers.values():
            task.cancel()
        await self.bus.close()
