"""``medweave ml``: machine learning for diagnosis, offline (issue 7)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import typer

from medweave.cli.context import OPERATOR, fail, one_line_errors, record_service
from medweave.cli.records import finish_job, follow_job
from medweave.cli.worker import job_client, ml_registry
from medweave.diagnostics import cards, chai, clinic_data, monitoring, training, tripod
from medweave.diagnostics.datasets import DATASETS, DatasetUnavailable
from medweave.diagnostics.estimators import KINDS
from medweave.diagnostics.registry import ModelRecord, Registry
from medweave.errors import MedweaveError
from medweave.records.service import RecordService
from medweave.security.crypto import derive_key

app = typer.Typer(no_args_is_help=True, help="Machine learning for diagnosis: datasets and models.")

COLUMNS = ("name", "task", "rows", "features", "source")


def _describe(name: str) -> dict[str, Any]:
    info = DATASETS[name]
    row: dict[str, Any] = {
        "name": info.name,
        "task": info.task,
        "rows": None,
        "features": None,
        "source": info.source,
        "license": info.license,
        "target": info.target,
        "groups": list(info.groups),
        "fingerprint": None,
        "error": None,
    }
    try:
        data = info.loader()
    except DatasetUnavailable as exc:
        row["error"] = exc.message
        return row
    row.update(rows=data.rows, features=data.features.shape[1], fingerprint=data.fingerprint)
    return row


def _table(rows: list[dict[str, Any]]) -> str:
    cells = [
        [str(row[c]) if row["error"] is None or c not in ("rows", "features") else "-" for c in COLUMNS]
        for row in rows
    ]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(COLUMNS)]
    right = {"rows", "features"}

    def line(values: list[str]) -> str:
        padded = [
            v.rjust(w) if c in right else v.ljust(w) for c, v, w in zip(COLUMNS, values, widths, strict=True)
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(list(COLUMNS)), *(line(r) for r in cells)])


@app.command("datasets")
def datasets_command(
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON array, with license, target and fingerprint."
    ),
) -> None:
    """List the clinical datasets that ship inside installed packages: name, task, rows, features
    (after one-hot encoding) and source. Nothing is downloaded. Exits 6 after listing if a dataset's
    package is missing (install medweave[ml])."""
    rows = [_describe(name) for name in DATASETS]
    if as_json:
        typer.echo(json.dumps(rows))
    else:
        typer.echo(_table(rows))
    missing = [row for row in rows if row["error"]]
    for row in missing:
        typer.echo(f"error: {row['error']}", err=True)
    if missing:
        raise typer.Exit(DatasetUnavailable.exit_code)


# -- models -------------------------------------------------------------------------------------


def _registry(service: RecordService) -> Registry:
    return ml_registry(service)


@app.command("train")
@one_line_errors
def train_command(
    dataset: str = typer.Option(..., "--dataset", help="A dataset name from `medweave ml datasets`."),
    model: str = typer.Option(..., "--model", help=f"One of: {', '.join(KINDS)}."),
    seed: int = typer.Option(0, "--seed", help="Seed of every split, resample and model."),
    protocol: str = typer.Option(
        None, "--protocol", help="holdout, cv or published (default: published where there is one, else cv)."
    ),
    name: str = typer.Option(None, "--name", help="Registry name (default DATASET-MODEL)."),
) -> None:
    """Train and evaluate a model under its protocol, register it as proposed, and print JSON with
    its id and metrics (each with a bootstrap 95% CI). Runs as a background job with progress."""
    training.check(dataset, model, protocol)  # bad arguments fail here, before a job is queued
    service = record_service()
    runner = job_client(service)
    args = {"dataset": dataset, "kind": model, "seed": seed, "protocol": protocol, "name": name}
    job_id = runner.enqueue("ml.train", {**args, "proposer": OPERATOR.subject})
    result = finish_job(follow_job(runner, job_id, f"Training {model} on {dataset}"))
    record = _registry(service).get(str(result["model_id"]))
    typer.echo(json.dumps(_summary(record), allow_nan=False))


def _summary(record: ModelRecord) -> dict[str, Any]:
    report = record.report
    return {
        "id": record.id,
        "name": record.name,
        "version": record.version,
        "status": record.status,
        "dataset": record.dataset,
        "model": record.kind,
        "protocol": report["protocol"]["name"],
        "fingerprint": record.fingerprint,
        "code_version": record.code_version,
        "metrics": report["metrics"],
        "threshold": report["threshold"],
        "conformal": report.get("conformal"),
        "servable": record.servable,
    }


@app.command("evaluate")
@one_line_errors
def evaluate_command(
    model_id: str = typer.Argument(..., help="A model id (mdl_...)."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole evaluation report as JSON."),
) -> None:
    """Show a registered model's evaluation: each metric with its 95% CI, the threshold with its
    alert rate and PPV, conformal coverage, and the subgroup table. The dataset's fingerprint is
    checked against the one the model was trained on."""
    registry = _registry(record_service())
    record = registry.get(model_id)
    current = _current_fingerprint(record.dataset)
    if as_json:
        typer.echo(
            json.dumps(
                {**_summary(record), "report": record.report, "data_unchanged": current == record.fingerprint}
            )
        )
    else:
        typer.echo(evaluation_text(record, data_unchanged=current == record.fingerprint))
    if current is not None and current != record.fingerprint:
        raise fail(f"the {record.dataset} data installed now differ from those the model was trained on", 5)


def _current_fingerprint(dataset: str) -> str | None:
    """The fingerprint of the dataset as installed (or as the table file holds it) now."""
    if dataset.startswith(clinic_data.PREFIX):
        try:
            return clinic_data.load(dataset).fingerprint
        except MedweaveError:
            return None
    return DATASETS[dataset].loader().fingerprint if dataset in DATASETS else None


def _number(value: Any) -> str:
    return "not computable" if value is None else f"{value:.3f}"


def evaluation_text(record: ModelRecord, *, data_unchanged: bool) -> str:
    report = record.report
    lines = [
        f"{record.id}  {record.name} v{record.version}  [{record.status}]",
        f"{record.kind} on {record.dataset}",
        f"protocol {report['protocol']['name']}: {report['protocol']['description']}",
        f"data fingerprint {record.fingerprint} ({'unchanged' if data_unchanged else 'CHANGED'})",
        f"code {record.code_version}",
        "",
        f"{'metric':<24}{'value':>10}  95% CI",
    ]
    for name, m in report["metrics"].items():
        lines.append(f"{name:<24}{_number(m['value']):>10}  {_number(m['lower'])} to {_number(m['upper'])}")
    t = report["threshold"]
    lines += [
        "",
        f"threshold {_number(t['value'])} ({t['rule']}): alert rate {_number(t['alert_rate'])}, "
        f"PPV {_number(t['ppv'])}, sensitivity {_number(t['sensitivity'])}, "
        f"specificity {_number(t['specificity'])}",
    ]
    c = report.get("conformal") or {}
    if c:
        lines.append(
            f"conformal {c.get('level', 0):.0%} sets: empirical coverage {_number(c.get('coverage'))}"
        )
    rows = (report.get("subgroups") or {}).get("rows", [])
    if rows:
        key = "c_index" if record.task == "survival" else "auroc"
        lines += ["", f"{'subgroup':<32}{'n':>7}{'events':>8}{key:>10}{'alert rate':>12}{'PPV':>8}"]
        for r in rows:
            lines.append(
                f"{r['attribute'] + '=' + r['group']:<32}{r['n']:>7}{r['events']:>8}"
                f"{_number(r.get(key)):>10}{_number(r.get('alert_rate')):>12}{_number(r.get('ppv')):>8}"
            )
    return "\n".join(lines)


@app.command("card")
@one_line_errors
def card_command(
    model_id: str = typer.Argument(..., help="A model id (mdl_...)."),
    fmt: str = typer.Option(
        "md", "--format", help="md (model card), json, or chai (CHAI applied model card)."
    ),
) -> None:
    """Print a model's card, filled in from its training run: Mitchell et al. 2019 sections with the
    TRIPOD+AI checklist (md or json), or the CHAI applied model card JSON."""
    if fmt not in ("md", "json", "chai"):
        raise fail(f"unknown format {fmt!r}; md, json or chai", 2)
    record = _registry(record_service()).get(model_id).as_json()
    if fmt == "md":
        typer.echo(cards.model_card_markdown(record))
    elif fmt == "json":
        typer.echo(json.dumps({**cards.model_card(record), "tripod_ai": tripod.tripod_ai(record)}, indent=2))
    else:
        typer.echo(json.dumps(chai.chai_card(record), indent=2))


@app.command("models")
@one_line_errors
def models_command(
    status: str = typer.Option(None, "--status", help="Only proposed, approved or retired models."),
) -> None:
    """List registered models: id, name, version, status, model, dataset and headline metric."""
    for r in _registry(record_service()).models(status=status):
        metrics = r.report["metrics"]
        key = "c_index" if r.task == "survival" else "auroc"
        headline = f"{key} {_number(metrics.get(key, {}).get('value'))}"
        typer.echo(f"{r.id}  {r.name} v{r.version}  {r.status:<9} {r.kind:<9} {r.dataset:<11} {headline}")


@app.command("retire")
@one_line_errors
def retire_command(
    model_id: str = typer.Argument(..., help="A model id (mdl_...)."),
    reason: str = typer.Option(..., "--reason", help="Why it is taken out of service (recorded, audited)."),
) -> None:
    """Take a model out of service at once (an operator may retire; approving is a clinician's)."""
    record = _registry(record_service()).decide(OPERATOR, model_id, "retire", reason=reason)
    typer.echo(f"{record.id} retired")


@app.command("extract")
@one_line_errors
def extract_command(
    out: Path = typer.Option(..., "--out", help="CSV file to write (a .json description goes beside it)."),
    spec: str = typer.Option("framingham", "--spec", help=f"Feature spec: {', '.join(clinic_data.SPECS)}."),
    outcome_code: list[str] = typer.Option(
        ..., "--outcome-code", help="A condition code SYSTEM|CODE that counts as the outcome (repeatable)."
    ),
    as_of: str = typer.Option(
        None, "--as-of", help="Date the features and outcome are read at (default today)."
    ),
) -> None:
    """Write a de-identified training table from this clinic's records: a keyed pseudonym, the
    spec's features and the outcome per patient; no name, identifier or date. Train on it with
    `medweave ml train --dataset table:FILE`."""
    when = datetime.now(UTC)
    if as_of:
        try:
            when = datetime.combine(date.fromisoformat(as_of), time(23, 59, 59), UTC)
        except ValueError:
            raise fail(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)", 2) from None
    service = record_service()
    key = derive_key(service.master.key, info=b"medweave-ml-table-pid")
    rows, report = clinic_data.extract(
        service, OPERATOR, spec, outcome_codes=outcome_code, as_of=when, pseudonym_key=key
    )
    clinic_data.write(out, spec, rows, report)
    typer.echo(f"wrote {report['rows']} rows ({report['complete']} complete) to {out}")


@app.command("outcomes")
@one_line_errors
def outcomes_command(
    file: Path = typer.Argument(..., help="CSV with a header: prediction,outcome (the card uuid, 0 or 1)."),
) -> None:
    """Record what happened after served predictions, for the rolling calibration and AUROC on
    each model's page. All or nothing: one unknown prediction or bad value records none."""
    pairs: list[tuple[str, int]] = []
    with file.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"prediction", "outcome"} <= set(reader.fieldnames):
            raise fail(f"{file} needs the columns prediction,outcome", 2)
        for n, row in enumerate(reader, start=2):
            value = (row["outcome"] or "").strip()
            if value not in ("0", "1"):
                raise fail(f"{file}:{n}: outcome must be 0 or 1", 2)
            pairs.append(((row["prediction"] or "").strip(), int(value)))
    done = monitoring.record_outcomes(record_service().engine, pairs)
    typer.echo(f"recorded {done} outcome(s)")
