"""``medweave worker``: run queued jobs from Redis on threads of this process, until told to stop.

For each "run job <id>" message the worker claims the job in the table (a new attempt), runs the
registered kind, stores the outcome, and only then lets Dramatiq acknowledge the message. If the
process dies, the message is redelivered to another worker and the job runs again (or fails once
it has used its attempts). SIGTERM or SIGINT stops it gently: running jobs that may run again
are asked to stop at their next check and go back to the queue without using up an attempt;
jobs that may run only once get ``grace`` seconds to finish. Whatever still runs after
``grace`` seconds is left to the redelivery above.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from types import FrameType

import dramatiq
from sqlalchemy import Engine

from medweave.errors import ConfigurationError
from medweave.jobs.context import StopReason
from medweave.jobs.execute import Executor, Outcome
from medweave.jobs.kinds import JobKinds
from medweave.jobs.queue import ACTOR, QueueSettings, make_broker, send
from medweave.jobs.store import Claim, JobStore
from medweave.jobs.tables import JobState

log = logging.getLogger(__name__)


class JobWorker:
    def __init__(
        self,
        engine: Engine,
        cfg: QueueSettings,
        kinds: JobKinds,
        *,
        threads: int = 4,
        report_interval: float = 0.5,
        name: str | None = None,
    ):
        self.cfg = cfg
        self.kinds = kinds
        self.store = JobStore(engine)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.executor = Executor(
            self.store,
            worker=self.name,
            heartbeat_interval=cfg.heartbeat_interval,
            report_interval=report_interval,
        )
        self.broker = make_broker(cfg)
        dramatiq.Actor(
            self.handle, broker=self.broker, actor_name=ACTOR, queue_name=cfg.queue, priority=0, options={}
        )
        self._worker = dramatiq.Worker(self.broker, worker_threads=threads, worker_timeout=cfg.poll_ms)
        # Fetch no more than there are threads: a long job must not sit behind another on this
        # worker while an idle worker could start it.
        self._worker.queue_prefetch = threads
        self._stopping = threading.Event()

    def handle(self, job_id: str) -> None:
        """The actor: run one job to its end (or hand it back), then let the message be acked."""
        if self._stopping.is_set():
            send(self.broker, self.cfg.queue, job_id)
            return
        decision, attempt = self.store.claim(job_id, worker=self.name, stale_after=self.cfg.stale_after)
        if decision is Claim.BUSY:  # a live attempt elsewhere: ask again when it would be stale
            send(self.broker, self.cfg.queue, job_id, delay_s=self.cfg.stale_after)
            return
        if decision is not Claim.STARTED:
            return
        info = self.store.get(job_id)
        if attempt > 1:
            log.warning(
                "job %s (%s): attempt %d of %d after a worker stopped",
                job_id,
                info.kind,
                attempt,
                info.max_attempts,
            )
        try:
            fn = self.kinds.bind(info.kind, info.args)
        except ConfigurationError as exc:
            self.store.finish(
                job_id, attempt, JobState.FAILED, error=exc.message, error_kind="ConfigurationError"
            )
            return
        # A job that may run only once (max_attempts 1) is not stopped by a shutdown: it gets the
        # grace period to finish, and is marked failed if the worker exits under it.
        restartable = info.max_attempts > 1
        if self.executor.run(job_id, attempt, fn, restartable=restartable) is Outcome.RELEASED:
            log.info("job %s (%s): stopped for shutdown, back on the queue", job_id, info.kind)
            send(self.broker, self.cfg.queue, job_id)

    def start(self) -> None:
        self.executor.start()
        self._worker.start()
        log.info(
            "worker %s consuming queue %r (%s)", self.name, self.cfg.queue, ", ".join(self.kinds.names())
        )

    def stop(self, grace: float = 30.0) -> None:
        self._stopping.set()
        self.executor.stop_all(StopReason.SHUTDOWN)
        self._worker.stop(timeout=int(grace * 1000))
        self.executor.close()
        self.broker.close()

    def run(self, *, grace: float = 30.0, stop: threading.Event | None = None) -> None:
        """Work until SIGTERM/SIGINT (or ``stop`` is set), then stop gently."""
        stop = stop or threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            stop.wait()
        finally:
            self.stop(grace)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
