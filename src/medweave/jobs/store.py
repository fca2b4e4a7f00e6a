"""Every read and write of the ``jobs`` table; the only module of ``jobs`` that speaks SQL.

Writes made on behalf of a running attempt (progress, heartbeat, outcome) are fenced by the
attempt number: once a job was handed to another attempt, the old one can no longer change it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import Engine, func, select, update

from medweave.db import read_tx, write_tx
from medweave.errors import NotFound
from medweave.jobs.tables import TERMINAL_STATES, JobState, jobs

#: ``error_kind`` of a job whose process died under it more often than it may be retried.
WORKER_LOST = "WorkerLost"


def now() -> datetime:
    return datetime.now(UTC)


def _aware(dt: datetime | None) -> datetime | None:
    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=UTC)


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
    args: dict[str, Any]
    queue: str
    attempts: int
    max_attempts: int
    heartbeat: datetime | None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES


class Claim(Enum):
    """What :meth:`JobStore.claim` decided."""

    STARTED = "started"  # this attempt now runs the job
    BUSY = "busy"  # another live attempt runs it: ask again later
    SETTLED = "settled"  # finished, cancelled, gone, or failed for want of attempts: nothing to run


def _info(row: Any) -> JobInfo:
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
        created=_aware(row.created) or now(),
        updated=_aware(row.updated) or now(),
        args=json.loads(row.args) if row.args else {},
        queue=row.queue,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        heartbeat=_aware(row.heartbeat),
    )


def dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


class JobStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def create(
        self, *, kind: str, args: dict[str, Any], queue: str, max_attempts: int, total: int | None = None
    ) -> str:
        job_id = str(uuid.uuid4())
        at = now()
        with write_tx(self.engine) as conn:
            conn.execute(
                jobs.insert().values(
                    id=job_id,
                    kind=kind,
                    state=JobState.QUEUED.value,
                    done=0,
                    total=total,
                    cancel_requested=False,
                    created=at,
                    updated=at,
                    args=json.dumps(args),
                    queue=queue,
                    attempts=0,
                    max_attempts=max_attempts,
                )
            )
        return job_id

    def get(self, job_id: str) -> JobInfo:
        with read_tx(self.engine) as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"job {job_id} is not known")
        return _info(row)

    def cancel_requested(self, job_id: str) -> bool:
        with read_tx(self.engine) as conn:
            flag = conn.execute(select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar()
        return bool(flag)

    def request_cancel(self, job_id: str) -> None:
        """A queued job is cancelled at once; a running one is flagged and stops at its next check."""
        at = now()
        with write_tx(self.engine) as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED.value)
                .values(state=JobState.CANCELLED.value, cancel_requested=True, updated=at)
            )
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.RUNNING.value)
                .values(cancel_requested=True, updated=at)
            )

    def claim(self, job_id: str, *, worker: str, stale_after: float) -> tuple[Claim, int]:
        """Start a new attempt of a queued job, or of a running one whose runner went silent.

        Returns the decision and, for ``STARTED``, the attempt number that fences later writes.
        """
        at = now()
        with write_tx(self.engine) as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id).with_for_update()).first()
            if row is None or JobState(row.state) in TERMINAL_STATES:
                return Claim.SETTLED, 0
            beat = _aware(row.heartbeat) or _aware(row.updated) or at
            if row.state == JobState.RUNNING.value and at - beat < timedelta(seconds=stale_after):
                return Claim.BUSY, row.attempts
            where = update(jobs).where(jobs.c.id == job_id, jobs.c.attempts == row.attempts)
            if row.cancel_requested:
                conn.execute(where.values(state=JobState.CANCELLED.value, updated=at))
                return Claim.SETTLED, 0
            if row.attempts >= row.max_attempts:
                conn.execute(where.values(state=JobState.FAILED.value, updated=at, **_lost(row.attempts)))
                return Claim.SETTLED, 0
            attempt = row.attempts + 1
            conn.execute(
                where.values(
                    state=JobState.RUNNING.value, attempts=attempt, heartbeat=at, worker=worker, updated=at
                )
            )
        return Claim.STARTED, attempt

    def beat(self, job_id: str, attempt: int) -> bool:
        """Refresh the heartbeat of a running attempt; False once the attempt no longer owns the job."""
        return self._running_update(job_id, attempt, heartbeat=now())

    def progress(self, job_id: str, attempt: int, *, done: int, total: int | None) -> bool:
        at = now()
        return self._running_update(job_id, attempt, done=done, total=total, heartbeat=at, updated=at)

    def finish(self, job_id: str, attempt: int, state: JobState, **values: Any) -> bool:
        return self._running_update(job_id, attempt, state=state.value, updated=now(), **values)

    def release(self, job_id: str, attempt: int) -> bool:
        """Put a job stopped by a worker's shutdown back to queued; the attempt does not count."""
        return self._running_update(
            job_id, attempt, state=JobState.QUEUED.value, attempts=attempt - 1, worker=None, updated=now()
        )

    def fail(self, job_id: str, *, error: str, error_kind: str) -> None:
        """Fail a job that is not finished (e.g. it could not be handed to the queue)."""
        with write_tx(self.engine) as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]))
                .values(state=JobState.FAILED.value, error=error, error_kind=error_kind, updated=now())
            )

    def fail_stale(self, *, queue: str, stale_after: float) -> list[str]:
        """Fail unfinished jobs of ``queue`` whose process went silent; returns their ids.

        For the embedded runner only: its jobs live and die with the process that started them.
        """
        cutoff = now() - timedelta(seconds=stale_after)
        unfinished = [JobState.QUEUED.value, JobState.RUNNING.value]
        last_sign = func.coalesce(jobs.c.heartbeat, jobs.c.updated)
        with write_tx(self.engine) as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.attempts).where(
                    jobs.c.queue == queue, jobs.c.state.in_(unfinished), last_sign < cutoff
                )
            ).all()
            for row in rows:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == row.id, jobs.c.state.in_(unfinished), last_sign < cutoff)
                    .values(state=JobState.FAILED.value, updated=now(), **_lost(row.attempts))
                )
        return [row.id for row in rows]

    def _running_update(self, job_id: str, attempt: int, **values: Any) -> bool:
        with write_tx(self.engine) as conn:
            n = conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id, jobs.c.attempts == attempt, jobs.c.state == JobState.RUNNING.value
                )
                .values(**values)
            ).rowcount
        return bool(n)


def _lost(attempts: int) -> dict[str, str]:
    tries = "once" if attempts <= 1 else f"{attempts} times"
    return {
        "error": f"the process running this job stopped {tries}; it is not retried again",
        "error_kind": WORKER_LOST,
    }
