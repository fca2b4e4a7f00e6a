"""In-process jobs (the embedded default) against real SQLite and PostgreSQL: stored progress,
cancellation, failure, registered kinds, and recovery of the jobs of a process that died."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobs_support import database, kinds, spawn, until
from sqlalchemy import Engine

from medweave.errors import ConfigurationError, InvalidInput, NotFound
from medweave.jobs import WORKER_LOST, JobCancelled, JobContext, JobRunner, JobState


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    with database(request.param, tmp_path) as found:
        yield found


@pytest.fixture
def engine(db: tuple[str, Engine]) -> Engine:
    return db[1]


@pytest.fixture
def runner(engine: Engine) -> JobRunner:
    return JobRunner(engine, report_interval=0.0)


def test_progress_and_result_are_stored(runner: JobRunner) -> None:
    halfway, go_on = threading.Event(), threading.Event()

    def work(ctx: JobContext) -> dict[str, int]:
        for i in range(1, 11):
            ctx.report(i, 10)
            if i == 4:
                halfway.set()
                assert go_on.wait(10)
        return {"count": 10}

    job_id = runner.submit("test.count", work)
    assert halfway.wait(10)
    mid = runner.get(job_id)
    assert (mid.state, mid.done, mid.total) == (JobState.RUNNING, 4, 10)
    go_on.set()
    info = runner.wait(job_id, timeout=10)
    assert (info.state, info.done, info.total) == (JobState.DONE, 10, 10)
    assert info.result == {"count": 10}
    assert info.error is None
    assert info.created.tzinfo is not None and info.updated >= info.created


def test_cancel_stops_a_running_job(runner: JobRunner) -> None:
    started = threading.Event()
    steps: list[int] = []

    def work(ctx: JobContext) -> None:
        for i in range(1000):
            ctx.check()
            steps.append(i)
            ctx.report(i, 1000)
            started.set()
            threading.Event().wait(0.01)

    job_id = runner.submit("test.slow", work)
    assert started.wait(10)
    runner.cancel(job_id)
    info = runner.wait(job_id, timeout=10)
    assert info.state == JobState.CANCELLED
    assert info.cancel_requested
    assert len(steps) < 1000


def test_cancel_from_another_runner_reaches_the_job_through_the_table(engine: Engine) -> None:
    """What a second process (the web app, a later worker) would do: only the row is shared."""
    runner = JobRunner(engine, report_interval=0.01)
    started = threading.Event()

    def work(ctx: JobContext) -> None:
        started.set()
        while not ctx.cancelled():
            threading.Event().wait(0.01)
        raise JobCancelled(ctx.job_id, result={"stopped": True})

    job_id = runner.submit("test.wait", work)
    assert started.wait(10)
    JobRunner(engine).cancel(job_id)
    info = runner.wait(job_id, timeout=10)
    assert info.state == JobState.CANCELLED
    assert info.result == {"stopped": True}


def test_a_failing_job_is_marked_failed_with_its_error(runner: JobRunner) -> None:
    def work(ctx: JobContext) -> None:
        ctx.report(3, 7)
        raise InvalidInput("line 3: not valid JSON")

    info = runner.wait(runner.submit("test.fail", work), timeout=10)
    assert info.state == JobState.FAILED
    assert info.error == "line 3: not valid JSON"
    assert info.error_kind == "InvalidInput"
    assert (info.done, info.total) == (3, 7)


def test_a_foreign_exception_stores_its_class_but_not_its_message(runner: JobRunner) -> None:
    def work(ctx: JobContext) -> None:
        raise ValueError("Patient Quillfeather, born 1970-01-01")  # a message may quote record content

    info = runner.wait(runner.submit("test.crash", work), timeout=10)
    assert info.state == JobState.FAILED
    assert info.error == "internal error (ValueError)"
    assert "Quillfeather" not in (info.error or "")


def test_wait_for_a_job_of_another_runner_polls_the_table(engine: Engine, runner: JobRunner) -> None:
    job_id = runner.submit("test.quick", lambda ctx: {"ok": True})
    info = JobRunner(engine, report_interval=0.01).wait(job_id, timeout=10)
    assert info.state == JobState.DONE and info.result == {"ok": True}


def test_unknown_job_is_not_found(runner: JobRunner) -> None:
    with pytest.raises(NotFound):
        runner.get("no-such-job")


def test_a_registered_kind_runs_with_its_stored_arguments(engine: Engine) -> None:
    runner = JobRunner(engine, kinds=kinds(), report_interval=0.0)
    job_id = runner.enqueue("test.count", {"steps": 3, "step_s": 0.0})
    info = runner.wait(job_id, timeout=10)
    assert (info.state, info.kind, info.args) == (JobState.DONE, "test.count", {"steps": 3, "step_s": 0.0})
    assert (info.queue, info.attempts, info.max_attempts) == ("embedded", 1, 1)
    assert info.heartbeat is not None


def test_an_unknown_kind_is_refused_before_anything_is_stored(engine: Engine) -> None:
    runner = JobRunner(engine, kinds=kinds())
    with pytest.raises(ConfigurationError, match="not registered"):
        runner.enqueue("test.nope", {})


def test_a_live_runner_keeps_its_job_alive_with_heartbeats(engine: Engine) -> None:
    runner = JobRunner(engine, kinds=kinds(), report_interval=10.0, heartbeat_interval=0.05, stale_after=0.5)
    job_id = runner.enqueue("test.count", {"steps": 60, "step_s": 0.02})  # reports rarely: 10 s interval
    time.sleep(0.9)  # longer than stale_after
    other = JobRunner(engine, stale_after=0.5)  # what a second process starting now would do
    assert other.recover() == []
    info = runner.wait(job_id, timeout=10)
    assert info.state == JobState.DONE, info


def test_the_job_of_a_killed_embedded_process_is_failed_on_the_next_start(
    db: tuple[str, Engine], tmp_path: Path
) -> None:
    url, engine = db
    log = tmp_path / "embedded.log"
    child = spawn("embedded", "--db", url, "--steps", "100000", log=log)
    try:
        job_id = until(lambda: _job_id(log), timeout=20, what="the child to start its job")
        runner = JobRunner(engine, stale_after=1.0)
        until(lambda: runner.get(job_id).done >= 3, timeout=20, what="progress")
        time.sleep(1.2)  # past stale_after: a live process's heartbeat keeps its job
        assert runner.recover() == []
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert JobRunner(engine, stale_after=1.0).get(job_id).state == JobState.RUNNING  # not stale yet
    time.sleep(1.2)
    info = JobRunner(engine, stale_after=1.0).get(job_id)  # a runner starting later recovers it
    assert info.state == JobState.FAILED, info
    assert info.error_kind == WORKER_LOST
    assert 3 <= info.done < 100000


def _job_id(log: Path) -> str | None:
    found = re.search(r"^[0-9a-f-]{36}$", log.read_text(), re.MULTILINE) if log.exists() else None
    return found.group(0) if found else None
