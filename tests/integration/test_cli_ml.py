"""``medweave ml datasets``: the CLI contract of issue 7's first slice."""

from __future__ import annotations

import dataclasses
import json

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
