"""What a running app needs for video visits: the signaling hub, the room-token key, ICE servers.

``Calls.from_settings`` reads ``MEDWEAVE_TELEHEALTH_*``: the signaling bus (in this process, or
Redis), STUN and TURN URLs, coturn's shared secret (from a file, never the repository) and the
ICE transport policy. The room-token key is derived from the app's token secret with HMAC, so
there is no other secret to manage and room tokens cannot be used as access tokens or the other
way round.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medweave.config import Settings
from medweave.errors import ConfigurationError
from medweave.telehealth.signaling import Bus, Hub, LocalBus
from medweave.telehealth.turn import ice_servers


@dataclass
class Calls:
    hub: Hub
    room_key: bytes
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: bytes | None = None
    ice_policy: str = "all"

    @property
    def guest_key(self) -> bytes:
        """Signs the guest pass a one-time link leaves in an HttpOnly cookie. A different key from
        room tokens', so the long-lived pass can never be used as a room token itself."""
        return hmac.new(self.room_key, b"guest pass", hashlib.sha256).digest()

    @classmethod
    def from_settings(cls, settings: Settings, *, token_secret: bytes) -> Calls:
        bus: Bus
        if settings.telehealth_signaling == "embedded":
            bus = LocalBus()
        elif settings.telehealth_signaling.startswith(("redis://", "rediss://", "unix://")):
            from medweave.telehealth.redis_bus import RedisBus

            bus = RedisBus(settings.telehealth_signaling, namespace=settings.jobs_namespace)
        else:
            raise ConfigurationError("MEDWEAVE_TELEHEALTH_SIGNALING is 'embedded' or a redis:// URL")
        turn_urls = tuple(settings.telehealth_turn_urls.split())
        secret = None
        if turn_urls:
            path = settings.telehealth_turn_secret_file
            if path is None:
                raise ConfigurationError(
                    "MEDWEAVE_TELEHEALTH_TURN_URLS needs MEDWEAVE_TELEHEALTH_TURN_SECRET_FILE"
                )
            try:
                secret = path.read_text().strip().encode()
            except OSError as exc:
                raise ConfigurationError(f"cannot read the TURN secret file: {exc.strerror}") from None
            if not secret:
                raise ConfigurationError("the TURN secret file is empty")
        if settings.telehealth_ice_policy == "relay" and not turn_urls:
            raise ConfigurationError("MEDWEAVE_TELEHEALTH_ICE_POLICY=relay needs TURN servers")
        return cls(
            hub=Hub(bus),
            room_key=hmac.new(token_secret, b"medweave room tokens v1", hashlib.sha256).digest(),
            stun_urls=tuple(settings.telehealth_stun_urls.split()),
            turn_urls=turn_urls,
            turn_secret=secret,
            ice_policy=settings.telehealth_ice_policy,
        )

    def rtc_configuration(self, *, peer_ref: str, now: datetime) -> dict[str, Any]:
        """The ``RTCConfiguration`` a participant's browser uses; the TURN user is an opaque hash."""
        user = hashlib.sha256(peer_ref.encode()).hexdigest()[:16]
        servers = ice_servers(
            stun_urls=self.stun_urls,
            turn_urls=self.turn_urls,
            turn_secret=self.turn_secret,
            user=user,
            now=now,
        )
        return {"iceServers": servers, "iceTransportPolicy": self.ice_policy}
