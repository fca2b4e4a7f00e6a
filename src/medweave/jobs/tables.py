"""The ``jobs`` table: one row per background job, its state, progress and outcome.

States move ``queued -> running -> done | failed | cancelled`` (``queued -> cancelled`` when a
job is cancelled before it starts). ``cancel_requested`` is how a cancel reaches a job running
in another thread or, later, another process. ``error`` holds only the message of a
:class:`~medweave.errors.MedweaveError` (never record content); ``error_kind`` its class name, so
an entry point can map it to an exit code or HTTP status.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Boolean, Column, DateTime, Index, Integer, String, Table, Text

from medweave.db import metadata


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("done", Integer, nullable=False, default=0),
    Column("total", Integer, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("result", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("error_kind", String(64), nullable=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
    Index("ix_jobs_state", "state"),
    Index("ix_jobs_kind_created", "kind", "created"),
)
