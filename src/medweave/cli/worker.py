"""``medweave worker``: run background jobs taken from the Redis queue (production).

Also where the CLI gets its job client (:func:`job_client`) and the job kinds every process that
runs jobs registers (:func:`job_kinds`), so ``records import`` runs the same way in the CLI's
own process (embedded default) and on a worker (``MEDWEAVE_JOBS_BROKER=redis://...``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from medweave.cli.context import fail, one_line_errors, record_service, settings
from medweave.config import Settings
from medweave.diagnostics.registry import Registry
from medweave.diagnostics.workflow import RunOptions, train_job
from medweave.jobs import EMBEDDED, JobCancelled, JobClient, JobContext, JobKinds, open_jobs
from medweave.ledger.service import Sequencer
from medweave.printing.pipeline import Stopped
from medweave.printing.service import LabConfig, PrintLab
from medweave.records.demo import seed_job
from medweave.records.importer import DEFAULT_CHUNK, import_job
from medweave.records.service import RecordService
from medweave.web.app import build_ledger, build_registry, witness_step


@dataclass(frozen=True)
class JobsConfig:
    broker: str = EMBEDDED
    namespace: str = "medweave"
    worker_timeout: float = 60.0
    max_attempts: int = 3


def jobs_config(cfg: Settings) -> JobsConfig:
    """The ``MEDWEAVE_JOBS_*`` settings."""
    return JobsConfig(
        broker=cfg.jobs_broker,
        namespace=cfg.jobs_namespace,
        worker_timeout=cfg.jobs_worker_timeout,
        max_attempts=cfg.jobs_max_attempts,
    )


def job_kinds(service: RecordService, cfg: Settings | None = None) -> JobKinds:
    """The job kinds of Medweave, bound to this process's record service (and settings)."""
    kinds = JobKinds()

    # An import run again from the start would store its resources without ids twice (they are
    # POSTed): if the worker dies under it, it is marked failed, not retried. The same for seed.
    @kinds.register("records.import", max_attempts=1)
    def records_import(ctx: JobContext, *, path: str, chunk_size: int = DEFAULT_CHUNK) -> Any:
        return import_job(service, Path(path), chunk_size=chunk_size)(ctx)

    @kinds.register("demo.seed", max_attempts=1)
    def demo_seed(ctx: JobContext, *, patients: int, seed: int) -> Any:
        return seed_job(service, patients=patients, seed=seed)(ctx)

    # Training is deterministic for a seed, so a run whose worker died is simply run again.
    @kinds.register("ml.train", max_attempts=2)
    def ml_train(ctx: JobContext, *, proposer: str, role: str | None = None, **options: Any) -> Any:
        return train_job(ml_registry(service), proposer=proposer, role=role, options=RunOptions(**options))(
            ctx
        )

    # A design records a Device on the patient as its last step; run again after a worker died
    # part-way, it could record a second one, so it is not retried (the lab starts a new one).
    @kinds.register("print.design", max_attempts=1)
    def print_design(ctx: JobContext, *, design_id: str) -> Any:
        try:
            return print_lab(service, cfg).run_design(design_id, progress=ctx.report, cancelled=ctx.cancelled)
        except Stopped:
            raise JobCancelled(design_id) from None

    return kinds


def print_lab(service: RecordService, cfg: Settings | None = None) -> PrintLab:
    """The print lab over this process's record store, with the ``MEDWEAVE_PRINT*`` settings."""
    return PrintLab(service, LabConfig.from_settings(cfg or settings()))


def ml_registry(service: RecordService, cfg: Settings | None = None) -> Registry:
    """The model registry, with the clinical leads from ``MEDWEAVE_ML_CLINICAL_LEADS``."""
    return build_registry(cfg or settings(), service)


def job_client(service: RecordService, cfg: Settings | None = None) -> JobClient:
    """In-process jobs by default; with a Redis broker set, jobs go to ``medweave worker``."""
    jc = jobs_config(cfg or settings())
    return open_jobs(
        service.engine,
        kinds=job_kinds(service, cfg),
        broker=jc.broker,
        namespace=jc.namespace,
        worker_timeout=jc.worker_timeout,
        max_attempts=jc.max_attempts,
    )


@one_line_errors
def worker(
    threads: int = typer.Option(4, "--threads", min=1, max=256, help="Jobs this process runs at once."),
    grace: float = typer.Option(
        30.0,
        "--grace",
        min=0,
        help="Seconds running jobs get to stop on SIGTERM before they are left to retry.",
    ),
    broker: str = typer.Option(None, "--broker", help="Redis URL (default MEDWEAVE_JOBS_BROKER)."),
    namespace: str = typer.Option(
        None, "--namespace", help="Redis key prefix (default MEDWEAVE_JOBS_NAMESPACE)."
    ),
    worker_timeout: float = typer.Option(
        None, "--worker-timeout", min=0.1, help="Seconds of silence before a worker's jobs go to another."
    ),
    max_attempts: int = typer.Option(
        None, "--max-attempts", min=1, help="Attempts per job when workers die."
    ),
) -> None:
    """Run background jobs from the Redis queue until SIGTERM; start as many as you like, anywhere.

    Each worker also sequences the ledger (MEDWEAVE_LEDGER_INTERVAL_MS); they take turns."""
    from medweave.jobs.queue import QueueSettings
    from medweave.jobs.worker import JobWorker

    cfg = settings()
    jc = jobs_config(cfg)
    url = broker or jc.broker
    if url == EMBEDDED:
        raise fail(
            "no job broker is set: with the embedded default, jobs run in the process that starts them; "
            "set MEDWEAVE_JOBS_BROKER=redis://HOST:6379/0 to run them on workers",
            6,
        )
    queue = QueueSettings(
        url=url,
        namespace=namespace or jc.namespace,
        worker_timeout=worker_timeout or jc.worker_timeout,
        max_attempts=max_attempts or jc.max_attempts,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = record_service(cfg)
    interval = cfg.ledger_interval_ms / 1000
    ledger = build_ledger(cfg, service)
    after = witness_step(cfg, ledger)
    sequencer = Sequencer(ledger, interval=interval, after=after).start() if interval > 0 else None
    try:
        JobWorker(service.engine, queue, job_kinds(service), threads=threads).run(grace=grace)
    finally:
        if sequencer is not None:
            sequencer.stop()


if __name__ == "__main__":
    typer.run(worker)
