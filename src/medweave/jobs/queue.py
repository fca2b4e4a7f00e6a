"""Production: jobs handed to ``medweave worker`` processes through Dramatiq's Redis broker.

The message carries only "run job <id>"; kind, arguments, progress and outcome stay in the
``jobs`` table. Dramatiq gives at-least-once delivery: a worker acknowledges a message only when
the job has ended, and the unacknowledged messages of a worker whose Redis heartbeat stopped for
``worker_timeout`` are put back on the queue by the next worker that does maintenance. The row's
attempt counter and fenced writes make a redelivery safe (see :mod:`medweave.jobs.store`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dramatiq import Message
from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker
from dramatiq.middleware import Retries
from sqlalchemy import Engine

from medweave.errors import ConfigurationError
from medweave.jobs.client import JobClient
from medweave.jobs.kinds import JobKinds

#: The one actor: its message is ``run_job(job_id)``.
ACTOR = "medweave_run_job"


@dataclass(frozen=True)
class QueueSettings:
    """Where the queue is and how quickly a silent worker's jobs are given to another."""

    url: str
    namespace: str = "medweave"
    queue: str = "jobs"
    #: Seconds without a sign of life (Redis heartbeat) before a worker's jobs are redelivered.
    worker_timeout: float = 60.0
    #: Attempts a job gets when the process running it dies (a job's own error is never retried).
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError(f"the job broker must be 'embedded' or a redis:// URL, not {self.url!r}")
        if self.worker_timeout <= 0 or self.max_attempts < 1:
            raise ConfigurationError("jobs worker timeout must be > 0 and max attempts >= 1")

    @property
    def heartbeat_interval(self) -> float:
        """How often a worker refreshes the heartbeat of each job it runs (the row's)."""
        return self.worker_timeout / 10

    @property
    def stale_after(self) -> float:
        """A running job whose row heartbeat is this old may be claimed by a redelivery."""
        return self.worker_timeout / 2

    @property
    def poll_ms(self) -> int:
        """Longest idle poll of a worker; every poll is also its Redis heartbeat."""
        return max(50, min(1000, int(self.worker_timeout * 1000 / 5)))


def make_broker(cfg: QueueSettings) -> RedisBroker:
    # Maintenance (requeueing the messages of dead workers) runs on a random share of commands;
    # an idle worker sends about one per poll, so aim for one maintenance per half timeout.
    polls_per_half_timeout = max(1.0, cfg.worker_timeout * 1000 / 2 / cfg.poll_ms)
    chance = min(MAINTENANCE_SCALE, int(MAINTENANCE_SCALE / polls_per_half_timeout))
    return RedisBroker(
        url=cfg.url,
        namespace=cfg.namespace,
        heartbeat_timeout=int(cfg.worker_timeout * 1000),
        maintenance_chance=chance,
        # No TimeLimit: imports, meshing and training run for hours. Retries covers only errors
        # outside the job (the database away); a job's own errors are stored, never raised here.
        middleware=[Retries(max_retries=20, min_backoff=1000, max_backoff=300_000)],
    )


def send(broker: RedisBroker, queue: str, job_id: str, *, delay_s: float | None = None) -> None:
    message: Message[Any] = Message(queue_name=queue, actor_name=ACTOR, args=(job_id,), kwargs={}, options={})
    broker.enqueue(message, delay=None if delay_s is None else int(delay_s * 1000))


class QueueJobs(JobClient):
    """The web app's and CLI's side in production: record the job, send "run job <id>"."""

    def __init__(self, engine: Engine, cfg: QueueSettings, *, kinds: JobKinds | None = None):
        super().__init__(engine, kinds=kinds, poll_interval=0.2)
        self.cfg = cfg
        self.broker = make_broker(cfg)

    def enqueue(self, kind: str, args: dict[str, Any] | None = None, *, total: int | None = None) -> str:
        max_attempts = self.kinds.get(kind).max_attempts if kind in self.kinds else None
        job_id = self.store.create(
            kind=kind,
            args=args or {},
            queue=self.cfg.queue,
            max_attempts=max_attempts or self.cfg.max_attempts,
            total=total,
        )
        try:
            send(self.broker, self.cfg.queue, job_id)
        except Exception as exc:
            message = f"the job queue at {self.cfg.url} could not be reached ({type(exc).__name__})"
            self.store.fail(job_id, error=message, error_kind="ConfigurationError")
            raise ConfigurationError(message) from None
        return job_id

    def close(self) -> None:
        self.broker.close()
