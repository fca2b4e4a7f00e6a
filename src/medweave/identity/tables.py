"""Tables of identity: users, page sessions, login throttling, break-glass grants, OAuth clients and codes.

Only the ``medweave.identity`` modules touch them. Secrets are never stored in a usable form:
passwords as argon2id hashes, session tokens and authorization codes as SHA-256 digests, client
secrets as SHA-256 digests (they are 256-bit random, so a fast hash is enough), TOTP secrets sealed
with AES-256-GCM under a key derived from the master key (``totp_key_id`` says which master key).
``login_throttle`` is keyed by an HMAC of the typed username (existing or not) or of the client
address, so the lockout answers the same for unknown names and never stores what was typed.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from medweave.audit.tables import UTCDateTime
from medweave.db import metadata

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("username_key", String(64), nullable=False, unique=True),  # NFKC + casefold
    Column("role", String(32), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("patient_id", String(64), nullable=True),
    Column("practitioner_id", String(64), nullable=True),
    Column("totp_secret", LargeBinary, nullable=True),
    Column("totp_pending", LargeBinary, nullable=True),
    Column("totp_key_id", String(16), nullable=True),
    Column("totp_enabled", Boolean, nullable=False, default=False),
    Column("totp_last_step", BigInteger, nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created", UTCDateTime, nullable=False),
    Column("password_changed", UTCDateTime, nullable=False),
    Column("last_login", UTCDateTime, nullable=True),
    Index("ix_users_patient", "patient_id"),
)

user_sessions = Table(
    "user_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("mfa", Boolean, nullable=False),
    Column("address", String(64), nullable=True),
    Column("created", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("expires", UTCDateTime, nullable=False),
    Index("ix_user_sessions_user", "user_id"),
)

login_throttle = Table(
    "login_throttle",
    metadata,
    Column("key", String(80), primary_key=True),  # "u:<hmac>" or "a:<hmac>"
    Column("consecutive", Integer, nullable=False, default=0),
    Column("window_start", UTCDateTime, nullable=True),
    Column("window_failures", Integer, nullable=False, default=0),
    Column("locked_until", UTCDateTime, nullable=True),
    Column("updated", UTCDateTime, nullable=False),
    Index("ix_login_throttle_updated", "updated"),
)

break_glass_grants = Table(
    "break_glass_grants",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("started", UTCDateTime, nullable=False),
    Column("expires", UTCDateTime, nullable=False),
    Column("ended", UTCDateTime, nullable=True),
    Column("reviewed_by", String(36), ForeignKey("users.id"), nullable=True),
    Column("reviewed_at", UTCDateTime, nullable=True),
    Column("review_note", Text, nullable=True),
    Index("ix_break_glass_user_expires", "user_id", "expires"),
    Index("ix_break_glass_review", "reviewed_at", "started"),
)

oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("public", Boolean, nullable=False),
    Column("secret_hash", String(64), nullable=True),
    Column("redirect_uris", Text, nullable=False),  # JSON list
    Column("scopes", Text, nullable=False),  # canonical SMART v2
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created", UTCDateTime, nullable=False),
)

oauth_codes = Table(
    "oauth_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(64), ForeignKey("oauth_clients.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("patient_id", String(64), nullable=True),
    Column("code_challenge", String(128), nullable=False),
    Column("expires", UTCDateTime, nullable=False),
    Column("used", Boolean, nullable=False, default=False),
    Index("ix_oauth_codes_expires", "expires"),
)
