"""A clinic trains on its own records: ``medweave ml extract`` writes a de-identified table from the
store (audited under the extractor's name), and ``medweave ml train --dataset table:FILE`` trains a
model on it that can be served, with the same feature spec, at the point of care."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from conftest import observation
from medweave.audit.tables import audit_log
from medweave.cli.context import record_service
from medweave.cli.main import app
from medweave.diagnostics import clinic_data
from medweave.errors import PermissionDenied
from medweave.security.principal import Principal, Role
from medweave.security.scopes import ScopeSet

runner = CliRunner()
CHD = "http://snomed.info/sct|53741008"  # coronary arteriosclerosis
OPERATOR = Principal.internal("test")
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"


def _status(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": f"{TERMINOLOGY}/{system}", "code": code}]}


def _seed(n: int) -> list[str]:
    """``n`` patients with the Framingham readings; coronary disease more likely with higher
    systolic pressure and age (a synthetic cohort, not clinical data)."""
    records = record_service()
    rng = np.random.default_rng(5)
    ids = []
    for i in range(n):
        age = int(rng.integers(35, 75))
        patient = records.create(principal=OPERATOR, res_type="Patient", data={
            "resourceType": "Patient", "name": [{"family": f"Person{i}", "given": ["Test"]}],
            "gender": "female" if i % 2 else "male", "birthDate": f"{2026 - age}-01-15",
        })  # fmt: skip
        pid = patient.res_id
        ids.append(pid)
        sbp = float(rng.normal(135, 18))
        for code, value, unit in (("8480-6", sbp, "mm[Hg]"), ("8462-4", sbp * 0.62, "mm[Hg]"),
                                  ("2093-3", float(rng.normal(220, 35)), "mg/dL"),
                                  ("39156-5", float(rng.normal(27, 4)), "kg/m2")):  # fmt: skip
            records.create(
                principal=OPERATOR,
                res_type="Observation",
                data=observation(pid, code, code, round(value, 1), unit, "2026-03-01T09:00:00Z"),
            )
        if rng.random() < 1 / (1 + np.exp(-(0.05 * (sbp - 140) + 0.06 * (age - 55) - 1.0))):
            records.create(principal=OPERATOR, res_type="Condition", data={
                "resourceType": "Condition", "subject": {"reference": f"Patient/{pid}"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "53741008"}]},
                "clinicalStatus": _status("condition-clinical", "active"),
                "verificationStatus": _status("condition-ver-status", "confirmed"),
                "onsetDateTime": "2025-06-01T00:00:00Z",
            })  # fmt: skip
    return ids


def test_extract_then_train_on_the_clinic_table(data_dir: Path, tmp_path: Path) -> None:
    ids = _seed(160)
    out = tmp_path / "table.csv"
    r = runner.invoke(
        app, ["ml", "extract", "--out", str(out), "--outcome-code", CHD, "--as-of", "2026-06-01"]
    )
    assert r.exit_code == 0, r.output
    assert "wrote 160 rows (160 complete)" in r.stdout
    text = out.read_text()
    assert not any(pid in text for pid in ids) and "Person" not in text
    # No dates: the year may turn up by chance inside a hex pseudonym (CI saw "2026" in one), so
    # look for it in the value cells only, and for any ISO date anywhere.
    values = [cell for line in text.splitlines()[1:] for cell in line.split(",")[1:]]
    assert not any("2026" in cell for cell in values)
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)
    rows = list(csv.DictReader(text.splitlines()))
    assert list(rows[0]) == [
        "pid",
        "num_sbp",
        "num_dbp",
        "num_scl",
        "num_age",
        "num_bmi",
        "fac_sex=2",
        "outcome",
    ]
    assert len({row["pid"] for row in rows}) == 160 and {row["outcome"] for row in rows} == {"0.0", "1.0"}
    sidecar = json.loads(Path(f"{out}.json").read_text())
    assert sidecar["report"]["outcome_codes"] == [CHD] and sidecar["report"]["missing"]["num_sbp"] == 0

    with record_service().engine.connect() as conn:
        readers = {
            row.user_ref
            for row in conn.execute(select(audit_log.c.user_ref).where(audit_log.c.interaction == "search"))
        }
    assert "internal:ml-extract/cli" in readers  # every read is audited under the extractor

    trained = runner.invoke(app, ["ml", "train", "--dataset", f"table:{out}", "--model", "logistic"])
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert summary["dataset"] == f"table:{out}" and summary["protocol"] == "cv" and summary["servable"]
    assert summary["metrics"]["auroc"]["value"] > 0.6  # the synthetic outcome depends on the readings
    full = json.loads(runner.invoke(app, ["ml", "evaluate", summary["id"], "--json"]).stdout)
    assert full["data_unchanged"] is True
    assert {r["attribute"] for r in full["report"]["subgroups"]["rows"]} == {"sex", "age_band"}
    from medweave.cli.worker import ml_registry

    artifacts = ml_registry(record_service()).artifacts(summary["id"])
    assert artifacts.feature_spec is not None and artifacts.onnx is not None  # servable at the point of care


def test_only_data_scientists_and_operators_extract(data_dir: Path) -> None:
    clinician = Principal(
        kind="user", subject="grey", scopes=ScopeSet.parse("user/*.rs"), role=Role.CLINICIAN
    )
    with pytest.raises(PermissionDenied):
        clinic_data.extract(
            record_service(),
            clinician,
            "framingham",
            outcome_codes=[CHD],
            as_of=datetime.now(UTC),
            pseudonym_key=b"k" * 32,
        )


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--outcome-code", "53741008"], 2, "SYSTEM|CODE"),
        (["--outcome-code", CHD, "--spec", "nope"], 4, "unknown feature spec"),
        (["--outcome-code", CHD, "--as-of", "June"], 2, "not a date"),
    ],
)
def test_extract_refuses_bad_arguments(
    data_dir: Path, tmp_path: Path, args: list[str], code: int, words: str
) -> None:
    r = runner.invoke(app, ["ml", "extract", "--out", str(tmp_path / "t.csv"), *args])
    assert r.exit_code == code, r.output
    assert words in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "t.csv").exists()


def test_training_on_a_missing_table_is_a_one_line_error(data_dir: Path, tmp_path: Path) -> None:
    r = runner.invoke(
        app, ["ml", "train", "--dataset", f"table:{tmp_path / 'none.csv'}", "--model", "logistic"]
    )
    assert r.exit_code == 4 and "no training table" in r.stderr
