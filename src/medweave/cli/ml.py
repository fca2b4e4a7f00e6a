"""``medweave ml``: machine learning for diagnosis, offline (issue 7)."""

from __future__ import annotations

import json
from typing import Any

import typer

from medweave.diagnostics.datasets import DATASETS, DatasetUnavailable

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
