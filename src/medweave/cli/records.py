"""``medweave records``: import, export, erase a patient, rotate the master key."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine, select

from medweave import errors
from medweave.cli.context import OPERATOR, fail, one_line_errors, record_service, settings
from medweave.cli.worker import job_client
from medweave.db import read_tx
from medweave.errors import ConfigurationError, MedweaveError
from medweave.identity import IdentityService
from medweave.identity.users import totp_key_ids
from medweave.jobs import JobClient, JobInfo, JobState
from medweave.records.importer import DEFAULT_CHUNK
from medweave.records.service import RecordService
from medweave.records.tables import patient_keys
from medweave.security.crypto import MasterKey, write_secret_file

app = typer.Typer(no_args_is_help=True, help="Patient records: import, export, erase, keys.")
_err = Console(stderr=True)


# -- jobs in the terminal -----------------------------------------------------------------------


def follow_job(runner: JobClient, job_id: str, label: str) -> JobInfo:
    """Show a job's stored progress as a rich progress bar until it finishes.

    Ctrl-C asks the job to stop (it stops between transactions) and waits for it.
    """
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err,
        transient=True,  # the summary (or the one-line error) replaces the bar
    ) as bar:
        task = bar.add_task(label, total=None)
        try:
            while True:
                info = runner.get(job_id)
                bar.update(task, completed=info.done, total=info.total)
                if info.finished:
                    return info
                time.sleep(0.1)
        except KeyboardInterrupt:
            bar.update(task, description=f"{label} (stopping after the current transaction)")
            runner.cancel(job_id)
            return runner.wait(job_id)


def finish_job(info: JobInfo) -> dict[str, Any]:
    """The job's result, or a one-line error and exit code for a failed or cancelled job."""
    if info.state == JobState.FAILED:
        kind = getattr(errors, info.error_kind or "", None)
        code = kind.exit_code if isinstance(kind, type) and issubclass(kind, MedweaveError) else 1
        raise fail(info.error or "the job failed", code)
    if info.state == JobState.CANCELLED:
        if info.result:
            print_import_summary(info.result, seconds=None)
        raise fail("cancelled; the transactions listed above were committed, the rest was not", 130)
    return info.result or {}


