"""The production job queue: real Redis, real worker processes, SQLite and PostgreSQL.

Each test gets its own Redis namespace (deleted afterwards) and database. Timeouts are tuned
down (a worker silent for 1.5 s is dead) so that crash recovery is tested in seconds.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from jobs_support import REDIS_URL, database, kinds, spawn, until
from sqlalchemy import Engine

from medweave.jobs import WORKER_LOST, JobInfo, JobRunner, JobState
from medweave.jobs.queue import QueueJobs, QueueSettings

WORKER_TIMEOUT = 1.5
Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    with database(request.param, tmp_path) as found:
        yield found


@pytest.fixture
def namespace() -> Iterator[str]:
    ns = f"mw-test-{os.urandom(6).hex()}"
    yield ns
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{ns}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def queue(db: tuple[str, Engine], namespace: str) -> Iterator[QueueJobs]:
    cfg = QueueSettings(url=REDIS_URL, namespace=namespace, worker_timeout=WORKER_TIMEOUT, max_attempts=2)
    client = QueueJobs(db[1], cfg, kinds=kinds())
    yield client
    client.close()


@pytest.fixture
def start_worker(db: tuple[str, Engine], namespace: str, tmp_path: Path) -> Iterator[Spawn]:
    """Start worker processes (``jobs_support.py worker``); all are killed at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*, max_attempts: int = 2) -> subprocess.Popen[bytes]:
        proc = spawn(
            "worker",
            "--db", db[0],
            "--namespace", namespace,
            "--worker-timeout", str(WORKER_TIMEOUT),
            "--max-attempts", str(max_attempts),
            log=tmp_path / "workers.log",
        )  # fmt: skip
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def running_with_progress(
    queue: QueueJobs, job_id: str, *, at_least: int, attempt: int = 1
) -> JobInfo | None:
    info = queue.get(job_id)
    assert not info.finished, f"job ended early: {info}"
    ok = info.state == JobState.RUNNING and info.attempts == attempt and info.done >= at_least
    return info if ok else None


def test_progress_is_stored_and_increases_while_a_worker_runs_the_job(
    queue: QueueJobs, start_worker: Spawn
) -> None:
    worker = start_worker()
    job_id = queue.enqueue("test.count", {"steps": 20, "step_s": 0.05})
    assert queue.get(job_id).state == JobState.QUEUED
    seen: list[int] = []

    def finished() -> JobInfo | None:
        info = queue.get(job_id)
        if info.state == JobState.RUNNING:
            seen.append(info.done)
        return info if info.finished else None

    info = until(finished, timeout=20, interval=0.02, what="the job to finish")
    assert info.state == JobState.DONE, info
    assert (info.done, info.total, info.attempts) == (20, 20, 1)
    assert info.result == {"count": 20, "pid": worker.pid}  # it ran in the worker process
    assert any(0 < n < 20 for n in seen), seen  # progress was visible while it ran
    assert seen == sorted(seen), seen  # and only went up


def test_a_job_error_is_stored_and_not_retried(queue: QueueJobs, start_worker: Spawn) -> None:
    start_worker()
    job_id = queue.enqueue("test.fail", {"message": "line 3: not valid JSON"})
    info = queue.wait(job_id, timeout=20)
    assert (info.state, info.error, info.error_kind) == (
        JobState.FAILED,
        "line 3: not valid JSON",
        "InvalidInput",
    )
    assert info.attempts == 1


def test_cancel_reaches_a_job_running_in_a_worker_process(queue: QueueJobs, start_worker: Spawn) -> None:
    start_worker()
    job_id = queue.enqueue("test.count", {"steps": 1000, "step_s": 0.02})
    until(lambda: running_with_progress(queue, job_id, at_least=3), timeout=20, what="progress")
    queue.cancel(job_id)
    info = queue.wait(job_id, timeout=10)
    assert info.state == JobState.CANCELLED, info
    assert info.cancel_requested
    assert 3 <= info.done < 1000


def test_a_queued_job_cancelled_before_any_worker_runs_it_never_runs(
    queue: QueueJobs, start_worker: Spawn
) -> None:
    job_id = queue.enqueue("test.count", {"steps": 5, "step_s": 0.01})
    assert queue.cancel(job_id).state == JobState.CANCELLED
    start_worker()
    marker = queue.enqueue("test.count", {"steps": 1, "step_s": 0.0})  # the worker has passed the first
    assert queue.wait(marker, timeout=20).state == JobState.DONE
    info = queue.get(job_id)
    assert (info.state, info.attempts, info.done) == (JobState.CANCELLED, 0, 0)


