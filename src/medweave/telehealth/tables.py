"""Tables of scheduling. Only ``telehealth.booking`` touches them.

``telehealth_calendars`` has one row per practitioner who takes bookings: it is locked while a
booking is checked and written, so two concurrent bookings of one practitioner take turns.
``telehealth_bookings`` indexes the Appointments (which stay the record, encrypted like any
other) by practitioner and time, with a unique index on the start of every live booking: even
without the lock, the database refuses a second booking of the same slot. It also keeps where
each visit stands (``visit_state``: scheduled, waiting, in-call, finished, no-show), so the
waiting room and the no-show sweep need no decryption. A second unique index allows each
practitioner one visit ``in-call`` at a time: admitting takes the calendar lock as well, and the
index holds even if some path forgot it.

``telehealth_invites`` holds the SHA-256 of each one-time invitation secret, never the secret.
``telehealth_availability`` holds each practitioner's published availability (hours, closures,
visit types; no PHI) and the id of the FHIR Schedule that announces it.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text, text

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
    Column("patient_id", String(64), nullable=True),
    Column("modality", String(16), nullable=False, server_default="video"),
    Column("visit_state", String(16), nullable=False, server_default="scheduled"),
    Column("checked_in_at", UTCDateTime, nullable=True),
    Column("admitted_at", UTCDateTime, nullable=True),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("encounter_id", String(64), nullable=True),
    Column("reminded_at", UTCDateTime, nullable=True),
    Index("ix_telehealth_bookings_when", "practitioner_id", "start"),
    Index("ix_telehealth_bookings_patient", "patient_id", "start"),
    Index(
        "uq_telehealth_bookings_live",
        "practitioner_id",
        "start",
        unique=True,
        sqlite_where=text("status = 'booked'"),
        postgresql_where=text("status = 'booked'"),
    ),
    Index(
        "uq_telehealth_bookings_in_call",
        "practitioner_id",
        unique=True,
        sqlite_where=text("visit_state = 'in-call' AND status = 'booked'"),
        postgresql_where=text("visit_state = 'in-call' AND status = 'booked'"),
    ),
)

telehealth_invites = Table(
    "telehealth_invites",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("appointment_id", String(64), nullable=False),
    Column("label", String(80), nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
)

telehealth_availability = Table(
    "telehealth_availability",
    metadata,
    Column("practitioner_id", String(64), primary_key=True),
    Column("schedule_id", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
