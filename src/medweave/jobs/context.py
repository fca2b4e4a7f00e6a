"""What a running job sees: a progress reporter and a cancellation check.

A job function ``fn(ctx)`` reports progress with ``ctx.report(done, total)`` and looks for a stop
with ``ctx.cancelled()`` (or ``ctx.check()``, which raises :class:`JobCancelled`) between units of
work. A stop comes from a cancel (here or in another process, through the stored row), from the
worker shutting down, or from the job having been handed to another attempt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import Any

from medweave.jobs.store import JobStore


class JobCancelled(Exception):
    """Raised by :meth:`JobContext.check` when the job was asked to stop.

    A job may raise it itself with ``result=`` to keep a partial result (what was done so far).
    """

    def __init__(self, job_id: str = "", *, result: Any = None):
        super().__init__(job_id)
        self.result = result


class StopReason(Enum):
    CANCEL = "cancel"  # somebody cancelled the job: it ends cancelled
    SHUTDOWN = "shutdown"  # the worker stops: the job goes back to the queue
    LOST = "lost"  # another attempt owns the job now: write nothing more


class Stop:
    """A stop signal with its reason; the first reason given wins."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: StopReason | None = None

    def set(self, reason: StopReason) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


class JobContext:
    """Progress and cancellation of one attempt of one job."""

    def __init__(self, store: JobStore, job_id: str, attempt: int, stop: Stop, *, report_interval: float):
        self.job_id = job_id
        self.attempt = attempt
        self._store = store
        self._stop = stop
        self._interval = report_interval
        self._last_write = 0.0
        self._last_poll = 0.0
        self.done = 0
        self.total: int | None = None

    def report(self, done: int, total: int | None = None) -> None:
        """Record progress; written at most every ``report_interval`` seconds, and at the end.

        Progress is written in a short transaction of its own: call it outside any of the job's.
        """
        self.done = done
        if total is not None:
            self.total = total
        at = time.monotonic()
        if at - self._last_write >= self._interval or (self.total is not None and done >= self.total):
            self._last_write = at
            if not self._store.progress(self.job_id, self.attempt, done=self.done, total=self.total):
                self._stop.set(StopReason.LOST)

    def cancelled(self) -> bool:
        """True once the job should stop: cancelled (here or in another process) or taken away."""
        if self._stop.is_set():
            return True
        at = time.monotonic()
        if at - self._last_poll >= self._interval:
            self._last_poll = at
            if self._store.cancel_requested(self.job_id):
                self._stop.set(StopReason.CANCEL)
        return self._stop.is_set()

    def check(self) -> None:
        """Raise :class:`JobCancelled` if the job should stop."""
        if self.cancelled():
            raise JobCancelled(self.job_id)


JobFn = Callable[[JobContext], Any]
