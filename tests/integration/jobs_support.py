"""Support for the job tests: databases a second process can open, test job kinds, and a small
entry point that runs them in a real process (a queue worker, or an embedded runner) so a test
can kill it with SIGKILL.

    python tests/integration/jobs_support.py worker --db URL --broker redis://... --namespace NS
    python tests/integration/jobs_support.py embedded --db URL --steps 1000
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, text

from medweave.db import make_engine
from medweave.errors import InvalidInput
from medweave.jobs import JobContext, JobKinds
from medweave.migrate import upgrade

REDIS_URL = os.environ.get("MEDWEAVE_TEST_REDIS", "redis://127.0.0.1:6379/0")
T = TypeVar("T")


@contextmanager
def database(kind: str, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A migrated database and a URL that opens the same one from another process."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'medweave.db'}"
        engine = make_engine(url)
        upgrade(engine)
        yield url, engine
        engine.dispose()
        return
    base = os.environ.get("MEDWEAVE_TEST_POSTGRES")
    if not base:
        import pytest

        pytest.skip("MEDWEAVE_TEST_POSTGRES is not set")
    base = "postgresql+psycopg://" + base.split("://", 1)[1]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    # migrate.py hands the URL to Alembic's config, which cannot hold its '%': migrate without it.
    migrator = make_engine(base, connect_args={"options": f"-csearch_path={schema}"})
    upgrade(migrator)
    migrator.dispose()
    url = f"{base}?options=-csearch_path={schema}"
    engine = make_engine(url)
    try:
        yield url, engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def kinds() -> JobKinds:
    registry = JobKinds()

    @registry.register("test.count")
    def count(ctx: JobContext, *, steps: int, step_s: float) -> dict[str, int]:
        for i in range(1, steps + 1):
            ctx.check()
            time.sleep(step_s)
            ctx.report(i, steps)
        return {"count": steps, "pid": os.getpid()}

    registry.add("test.once", count, max_attempts=1)  # may run only once: not restarted

    @registry.register("test.fail")
    def fail(ctx: JobContext, *, message: str) -> None:
        raise InvalidInput(message)

    return registry


def until(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def spawn(mode: str, *args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start this file as a process; its output goes to ``log``."""
    out = log.open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, __file__, mode, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    finally:
        out.close()


def _main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["worker", "embedded"])
    parser.add_argument("--db", required=True)
    parser.add_argument("--broker", default=REDIS_URL)
    parser.add_argument("--namespace", default="medweave")
    parser.add_argument("--worker-timeout", type=float, default=1.5)
    parser.add_argument("--max-attempts", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000)
    opts = parser.parse_args(argv)
    engine = make_engine(opts.db)
    if opts.mode == "embedded":
        from medweave.jobs import JobRunner

        runner = JobRunner(
            engine, kinds=kinds(), report_interval=0.0, heartbeat_interval=0.1, stale_after=1.0
        )
        job_id = runner.enqueue("test.count", {"steps": opts.steps, "step_s": 0.02})
        print(job_id, flush=True)
        threading.Event().wait()  # until killed
        return
    from medweave.jobs.queue import QueueSettings
    from medweave.jobs.worker import JobWorker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s: %(message)s")
    cfg = QueueSettings(
        url=opts.broker,
        namespace=opts.namespace,
        worker_timeout=opts.worker_timeout,
        max_attempts=opts.max_attempts,
    )
    JobWorker(engine, cfg, kinds(), threads=2, report_interval=0.0).run(grace=5.0)


if __name__ == "__main__":
    _main(sys.argv[1:])
