"""Run attempts of jobs in this process: outcome, stored state, and a heartbeat while they run.

Shared by the embedded runner (a thread per job) and the queue worker (Dramatiq's threads). A
ticker thread refreshes the heartbeat of every running attempt; an attempt whose job was handed
to another attempt meanwhile is told to stop (its writes are fenced off in any case). The ticker
runs only while this process runs jobs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import Enum

from medweave.errors import MedweaveError
from medweave.jobs.context import JobCancelled, JobContext, JobFn, Stop, StopReason
from medweave.jobs.store import JobStore, dump
from medweave.jobs.tables import JobState

log = logging.getLogger(__name__)


class Outcome(Enum):
    FINISHED = "finished"  # done, failed or cancelled, and stored
    RELEASED = "released"  # stopped by a shutdown and put back to queued: send it again
    LOST = "lost"  # another attempt owns the job: nothing was written


class Executor:
    def __init__(
        self,
        store: JobStore,
        *,
        worker: str,
        heartbeat_interval: float,
        report_interval: float,
        on_tick: Callable[[], object] | None = None,
    ):
        self.store = store
        self.worker = worker
        self.heartbeat_interval = heartbeat_interval
        self.report_interval = report_interval
        self._on_tick = on_tick
        self._lock = threading.Lock()
        self._running: dict[str, tuple[int, Stop, bool]] = {}  # job id: attempt, stop, restartable
        self._closed = threading.Event()
        self._shutdown = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self) -> None:
        """Start the heartbeat ticker (idempotent)."""
        with self._lock:
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="jobs-heartbeat", daemon=True)
                self._ticker.start()

    def close(self) -> None:
        self._closed.set()
        ticker = self._ticker
        if ticker is not None:
            ticker.join(timeout=5)

    def stop(self, job_id: str, reason: StopReason) -> None:
        with self._lock:
            entry = self._running.get(job_id)
        if entry is not None:
            entry[1].set(reason)

    def stop_all(self, reason: StopReason) -> None:
        """Stop every running attempt; after a SHUTDOWN, attempts that start are stopped at once.

        A SHUTDOWN stops only restartable jobs (they go back to the queue); the others are left
        to finish within the worker's grace period.
        """
        shutdown = reason is StopReason.SHUTDOWN
        if shutdown:
            self._shutdown.set()
        with self._lock:
            stops = [stop for _, stop, restartable in self._running.values() if restartable or not shutdown]
        for stop in stops:
            stop.set(reason)

    def run(self, job_id: str, attempt: int, fn: JobFn, *, restartable: bool = False) -> Outcome:
        """Run ``fn`` as ``attempt`` of the job (already claimed) and store how it ended.

        ``restartable``: the job may be stopped by a shutdown and run again from the start.
        """
        stop = Stop()
        with self._lock:
            self._running[job_id] = (attempt, stop, restartable)
            if restartable and self._shutdown.is_set():
                stop.set(StopReason.SHUTDOWN)
        self.start()
        ctx = JobContext(self.store, job_id, attempt, stop, report_interval=self.report_interval)
        try:
            return self._run(ctx, stop, fn)
        finally:
            with self._lock:
                self._running.pop(job_id, None)

    def _run(self, ctx: JobContext, stop: Stop, fn: JobFn) -> Outcome:
        job_id, attempt = ctx.job_id, ctx.attempt

        def finish(state: JobState, **values: object) -> Outcome:
            stored = self.store.finish(job_id, attempt, state, done=ctx.done, total=ctx.total, **values)
            return Outcome.FINISHED if stored else Outcome.LOST

        try:
            result = dump(fn(ctx))
        except JobCancelled as exc:
            if stop.reason is StopReason.LOST:
                return Outcome.LOST
            if stop.reason is StopReason.SHUTDOWN:
                released = self.store.release(job_id, attempt)
                return Outcome.RELEASED if released else Outcome.LOST
            return finish(JobState.CANCELLED, result=dump(exc.result))
        except MedweaveError as exc:
            return finish(JobState.FAILED, error=exc.message, error_kind=type(exc).__name__)
        except Exception as exc:
            # The message of a foreign exception may quote record content: keep only its class.
            log.error("job %s failed with %s", job_id, type(exc).__name__)
            return finish(
                JobState.FAILED, error=f"internal error ({type(exc).__name__})", error_kind="InternalError"
            )
        return finish(JobState.DONE, result=result)

    def _tick(self) -> None:
        while not self._closed.wait(self.heartbeat_interval):
            try:
                with self._lock:
                    running = list(self._running.items())
                    if not running:  # idle: stop; the next run starts a new ticker
                        self._ticker = None
                        return
                for job_id, (attempt, stop, _) in running:
                    if not self.store.beat(job_id, attempt):
                        stop.set(StopReason.LOST)
                if self._on_tick is not None:
                    self._on_tick()
            except Exception as exc:  # the database may be away for a moment: try again next tick
                log.warning("job heartbeat failed: %s", type(exc).__name__)
