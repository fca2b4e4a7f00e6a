"""Submit, follow and cancel jobs. The stored row is the truth; how a job is run differs.

:class:`JobClient` holds what every way of running jobs shares (read, cancel, wait);
:class:`~medweave.jobs.runner.JobRunner` runs jobs in this process (the embedded default) and
:class:`~medweave.jobs.queue.QueueJobs` hands them to ``medweave worker`` processes through Redis.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine

from medweave.errors import ConfigurationError
from medweave.jobs.kinds import JobKinds
from medweave.jobs.store import JobInfo, JobStore


class JobClient:
    def __init__(self, engine: Engine, *, kinds: JobKinds | None = None, poll_interval: float = 0.2):
        self.engine = engine
        self.store = JobStore(engine)
        self.kinds = kinds or JobKinds()
        self.poll_interval = poll_interval

    def enqueue(self, kind: str, args: dict[str, Any] | None = None, *, total: int | None = None) -> str:
        """Record a job of a registered ``kind`` with JSON ``args`` and have it run; returns its id."""
        raise NotImplementedError

    def get(self, job_id: str) -> JobInfo:
        return self.store.get(job_id)

    def cancel(self, job_id: str) -> JobInfo:
        """Ask a job to stop. A queued job is cancelled at once; a running one at its next check."""
        self.store.request_cancel(job_id)
        return self.get(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> JobInfo:
        """Block until the job has finished (or ``timeout`` seconds passed); returns its state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.get(job_id)
            if info.finished or (deadline is not None and time.monotonic() >= deadline):
                return info
            time.sleep(self.poll_interval)

    def close(self) -> None:
        """Release connections (to Redis); running embedded jobs go on."""

    def _check_kind(self, kind: str) -> None:
        if kind not in self.kinds:
            raise ConfigurationError(f"job kind {kind!r} is not registered")
