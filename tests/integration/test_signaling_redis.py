"""Signaling across app processes: two hubs on one Redis (pub/sub and a shared room roster)."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import pytest
from jobs_support import REDIS_URL

from medweave.telehealth.redis_bus import RedisBus
from medweave.telehealth.signaling import MAX_PEERS, Hub, SignalingError


class Socket:
    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.got.append(message)


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_peers_on_two_processes_reach_each_other() -> None:
    namespace = f"medweave-test-{secrets.token_hex(4)}"

    async def scenario() -> None:
        one, two = (
            Hub(RedisBus(REDIS_URL, namespace=namespace)),
            Hub(RedisBus(REDIS_URL, namespace=namespace)),
        )
        a, b = Socket(), Socket()
        pa, _ = await one.join(room="visit", who="user:a", name="alice", role="patient", send=a.send)
        pb, others = await two.join(room="visit", who="user:b", name="grey", role="clinician", send=b.send)
        assert others == [{"peer": pa.peer, "name": "alice", "role": "patient"}]
        await until(lambda: any(m["type"] == "peer-joined" for m in a.got))

        await two.receive(
            pb, json.dumps({"type": "signal", "to": pa.peer, "data": {"description": {"type": "offer"}}})
        )
        await until(lambda: any(m["type"] == "signal" for m in a.got))
        assert [m for m in a.got if m["type"] == "signal"] == [
            {"type": "signal", "from": pb.peer, "data": {"description": {"type": "offer"}}}
        ]
        assert not any(m["type"] == "signal" for m in b.got)  # not echoed to the sender

        await one.receive(pa, '{"type": "chat", "text": "hello across"}')
        await until(
            lambda: any(m["type"] == "chat" for m in b.got) and any(m["type"] == "chat" for m in a.got)
        )

        await two.close_room("visit", {"type": "state", "state": "in-call"})
        await until(lambda: {"type": "state", "state": "in-call"} in a.got)

        # The room's size holds across processes.
        for n in range(MAX_PEERS - 2):
            await (one if n % 2 else two).join(
                room="visit", who=f"guest:{n}", name="g", role="guest", send=Socket().send
            )
        with pytest.raises(SignalingError):
            await one.join(room="visit", who="guest:late", name="late", role="guest", send=Socket().send)

        await two.leave(pb)
        await until(lambda: {"type": "peer-left", "peer": pb.peer} in a.got)
        await one.close()
        await two.close()

    asyncio.run(scenario())
