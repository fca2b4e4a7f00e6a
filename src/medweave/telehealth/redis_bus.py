"""Signaling across app processes: Redis pub/sub for messages, a Redis hash for each room's peers.

Set ``MEDWEAVE_TELEHEALTH_SIGNALING=redis://host:6379/0``. Each process subscribes to the
channels of the rooms it has peers in (``<ns>:signal:<room>``) and delivers what arrives to its
own sockets; the peers of a room are a hash (``<ns>:room:<room>``), added to by a Lua script
that also enforces the room's size, so two processes cannot both admit a fifth participant.
Room hashes expire a day after their last change, so a crashed process leaves nothing for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis

log = logging.getLogger("medweave.telehealth.redis_bus")
ROOM_TTL_SECONDS = 24 * 3600

_ADD = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


class RedisBus:
    def __init__(self, url: str, *, namespace: str = "medweave") -> None:
        self._redis = aioredis.Redis.from_url(url)
        self._ns = namespace
        self._pubsub = self._redis.pubsub()
        self._reader: asyncio.Task[None] | None = None
        self._deliver: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self._watched: set[str] = set()
        self._add = self._redis.register_script(_ADD)

    def _channel(self, room: str) -> str:
        return f"{self._ns}:signal:{room}"

    def _room(self, room: str) -> str:
        return f"{self._ns}:room:{room}"

    async def start(self, deliver: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self._deliver = deliver

    async def publish(self, envelope: dict[str, Any]) -> None:
        await self._redis.publish(self._channel(envelope["room"]), orjson.dumps(envelope))

    async def watch(self, room: str) -> None:
        if room in self._watched:
            return
        self._watched.add(room)
        await self._pubsub.subscribe(self._channel(room))
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())

    async def unwatch(self, room: str) -> None:
        if room in self._watched:
            self._watched.discard(room)
            await self._pubsub.unsubscribe(self._channel(room))

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost connection: redis-py reconnects on the next call
                log.warning("signaling bus read failed: %s", type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message" or self._deliver is None:
                continue
            try:
                await self._deliver(orjson.loads(message["data"]))
            except Exception as exc:
                log.warning("a signaling envelope was not delivered: %s", type(exc).__name__)

    async def members(self, room: str) -> list[dict[str, str]]:
        raw = await self._redis.hgetall(self._room(room))
        return [orjson.loads(v) for _k, v in sorted(raw.items())]

    async def add_member(self, room: str, info: dict[str, str], *, limit: int) -> bool:
        added = await self._add(
            keys=[self._room(room)], args=[info["peer"], orjson.dumps(info), limit, ROOM_TTL_SECONDS]
        )
        return bool(added)

    async def remove_member(self, room: str, peer: str) -> None:
        await self._redis.hdel(self._room(room), peer)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        await self._redis.aclose()
