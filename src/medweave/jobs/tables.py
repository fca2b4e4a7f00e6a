"""The ``jobs`` table: one row per background job, its state, progress and outcome.

States move ``queued -> running -> done | failed | cancelled`` (``queued -> cancelled`` when a
job is cancelled before it starts). ``cancel_requested`` is how a cancel reaches a job running
in another thread or another process. ``error`` holds only the message of a
:class:`~medweave.errors.MedweaveError` (never record content); ``error_kind`` its class name, so
an entry point can map it to an exit code or HTTP status.

Delivery (see ``docs/decisions/0002-job-queue.md``): ``queue`` is ``embedded`` for a job run on a
thread of the process that submitted it, else the name of the Redis queue that carries "run job
<id>". ``kind`` and ``args`` (JSON) say what to run, so a worker in another process can run it.
Each start of the job increments ``attempts``; the process running it refreshes ``heartbeat``.
A running job whose heartbeat is stale belonged to a process that died: the queue redelivers it
(a new attempt) or, after ``max_attempts``, it is marked failed; never left running.
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
#: ``jobs.queue`` of jobs that run in-process (the embedded default).
EMBEDDED = "embedded"

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
    Column("args", Text, nullable=True),
    Column("queue", String(64), nullable=False, default=EMBEDDED, server_default=EMBEDDED),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("max_attempts", Integer, nullable=False, default=1, server_default="1"),
    Column("heartbeat", DateTime(timezone=True), nullable=True),
    Column("worker", String(128), nullable=True),
    Index("ix_jobs_state", "state"),
    Index("ix_jobs_kind_created", "kind", "created"),
    Index("ix_jobs_queue_state", "queue", "state"),
)
