"""Tables of the audit trail. Only ``audit.service`` touches them.

``audit_log`` is append-only: one row per AuditEvent, numbered by ``seq`` = 1, 2, 3... with no
gaps. ``seq`` is assigned by the writer under the lock on the single ``audit_head`` row (not by an
autoincrement, which leaves gaps when a transaction rolls back), so committed rows always form the
prefix 1..last_seq and the ledger can commit to them in order. ``body`` is the AuditEvent as
canonical JSON; the other columns are copies for indexing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
)

from medweave.db import metadata


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both engines (SQLite's DATETIME keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


audit_log = Table(
    "audit_log",
    metadata,
    # On SQLite, INTEGER PRIMARY KEY makes seq the rowid: the table is stored in seq order, one index less.
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("recorded", UTCDateTime, nullable=False),
    Column("interaction", String(32), nullable=False),
    Column("action", String(1), nullable=False),
    Column("outcome", SmallInteger, nullable=False),
    Column("user_ref", String(200), nullable=True),
    Column("patient_id", String(64), nullable=True),
    Column("entity_type", String(64), nullable=True),
    Column("entity_id", String(64), nullable=True),
    Column("body", Text, nullable=False),
    CheckConstraint("seq > 0", name="ck_audit_log_seq"),
    Index("ix_audit_log_patient_seq", "patient_id", "seq"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="ck_audit_head_single"),
)
