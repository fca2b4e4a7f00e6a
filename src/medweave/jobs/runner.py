"""Run a job on a thread of this process and keep its state and progress in the ``jobs`` table.

``submit(kind, fn)`` records the job and starts ``fn(ctx)`` on a thread. ``fn`` reports progress
with ``ctx.report(done, total)`` and looks for a cancel with ``ctx.cancelled()`` (or
``ctx.check()``, which raises :class:`JobCancelled`) between units of work. Its return value,
which must be JSON-serialisable and hold no record content, becomes the job's result.

Progress writes are throttled (``report_interval``) and run in their own short transactions,
so ``fn`` must call ``report`` outside any write transaction of its own.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update

from medweave.db import read_tx, write_tx
from medweave.errors import MedweaveError, NotFound
from medweave.jobs.tables import TERMINAL_STATES, JobState, jobs

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised by :meth:`JobContext.check` when the job was asked to stop.

    A job may raise it itself with ``result=`` to keep a partial result (what was done so far).
    """

    def __init__(self, job_id: str = "", *, result: Any = None):
        super().__init__(job_id)
        self.result = result


@dataclass(frozen=True)
class JobInfo:
    """One job as stored."""

    id: str
    kind: str
    state: JobState
    done: int
    total: int | None
    cancel_requested: bool
    result: Any
    error: str | None
    error_kind: str | None
    created: datetime
    updated: datetime

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class JobContext:
    """What a running job sees: a progress reporter and a cancellation check."""

    def __init__(self, runner: JobRunner, job_id: str, stop: threading.Event):
        self.job_id = job_id
        self._runner = runner
        self._stop = stop
        self._last_write = 0.0
        self._last_poll = 0.0
        self.done = 0
        self.total: int | None = None

    def report(self, done: int, total: int | None = None) -> None:
        """Record progress; written at most every ``report_interval`` seconds, and at the end."""
        self.done = done
        if total is not None:
            self.total = total
        now = time.monotonic()
        if now - self._last_write >= self._runner.report_interval or (
            self.total is not None and done >= self.total
        ):
            self._last_write = now
            self._runner._write(self.job_id, done=self.done, total=self.total)

    def cancelled(self) -> bool:
        """True once :meth:`JobRunner.cancel` was called (here, or on the stored row)."""
        if self._stop.is_set():
            return True
        now = time.monotonic()
        if now - self._last_poll >= self._runner.report_interval:
            self._last_poll = now
            if self._runner.get(self.job_id).cancel_requested:
                self._stop.set()
        return self._stop.is_set()

    def check(self) -> None:
        """Raise :class:`JobCancelled` if the job should stop."""
        if self.cancelled():
            raise JobCancelled(self.job_id)


JobFn = Callable[[JobContext], Any]


class JobRunner:
    """In-process jobs over one engine (the embedded default)."""

    def __init__(self, engine: Engine, *, report_interval: float = 0.2):
        self.engine = engine
        self.report_interval = report_interval
        self._threads: dict[str, threading.Thread] = {}
        self._stops: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def submit(self, kind: str, fn: JobFn, *, total: int | None = None) -> str:
        """Record a queued job and start it on a thread; returns the job id."""
        job_id = str(uuid.uuid4())
        now = _now()
        with write_tx(self.engine) as conn:
            conn.execute(
                jobs.insert().values(
                    id=job_id,
                    kind=kind,
                    state=JobState.QUEUED.value,
                    done=0,
                    total=total,
                    cancel_requested=False,
                    created=now,
                    updated=now,
                )
            )
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(job_id, fn, stop), name=f"job-{kind}-{job_id[:8]}")
        with self._lock:
            self._threads[job_id] = thread
            self._stops[job_id] = stop
        thread.start()
        return job_id

    def get(self, job_id: str) -> JobInfo:
        with read_tx(self.engine) as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"job {job_id} is not known")
        return JobInfo(
            id=row.id,
            kind=row.kind,
            state=JobState(row.state),
            done=row.done,
            total=row.total,
            cancel_requested=bool(row.cancel_requested),
            result=json.loads(row.result) if row.result is not None else None,
            error=row.error,
            error_kind=row.error_kind,
            created=_aware(row.created),
            updated=_aware(row.updated),
        )

    def cancel(self, job_id: str) -> JobInfo:
        """Ask a job to stop. A queued job is cancelled at once; a running one at its next check."""
        now = _now()
        with write_tx(self.engine) as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED.value)
                .values(state=JobState.CANCELLED.value, cancel_requested=True, updated=now)
            )
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.RUNNING.value)
                .values(cancel_requested=True, updated=now)
            )
        with self._lock:
            stop = self._stops.get(job_id)
        if stop is not None:
            stop.set()
        return self.get(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> JobInfo:
        """Block until the job has finished (or ``timeout`` seconds passed); returns its state."""
        with self._lock:
            thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
            return self.get(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.get(job_id)
            if info.finished or (deadline is not None and time.monotonic() >= deadline):
                return info
            time.sleep(self.report_interval)

    # -- internals ------------------------------------------------------------------------------
    def _write(self, job_id: str, **values: Any) -> None:
        with write_tx(self.engine) as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(updated=_now(), **values))

    def _finish(self, job_id: str, state: JobState, ctx: JobContext, **values: Any) -> None:
        with write_tx(self.engine) as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.RUNNING.value)
                .values(state=state.value, done=ctx.done, total=ctx.total, updated=_now(), **values)
            )

    def _run(self, job_id: str, fn: JobFn, stop: threading.Event) -> None:
        try:
            with write_tx(self.engine) as conn:
                started = conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED.value)
                    .values(state=JobState.RUNNING.value, updated=_now())
                ).rowcount
            if not started:
                return  # cancelled before it began
            ctx = JobContext(self, job_id, stop)
            try:
                result = _dump(fn(ctx))
            except JobCancelled as exc:
                self._finish(job_id, JobState.CANCELLED, ctx, result=_dump(exc.result))
            except MedweaveError as exc:
                self._finish(job_id, JobState.FAILED, ctx, error=exc.message, error_kind=type(exc).__name__)
            except Exception as exc:
                # The message of a foreign exception may quote record content: keep only its class.
                log.error("job %s failed with %s", job_id, type(exc).__name__)
                self._finish(
                    job_id,
                    JobState.FAILED,
                    ctx,
                    error=f"internal error ({type(exc).__name__})",
                    error_kind="InternalError",
                )
            else:
                self._finish(job_id, JobState.DONE, ctx, result=result)
        finally:
            with self._lock:
                self._stops.pop(job_id, None)
                self._threads.pop(job_id, None)


def _dump(result: Any) -> str | None:
    return None if result is None else json.dumps(result)
