"""Background jobs with stored progress: bulk import now, meshing and training later.

The ``jobs`` table is the truth a page or the CLI follows, whoever runs the job. The embedded
default runs each job on a thread of the process that submits it (:class:`JobRunner`). In
production (``MEDWEAVE_JOBS_BROKER=redis://...``) :class:`~medweave.jobs.queue.QueueJobs` only
records the job and sends "run job <id>" through Dramatiq's Redis broker, and ``medweave worker``
processes (:class:`~medweave.jobs.worker.JobWorker`) run it. Jobs are registered kinds with JSON
arguments (:class:`JobKinds`), so any process can run them. See ``docs/jobs.md``.
"""

from __future__ import annotations

from sqlalchemy import Engine

from medweave.jobs.client import JobClient
from medweave.jobs.context import JobCancelled, JobContext, JobFn
from medweave.jobs.kinds import JobKinds
from medweave.jobs.runner import JobRunner
from medweave.jobs.store import WORKER_LOST, JobInfo
from medweave.jobs.tables import EMBEDDED, TERMINAL_STATES, JobState, jobs

__all__ = [
    "EMBEDDED",
    "TERMINAL_STATES",
    "WORKER_LOST",
    "JobCancelled",
    "JobClient",
    "JobContext",
    "JobFn",
    "JobInfo",
    "JobKinds",
    "JobRunner",
    "JobState",
    "jobs",
    "open_jobs",
]


def open_jobs(
    engine: Engine,
    *,
    kinds: JobKinds,
    broker: str | None = None,
    namespace: str = "medweave",
    worker_timeout: float = 60.0,
    max_attempts: int = 3,
) -> JobClient:
    """The job client the settings ask for: in-process (``embedded``, the default) or Redis."""
    if not broker or broker == EMBEDDED:
        return JobRunner(
            engine, kinds=kinds, stale_after=worker_timeout / 2, heartbeat_interval=worker_timeout / 10
        )
    from medweave.jobs.queue import QueueJobs, QueueSettings

    cfg = QueueSettings(
        url=broker, namespace=namespace, worker_timeout=worker_timeout, max_attempts=max_attempts
    )
    return QueueJobs(engine, cfg, kinds=kinds)