def test_a_job_survives_its_worker_being_killed(queue: QueueJobs, start_worker: Spawn) -> None:
    first = start_worker()
    job_id = queue.enqueue("test.count", {"steps": 20, "step_s": 0.05})
    until(lambda: running_with_progress(queue, job_id, at_least=5), timeout=20, what="progress")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert queue.get(job_id).state == JobState.RUNNING  # nobody runs it now; the row still says so

    second = start_worker()
    info = queue.wait(job_id, timeout=30)
    assert info.state == JobState.DONE, info
    assert info.attempts == 2  # the second attempt started over and finished
    assert info.result == {"count": 20, "pid": second.pid}


def test_a_job_whose_workers_keep_dying_is_failed_not_lost(queue: QueueJobs, start_worker: Spawn) -> None:
    job_id = queue.enqueue("test.count", {"steps": 1000, "step_s": 0.02})  # max_attempts=2
    for attempt in (1, 2):
        worker = start_worker()
        until(
            functools.partial(running_with_progress, queue, job_id, at_least=2, attempt=attempt),
            timeout=30,
            what=f"attempt {attempt} to make progress",
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    start_worker()
    info = queue.wait(job_id, timeout=30)
    assert info.state == JobState.FAILED, info
    assert info.error_kind == WORKER_LOST
    assert info.attempts == 2
    assert "stopped 2 times" in (info.error or "")


def test_sigterm_hands_a_running_job_back_without_using_an_attempt(
    queue: QueueJobs, start_worker: Spawn
) -> None:
    first = start_worker()
    job_id = queue.enqueue("test.count", {"steps": 20, "step_s": 0.05})
    until(lambda: running_with_progress(queue, job_id, at_least=3), timeout=20, what="progress")
    first.send_signal(signal.SIGTERM)
    assert first.wait(15) == 0
    info = queue.get(job_id)
    assert (info.state, info.attempts) == (JobState.QUEUED, 0), info

    second = start_worker()
    info = queue.wait(job_id, timeout=30)
    assert info.state == JobState.DONE, info
    assert info.attempts == 1
    assert info.result == {"count": 20, "pid": second.pid}


def test_sigterm_lets_a_job_that_may_run_only_once_finish(queue: QueueJobs, start_worker: Spawn) -> None:
    worker = start_worker()
    job_id = queue.enqueue("test.once", {"steps": 20, "step_s": 0.05})
    until(lambda: running_with_progress(queue, job_id, at_least=3), timeout=20, what="progress")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    info = queue.get(job_id)
    assert (info.state, info.attempts, info.max_attempts) == (JobState.DONE, 1, 1), info
    assert info.result == {"count": 20, "pid": worker.pid}


def test_records_import_runs_on_a_medweave_worker(
    db: tuple[str, Engine], namespace: str, tmp_path: Path
) -> None:
    """The real thing: ``medweave worker`` (its CLI) imports a file that the CLI's side enqueued."""
    import sys

    from medweave.cli.context import record_service
    from medweave.cli.worker import job_client
    from medweave.config import Settings
    from medweave.security.crypto import MasterKey

    url, _ = db
    env = {
        "MEDWEAVE_DATABASE_URL": url,
        "MEDWEAVE_DATA_DIR": str(tmp_path / "data"),
        "MEDWEAVE_MASTER_KEY": MasterKey.generate().to_b64(),
    }
    ndjson = tmp_path / "patients.ndjson"
    ndjson.write_text(
        "".join(
            f'{{"resourceType":"Patient","id":"p{i}","name":[{{"family":"Test{i}"}}]}}\n' for i in range(5)
        )
    )
    broker = ["--broker", REDIS_URL, "--namespace", namespace, "--worker-timeout", str(WORKER_TIMEOUT)]
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "medweave.cli.worker", "--threads", "2", *broker],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    try:
        cfg = Settings(database_url=url, data_dir=tmp_path / "data", master_key=env["MEDWEAVE_MASTER_KEY"])
        service = record_service(cfg)
        jobs = job_client(service, cfg)
        assert isinstance(jobs, JobRunner)  # no broker in these settings: the embedded default
        queued = QueueJobs(
            service.engine, QueueSettings(url=REDIS_URL, namespace=namespace), kinds=jobs.kinds
        )
        job_id = queued.enqueue("records.import", {"path": str(ndjson), "chunk_size": 2})
        info = queued.wait(job_id, timeout=30)
        queued.close()
        assert info.state == JobState.DONE, (info, (tmp_path / "worker.log").read_text()[-2000:])
        assert info.result["imported"] == {"Patient": 5}
        assert info.result["transactions"] == 3
        assert (info.done, info.total, info.attempts, info.max_attempts) == (5, 5, 1, 1)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0
