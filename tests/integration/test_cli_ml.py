"""``medweave ml datasets``: the CLI contract of issue 7's first slice."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from medweave.cli.main import app
from medweave.diagnostics.datasets import DATASETS, DatasetUnavailable

runner = CliRunner()


def test_datasets_prints_a_table() -> None:
    r = runner.invoke(app, ["ml", "datasets"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["name", "task", "rows", "features", "source"]
    assert len(lines) == 1 + len(DATASETS)
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == list(DATASETS)
    assert rows["wdbc"][1:4] == ["classification", "569", "30"]
    assert rows["support2"][1:3] == ["survival", "9105"]
    assert "load_breast_cancer" in lines[1]
    assert r.stderr == ""


def test_datasets_json_is_one_array() -> None:
    r = runner.invoke(app, ["ml", "datasets", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert isinstance(out, list) and [row["name"] for row in out] == list(DATASETS)
    by_name = {row["name"]: row for row in out}
    assert by_name["gbsg2"]["rows"] == 686 and by_name["gbsg2"]["task"] == "survival"
    assert by_name["nhanes"]["groups"] == ["sex", "age_band", "race_ethnicity"]
    for row in out:
        assert {"name", "task", "rows", "features", "source", "license", "fingerprint"} <= set(row)
        assert row["error"] is None and len(row["fingerprint"]) == 64


def test_a_missing_package_is_listed_and_exits_6(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> None:
        raise DatasetUnavailable("dataset 'support2' needs the SurvSet package (No module named 'SurvSet')")

    monkeypatch.setitem(DATASETS, "support2", dataclasses.replace(DATASETS["support2"], loader=missing))
    r = runner.invoke(app, ["ml", "datasets"])
    assert r.exit_code == 6, r.output
    support = next(line for line in r.stdout.splitlines() if line.startswith("support2"))
    assert support.split()[1:4] == ["survival", "-", "-"]
    assert r.stderr.strip().splitlines() == [
        "error: dataset 'support2' needs the SurvSet package (No module named 'SurvSet')"
    ]
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["ml", "datasets", "--json"])
    assert r.exit_code == 6
    row = next(row for row in json.loads(r.stdout) if row["name"] == "support2")
    assert row["rows"] is None and "SurvSet" in row["error"]


# -- train, evaluate, card, models, retire --------------------------------------------------------


def _train(*args: str) -> Any:
    return runner.invoke(app, ["ml", "train", *args])


def test_train_registers_a_proposed_model_and_prints_its_metrics(data_dir: Path) -> None:
    r = _train("--dataset", "wdbc", "--model", "logistic", "--protocol", "holdout", "--seed", "3")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["id"].startswith("mdl_") and out["status"] == "proposed" and out["version"] == 1
    assert out["protocol"] == "holdout" and out["servable"] is True
    assert out["fingerprint"] == DATASETS["wdbc"].loader().fingerprint
    auroc = out["metrics"]["auroc"]
    assert 0.9 < auroc["value"] < 1 and auroc["lower"] <= auroc["value"] <= auroc["upper"]
    assert out["code_version"].startswith("medweave ")
    assert 0.8 <= out["conformal"]["coverage"] <= 1

    again = json.loads(
        _train("--dataset", "wdbc", "--model", "logistic", "--protocol", "holdout", "--seed", "3").stdout
    )
    assert again["version"] == 2 and again["metrics"] == out["metrics"]  # same seed, same figures

    listed = runner.invoke(app, ["ml", "models"])
    assert listed.exit_code == 0 and [line.split()[0] for line in listed.stdout.splitlines()] == [
        again["id"],
        out["id"],
    ]

    shown = runner.invoke(app, ["ml", "evaluate", out["id"]])
    assert shown.exit_code == 0, shown.output
    assert "(unchanged)" in shown.stdout and "auroc" in shown.stdout and "threshold" in shown.stdout
    assert "subgroup" not in shown.stdout  # WDBC records no sex, age or race
    full = json.loads(runner.invoke(app, ["ml", "evaluate", out["id"], "--json"]).stdout)
    assert full["data_unchanged"] is True and full["report"]["model"]["kind"] == "logistic"
    assert len(full["report"]["explanation"]["global"]) == 30

    card = runner.invoke(app, ["ml", "card", out["id"]])
    assert card.exit_code == 0 and out["id"] in card.stdout and out["fingerprint"] in card.stdout
    assert (
        "# Model card" in card.stdout and "not for clinical use" in card.stdout.lower()
    ) or "local" in card.stdout
    chai = json.loads(runner.invoke(app, ["ml", "card", out["id"], "--format", "chai"]).stdout)
    assert chai["AppliedModelCard"]["BasicInfo"]["ModelName"] == "wdbc-logistic"
    as_json = json.loads(runner.invoke(app, ["ml", "card", out["id"], "--format", "json"]).stdout)
    assert len(as_json["tripod_ai"]) == 52
    bad = runner.invoke(app, ["ml", "card", out["id"], "--format", "xml"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ")

    retired = runner.invoke(app, ["ml", "retire", out["id"], "--reason", "superseded by v2"])
    assert retired.exit_code == 0 and "retired" in retired.stdout
    twice = runner.invoke(app, ["ml", "retire", out["id"], "--reason", "again"])
    assert twice.exit_code == 5 and "retired" in twice.stderr and "Traceback" not in twice.output


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--dataset", "nope", "--model", "logistic"], 4, "unknown dataset"),
        (["--dataset", "wdbc", "--model", "rsf"], 2, "survival"),
        (["--dataset", "diabetes", "--model", "logistic"], 2, "regression"),
        (["--dataset", "wdbc", "--model", "forest"], 2, "unknown model"),
        (["--dataset", "gbsg2", "--model", "coxnet", "--protocol", "bootstrap"], 2, "protocol"),
    ],
)
def test_train_refuses_bad_arguments_in_one_line(
    data_dir: Path, args: list[str], code: int, words: str
) -> None:
    r = _train(*args)
    assert r.exit_code == code, r.output
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    assert words in r.stderr and "Traceback" not in r.output
    assert runner.invoke(app, ["ml", "models"]).stdout == ""  # nothing half-registered


def test_an_unknown_model_is_a_one_line_error(data_dir: Path) -> None:
    for command in (["evaluate"], ["card"], ["retire", "--reason", "x"]):
        r = runner.invoke(app, ["ml", *command[:1], "mdl_0000000000000000", *command[1:]])
        assert r.exit_code == 4, r.output
        assert r.stderr.strip() == "error: no model mdl_0000000000000000"


def test_outcomes_are_recorded_all_or_nothing(data_dir: Path, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import insert, select

    from medweave.cli.context import record_service
    from medweave.diagnostics.tables import ml_predictions

    engine = record_service().engine
    with engine.begin() as conn:
        conn.execute(insert(ml_predictions), [
            {"id": f"c{i}", "model_id": "mdl_x", "subject": "s", "at": datetime.now(UTC), "features": "{}",
             "risk": 0.1, "channel": "cds-hooks"} for i in range(3)
        ])  # fmt: skip
    good = tmp_path / "good.csv"
    good.write_text("prediction,outcome\nc0,1\nc1,0\n")
    r = runner.invoke(app, ["ml", "outcomes", str(good)])
    assert r.exit_code == 0 and r.stdout.strip() == "recorded 2 outcome(s)"
    for text, code, words in (
        ("prediction,outcome\nc2,1\nnope,0\n", 4, "no prediction nope"),
        ("prediction,outcome\nc2,yes\n", 2, "outcome must be 0 or 1"),
        ("card,result\nc2,1\n", 2, "columns prediction,outcome"),
    ):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        r = runner.invoke(app, ["ml", "outcomes", str(bad)])
        assert r.exit_code == code and words in r.stderr, r.output
    with engine.connect() as conn:
        recorded = dict(conn.execute(select(ml_predictions.c.id, ml_predictions.c.outcome)).all())
    assert recorded == {"c0": 1, "c1": 0, "c2": None}  # the failed files changed nothing
