"""In-process jobs against real SQLite: stored progress, cancellation, failure."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from medweave.db import make_engine
from medweave.errors import InvalidInput, NotFound
from medweave.jobs import JobCancelled, JobContext, JobRunner, JobState
from medweave.migrate import upgrade


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'medweave.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


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
