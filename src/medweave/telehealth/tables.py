"""Tables of scheduling. Only ``telehealth.booking`` touches them.

``telehealth_calendars`` has one row per practitioner who takes bookings: it is locked while a
booking is checked and written, so two concurrent bookings of one practitioner take turns.
``telehealth_bookings`` indexes the Appointments (which stay the record, encrypted like any
other) by practitioner and time, with a unique index on the start of every live booking: even
without the lock, the database refuses a second booking of the same slot.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, text

from medweave.audit.tables import UTCDateTime
from medweave.db import metadata

telehealth_calendars = Table(
    "telehealth_calendars",
    metadata,
    Column("practitioner_id", String(64), primary_key=True),
    Column("bookings", Integer, nullable=False, default=0),
)

telehealth_bookings = Table(
    "telehealth_bookings",
    metadata,
    Column("appointment_id", String(64), primary_key=True),
    Column("practitioner_id", String(64), nullable=False),
    Column("start", UTCDateTime, nullable=False),
    Column("end", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),  # booked or cancelled
    Index("ix_telehealth_bookings_when", "practitioner_id", "start"),
    Index(
        "uq_telehealth_bookings_live",
        "practitioner_id",
        "start",
        unique=True,
        sqlite_where=text("status = 'booked'"),
        postgresql_where=text("status = 'booked'"),
    ),
)