def print_import_summary(result: dict[str, Any], *, seconds: float | None) -> None:
    imported: dict[str, int] = result.get("imported", {})
    skipped: dict[str, int] = result.get("skipped", {})
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    typer.echo(
        f"imported {sum(imported.values())} resources in {result.get('transactions', 0)} transaction(s) "
        f"from {result.get('files', 0)} file(s){took}"
    )
    for name, n in sorted(imported.items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {name:<28} {n:>7}")
    if skipped:
        typer.echo(f"skipped {sum(skipped.values())} entries of types Medweave does not store")
        for name, n in sorted(skipped.items(), key=lambda kv: -kv[1]):
            typer.echo(f"  {name:<28} {n:>7}")
    if result.get("merged"):
        typer.echo(f"{result['merged']} shared resources were already stored and not written again")
    if result.get("references_neutralised"):
        typer.echo(
            f"{result['references_neutralised']} references to skipped or unknown resources were kept "
            "as logical references (type, identifier, display)"
        )


# -- import and export --------------------------------------------------------------------------


@app.command("import")
@one_line_errors
def import_(
    path: Path = typer.Argument(..., help="A Bundle (.json), NDJSON file (.ndjson) or a folder of them."),
    chunk_size: int = typer.Option(
        DEFAULT_CHUNK, min=1, max=5000, help="Resources per transaction for NDJSON."
    ),
) -> None:
    """Import FHIR data through the transaction path of the API; whole transactions only."""
    service = record_service()
    runner = job_client(service)
    started = time.monotonic()
    # An absolute path: with a job broker set, a worker (on shared storage) reads the file.
    job_id = runner.enqueue("records.import", {"path": str(path.resolve()), "chunk_size": chunk_size})
    result = finish_job(follow_job(runner, job_id, "Importing"))
    print_import_summary(result, seconds=time.monotonic() - started)


@app.command()
@one_line_errors
def export(
    patient: str = typer.Option(..., "--patient", help="The Patient id."),
    out: Path = typer.Option(..., "--out", help="The NDJSON file to write (replaced atomically)."),
) -> None:
    """Export a patient's record (Patient/$everything) as NDJSON, one resource per line."""
    service = record_service()
    n = write_ndjson(out, service.export_patient(principal=OPERATOR, patient_id=patient))
    typer.echo(f"wrote {n} resources of Patient/{patient} to {out}")


def write_ndjson(out: Path, resources: Iterable[dict[str, Any]]) -> int:
    """Write FHIR Bulk Data NDJSON to a temporary file (0600) beside ``out``, then rename it."""
    out = out.expanduser()
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    n = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            for resource in resources:
                fh.write(orjson.dumps(resource) + b"\n")
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(out.parent)
    return n


# -- erasure ------------------------------------------------------------------------------------


@app.command("erase-patient")
@one_line_errors
def erase_patient(
    patient_id: str = typer.Argument(..., help="The Patient id."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: this destroys the record for good."),
) -> None:
    """Crypto-shred a patient: destroy their data key; every read of their record answers 410."""
    if not yes:
        raise fail(f"erasing Patient/{patient_id} cannot be undone; run again with --yes to confirm", 2)
    n = record_service().erase_patient(principal=OPERATOR, patient_id=patient_id)
    typer.echo(f"erased Patient/{patient_id}: {n} resources shredded (their data key is destroyed)")


# -- master key rotation ------------------------------------------------------------------------


@app.command("rotate-master-key")
@one_line_errors
def rotate_master_key() -> None:
    """Re-wrap every patient data key under a new master key (file-based keys only).

    Stop `medweave serve` and workers first: they hold the old key in memory. Crash-safe: the new
    key goes to <key file>.next, the data keys are re-wrapped in one transaction, then .next
    replaces the key file; a later run finishes or rolls back an interrupted rotation.
    """
    cfg = settings()
    if cfg.master_key:
        raise fail(
            "the master key is set inline (MEDWEAVE_MASTER_KEY); rotate-master-key rotates only a key "
            "file: unset MEDWEAVE_MASTER_KEY and keep the key in MEDWEAVE_MASTER_KEY_FILE",
            6,
        )
    path = cfg.effective_master_key_file
    if not path.exists():
        raise fail(f"no master key file at {path}; nothing to rotate", 6)
    service = record_service(cfg)
    note = recover_rotation(service.engine, path, current=service.master)
    if note:
        typer.echo(note)
        service.master = MasterKey.from_b64(path.read_text())
    new = MasterKey.generate()
    n = rotate(service, path, new)
    typer.echo(f"rotated the master key: {n} patient data keys re-wrapped (new key id {new.key_id})")


def next_key_path(path: Path) -> Path:
    return path.with_name(path.name + ".next")


def master_key_ids(engine: Engine) -> set[str]:
    """Ids of the master keys that wrap live data keys and TOTP secrets (normally exactly one)."""
    with read_tx(engine) as conn:
        rows = conn.execute(
            select(patient_keys.c.master_key_id).where(patient_keys.c.wrapped_key.is_not(None)).distinct()
        ).all()
        totp = totp_key_ids(conn)
    return {row.master_key_id for row in rows if row.master_key_id} | totp


def rotate(service: RecordService, path: Path, new: MasterKey) -> int:
    """Write ``<path>.next``, re-wrap every data key in one transaction, then swap the files."""
    in_use = master_key_ids(service.engine)
    if in_use - {service.master.key_id}:
        raise ConfigurationError(
            f"the database holds data keys wrapped by another master key ({', '.join(sorted(in_use))}) "
            f"than the one in {path} ({service.master.key_id}); refusing to rotate"
        )
    nxt = next_key_path(path)
    write_secret_file(nxt, new.to_b64())
    _fsync_file(nxt)
    _fsync_dir(nxt.parent)
    identity = IdentityService(engine=service.engine, master=service.master)
    old = service.master
    # One transaction for the data keys and the TOTP secrets: all or nothing.
    n = service.rotate_master_key(
        new=new, also=lambda conn: identity.rotate_master_key_in(conn, old=old, new=new)
    )
    os.replace(nxt, path)
    _fsync_dir(path.parent)
    return n


def recover_rotation(engine: Engine, path: Path, *, current: MasterKey) -> str | None:
    """Finish or roll back a rotation that stopped between its steps; returns what it did."""
    nxt = next_key_path(path)
    nxt.with_name(nxt.name + ".tmp").unlink(missing_ok=True)  # a write of .next that never finished
    if not nxt.exists():
        return None
    new = MasterKey.from_b64(nxt.read_text())
    in_use = master_key_ids(engine)
    if new.key_id != current.key_id and in_use and in_use <= {new.key_id}:
        os.replace(nxt, path)
        _fsync_dir(path.parent)
        return "an interrupted rotation had re-wrapped the data keys: finished it (the new key is now in use)"
    if in_use <= {current.key_id}:
        nxt.unlink()
        _fsync_dir(path.parent)
        return "an interrupted rotation had not re-wrapped the data keys: rolled it back"
    raise ConfigurationError(
        f"the database holds data keys under master key id(s) {', '.join(sorted(in_use))}, but {path} "
        f"holds {current.key_id} and {nxt} holds {new.key_id}; resolve by hand, keep both files"
    )


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # Some filesystems cannot sync a directory; the rename is atomic all the same.
    with contextlib.suppress(OSError):
        _fsync_file(path)
