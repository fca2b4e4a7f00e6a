"""The embedded default: run each job on a thread of this process, state in the ``jobs`` table.

``submit(kind, fn)`` records the job and starts ``fn(ctx)`` on a thread; ``enqueue(kind, args)``
does the same for a registered kind. ``fn`` reports progress with ``ctx.report(done, total)``
and looks for a cancel with ``ctx.cancelled()`` (or ``ctx.check()``) between units of work. Its
return value, JSON-serialisable and free of record content, becomes the job's result.

An embedded job lives and dies with its process: a heartbeat keeps its row fresh, and a runner
that starts on the same database (and a runner running jobs, on each heartbeat) marks the
unfinished embedded jobs of a process that went silent as failed (``WorkerLost``). They are not
retried: the process that wanted them is gone.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from sqlalchemy import Engine

from medweave.jobs.client import JobClient
from medweave.jobs.context import JobCancelled, JobContext, JobFn, StopReason
from medweave.jobs.execute import Executor
from medweave.jobs.kinds import JobKinds
from medweave.jobs.store import Claim, JobInfo
from medweave.jobs.tables import EMBEDDED

__all__ = ["JobCancelled", "JobContext", "JobFn", "JobInfo", "JobRunner"]


class JobRunner(JobClient):
    """In-process jobs over one engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        kinds: JobKinds | None = None,
        report_interval: float = 0.2,
        heartbeat_interval: float = 5.0,
        stale_after: float = 30.0,
    ):
        super().__init__(engine, kinds=kinds, poll_interval=max(report_interval, 0.01))
        self.stale_after = stale_after
        self.worker = f"embedded:{socket.gethostname()}:{os.getpid()}"
        self._executor = Executor(
            self.store,
            worker=self.worker,
            heartbeat_interval=heartbeat_interval,
            report_interval=report_interval,
            on_tick=self.recover,
        )
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self.recover()

    def recover(self) -> list[str]:
        """Fail the unfinished embedded jobs of processes that went silent; returns their ids."""
        return self.store.fail_stale(queue=EMBEDDED, stale_after=self.stale_after)

    def submit(
        self, kind: str, fn: JobFn, *, total: int | None = None, args: dict[str, Any] | None = None
    ) -> str:
        """Record a queued job and start ``fn`` on a thread; returns the job id."""
        job_id = self.store.create(kind=kind, args=args or {}, queue=EMBEDDED, max_attempts=1, total=total)
        thread = threading.Thread(target=self._run, args=(job_id, fn), name=f"job-{kind}-{job_id[:8]}")
        with self._lock:
            self._threads[job_id] = thread
        thread.start()
        return job_id

    def enqueue(self, kind: str, args: dict[str, Any] | None = None, *, total: int | None = None) -> str:
        self._check_kind(kind)
        return self.submit(kind, self.kinds.bind(kind, args or {}), total=total, args=args)

    def cancel(self, job_id: str) -> JobInfo:
        self.store.request_cancel(job_id)
        self._executor.stop(job_id, StopReason.CANCEL)
        return self.get(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> JobInfo:
        with self._lock:
            thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
            return self.get(job_id)
        return super().wait(job_id, timeout)

    def close(self) -> None:
        self._executor.close()

    def _run(self, job_id: str, fn: JobFn) -> None:
        try:
            decision, attempt = self.store.claim(job_id, worker=self.worker, stale_after=self.stale_after)
            if decision is Claim.STARTED:
                self._executor.run(job_id, attempt, fn)
        finally:
            with self._lock:
                self._threads.pop(job_id, None)
