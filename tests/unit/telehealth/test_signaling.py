"""The signaling hub in one process: rooms of at most four, relaying, chat, resume after a drop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from medweave.telehealth.signaling import MAX_PEERS, Hub, SignalingError


class Socket:
    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.got.append(message)

    def kinds(self) -> list[str]:
        return [m["type"] for m in self.got]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_relay_chat_and_room_size() -> None:
    async def scenario() -> None:
        hub = Hub()
        a, b, c = Socket(), Socket(), Socket()
        pa, others = await hub.join(room="r", who="user:a", name="alice", role="patient", send=a.send)
        assert others == []
        pb, others = await hub.join(room="r", who="user:b", name="grey", role="clinician", send=b.send)
        assert others == [{"peer": pa.peer, "name": "alice", "role": "patient"}]
        assert a.got == [{"type": "peer-joined", "peer": pb.peer, "name": "grey", "role": "clinician"}]
        await hub.join(room="other", who="user:c", name="carol", role="patient", send=c.send)

        await hub.receive(pb, b'{"type": "signal", "to": "%s", "data": {"candidate": {}}}' % pa.peer.encode())
        assert a.got[-1] == {"type": "signal", "from": pb.peer, "data": {"candidate": {}}}
        await hub.receive(pa, '{"type": "chat", "text": "  hello  "}')
        assert a.got[-1]["text"] == b.got[-1]["text"] == "hello" and b.got[-1]["name"] == "alice"
        assert c.got == []  # another room hears nothing

        for bad in (
            '{"type": "signal", "to": "nobody", "data": {}}',
            '{"type": "chat", "text": ""}',
            '{"type": "chat", "text": "%s"}' % ("x" * 501),
            "[]",
            "nope",
            '{"type": "shout"}',
        ):
            with pytest.raises(SignalingError):
                await hub.receive(pa, bad)
        with pytest.raises(SignalingError, match="too large"):
            await hub.receive(pa, "x" * 70_000)

        for n in range(MAX_PEERS - 2):
            await hub.join(room="r", who=f"guest:{n}", name=f"g{n}", role="guest", send=Socket().send)
        with pytest.raises(SignalingError, match="already has 4"):
            await hub.join(room="r", who="guest:late", name="late", role="guest", send=Socket().send)
        await hub.leave(pb)
        assert a.got[-1] == {"type": "peer-left", "peer": pb.peer}
        await hub.join(room="r", who="guest:late", name="late", role="guest", send=Socket().send)
        await hub.close()

    run(scenario())


def test_a_dropped_peer_resumes_within_grace_and_is_dropped_after() -> None:
    async def scenario() -> None:
        hub = Hub(grace=0.2)
        a, b = Socket(), Socket()
        pa, _ = await hub.join(room="r", who="user:a", name="alice", role="patient", send=a.send)
        pb, _ = await hub.join(room="r", who="user:b", name="grey", role="clinician", send=b.send)
        await hub.drop(pa)
        assert "peer-left" not in b.kinds()
        # Someone else cannot take the place, even knowing the peer id.
        intruder, _ = await hub.join(
            room="r", who="user:x", name="x", role="patient", send=Socket().send, resume=pa.peer
        )
        assert intruder.peer != pa.peer
        again = Socket()
        back, others = await hub.join(
            room="r", who="user:a", name="alice", role="patient", send=again.send, resume=pa.peer
        )
        assert back is pa and {o["peer"] for o in others} == {pb.peer, intruder.peer}
        await asyncio.sleep(0.3)
        assert "peer-left" not in [m["type"] for m in b.got if m.get("peer") == pa.peer]
        await hub.receive(pb, '{"type": "chat", "text": "still there?"}')
        assert again.got[-1]["text"] == "still there?"
        await hub.drop(pa)
        await asyncio.sleep(0.3)  # past the grace period: gone
        assert {"type": "peer-left", "peer": pa.peer} in b.got
        await hub.close()

    run(scenario())


def test_a_reloaded_page_takes_back_its_own_place_in_a_full_call() -> None:
    """A tab that crashed comes back without its peer id; its old place (kept for the grace
    period) goes at once, so a full call has room for it. Others' places are not touched."""

    async def scenario() -> None:
        hub = Hub(grace=60)
        peers = [
            (await hub.join(room="r", who=f"user:{n}", name=f"p{n}", role="guest", send=Socket().send))[0]
            for n in range(MAX_PEERS)
        ]
        await hub.drop(peers[0])
        with pytest.raises(SignalingError):  # someone else: still full
            await hub.join(room="r", who="user:x", name="x", role="guest", send=Socket().send)
        back, others = await hub.join(room="r", who="user:0", name="p0", role="guest", send=Socket().send)
        assert back.peer != peers[0].peer and len(others) == MAX_PEERS - 1
        assert all(set(o) == {"peer", "name", "role"} for o in others)  # no audit reference leaks
        await hub.drop(back)
        resumed, others = await hub.join(
            room="r", who="user:0", name="p0", role="guest", send=Socket().send, resume=back.peer
        )
        assert resumed is back and all(set(o) == {"peer", "name", "role"} for o in others)
        await hub.close()

    run(scenario())
