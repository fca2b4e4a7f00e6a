"""Tables of the therapy assistant. Only ``therapy.alerts`` and ``therapy.conversations`` touch them.

``therapy_alerts`` indexes the safety alerts (each one a ``Flag`` and a ``Task`` on the patient's
record, which stay the record, encrypted like any other) so that the caseload dashboard and the
re-notification sweep need no decryption. A row holds ids, a level, where it came from and
times: no PHI, never the patient's words.

``therapy_conversations`` points at each patient's latest conversation, itself a
``DocumentReference`` on the record (encrypted) that holds the transcript and the dialog state.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table

from medweave.audit.tables import UTCDateTime
from medweave.db import metadata

therapy_alerts = Table(
    "therapy_alerts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("level", String(16), nullable=False),  # concern, ideation or high
    Column("source", String(32), nullable=False),  # chat, phq9-item9, cssrs, human-request
    Column("flag_id", String(64), nullable=False),
    Column("task_id", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("acknowledged_at", UTCDateTime, nullable=True),
    Column("acknowledged_by", String(80), nullable=True),
    Column("notified_at", UTCDateTime, nullable=True),
    Column("notifications", Integer, nullable=False, default=0),
    Index("ix_therapy_alerts_open", "acknowledged_at", "created_at"),
    Index("ix_therapy_alerts_patient", "patient_id", "created_at"),
)

therapy_conversations = Table(
    "therapy_conversations",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("state_id", String(64), nullable=False),  # the Basic resource holding the state
    Column("updated_at", UTCDateTime, nullable=False),
)
