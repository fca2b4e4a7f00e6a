"""What every part of the identity service shares: the engine, derived keys, the clock, row mapping."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, Engine, Row, select

from medweave.errors import NotFound
from medweave.identity.model import User
from medweave.identity.policy import LockoutPolicy
from medweave.identity.tables import users
from medweave.security.crypto import MasterKey, open_sealed, seal
from medweave.security.principal import Role

DEFAULT_IDLE = timedelta(minutes=15)
DEFAULT_ABSOLUTE = timedelta(hours=8)


def derive_key(master: MasterKey, purpose: bytes) -> bytes:
    """A 256-bit key for one purpose, derived from the master key with HKDF-SHA256 (RFC 5869)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"medweave-identity:" + purpose).derive(
        master.key
    )


def digest(token: str) -> str:
    """SHA-256 hex of a high-entropy token (session, code, client secret): what the database keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


class Core:
    """The state of an IdentityService; the mixins of ``service`` add the operations."""

    def __init__(
        self,
        *,
        engine: Engine,
        master: MasterKey,
        idle_timeout: timedelta = DEFAULT_IDLE,
        absolute_timeout: timedelta = DEFAULT_ABSOLUTE,
        lockout: LockoutPolicy | None = None,
        totp_issuer: str = "Medweave",
    ) -> None:
        if not timedelta(0) < idle_timeout <= absolute_timeout:
            raise ValueError("idle timeout must be positive and at most the absolute lifetime")
        self.engine = engine
        self.master = master
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout
        self.lockout = lockout or LockoutPolicy()
        self.totp_issuer = totp_issuer
        self._throttle_key = derive_key(master, b"login-throttle")

    # -- TOTP secrets at rest -------------------------------------------------------------------

    def _seal_totp(
        self, secret: str, *, user_id: str, pending: bool, master: MasterKey | None = None
    ) -> bytes:
        key = derive_key(master or self.master, b"totp")
        return seal(key, secret.encode("ascii"), aad=_totp_aad(user_id, pending))

    def _open_totp(self, blob: bytes, *, user_id: str, pending: bool, master: MasterKey | None = None) -> str:
        key = derive_key(master or self.master, b"totp")
        return open_sealed(key, blob, aad=_totp_aad(user_id, pending)).decode("ascii")

    def _throttle_id(self, kind: str, value: str) -> str:
        mac = hmac.new(self._throttle_key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind}:{mac}"

    # -- users ----------------------------------------------------------------------------------

    def _user_row(self, conn: Connection, user_id: str) -> Row[Any]:
        row = conn.execute(select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise NotFound(f"no user {user_id}")
        return row


def user_from_row(row: Row[Any]) -> User:
    m = row._mapping
    return User(
        id=m["id"],
        username=m["username"],
        role=Role(m["role"]),
        patient_id=m["patient_id"],
        practitioner_id=m["practitioner_id"],
        totp_enabled=bool(m["totp_enabled"]),
        disabled=bool(m["disabled"]),
        created=m["created"],
        password_changed=m["password_changed"],
        last_login=m["last_login"],
    )


def _totp_aad(user_id: str, pending: bool) -> bytes:
    return (b"totp-pending:" if pending else b"totp:") + user_id.encode()
