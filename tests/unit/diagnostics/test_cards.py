"""Model cards from registry records: every format carries the provenance, the metrics with their
intervals, the threshold rule, the intended and out-of-scope use and the decision; the Markdown is
well formed; TRIPOD+AI has the published items and says "reported" only where the record answers;
the CHAI card has the elements of CHAI's v0.2 schema (transcribed below from
github.com/coalition-for-health-ai/mc-schema v0.2/schema.xsd) and the 31 HTI-1 attributes; and
random records never crash nor print nan/None."""

from __future__ import annotations

import copy
import json
import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medweave.diagnostics.cards import model_card, model_card_markdown
from medweave.diagnostics.chai import chai_card
from medweave.diagnostics.tripod import tripod_ai

FINGERPRINT = "sha256:" + "3c" * 32


def framingham() -> dict[str, Any]:
    """An approved survival model on a teaching extract, as the registry stores it."""
    rows = [
        {
            "attribute": "sex",
            "group": "female",
            "n": 650,
            "events": 140,
            "auroc": 0.74,
            "brier": 0.14,
            "calibration_intercept": -0.1,
            "alert_rate": 0.22,
            "ppv": 0.38,
            "sensitivity": 0.52,
            "specificity": 0.8,
        },
        {
            "attribute": "sex",
            "group": "male",
            "n": 525,
            "events": 180,
            "auroc": 0.70,
            "brier": 0.17,
            "calibration_intercept": 0.08,
            "alert_rate": 0.42,
            "ppv": 0.45,
            "sensitivity": 0.68,
            "specificity": 0.71,
        },
        {
            "attribute": "age_band",
            "group": "60-69",
            "n": 300,
            "events": 110,
            "auroc": None,
            "brier": 0.2,
            "calibration_intercept": None,
            "alert_rate": 0.6,
            "ppv": 0.5,
            "sensitivity": 0.8,
            "specificity": 0.5,
        },
    ]
    return {
        "id": "mdl_3f9c2a1b7d4e6f80",
        "name": "framingham-chd-10y",
        "version": 2,
        "status": "approved",
        "created_at": "2025-03-01T09:30:00+00:00",
        "proposed_by": "dana.scientist",
        "decided_by": "dr.lee",
        "decided_at": "2025-03-04T14:00:00+00:00",
        "decision_reason": "Calibration and subgroup gaps reviewed; approved for a three-month pilot",
        "code_version": "medweave 0.1.0 (git abc1234)",
        "intended_use": "Estimate 10-year coronary heart disease risk in adults 30-74 at primary care.",
        "out_of_scope": "Known coronary disease; patients under 30; triage of acute chest pain.",
        "servable": True,
        "onnx_sha256": "ab" * 32,
        "developer": "Medweave clinic deployment (Example Clinic)",
        "report": {
            "dataset": {
                "name": "framingham",
                "title": "Framingham Heart Study teaching extract: coronary heart disease",
                "task": "survival",
                "source": "Dupont 2009, Statistical Modeling for Biomedical Researchers; SurvSet Framingham",
                "license": "teaching extract (Vanderbilt Biostatistics), not the NHLBI research data",
                "rows": 4699,
                "features": 6,
                "fingerprint": FINGERPRINT,
                "target": "coronary heart disease (chdfate); time in days (followup)",
                "horizon_days": 3652.0,
            },
            "model": {
                "kind": "coxnet",
                "task": "survival",
                "params": {"l1_ratio": 0.5, "alpha_min_ratio": 0.01},
                "features": ["num_sbp", "num_dbp", "num_scl", "num_age", "num_bmi", "fac_sex_2"],
            },
            "protocol": {
                "name": "holdout-25",
                "description": "75/25 holdout stratified on the event",
                "seed": 7,
            },
            "metrics": {
                "c_index": {"value": 0.712, "lower": 0.69, "upper": 0.735},
                "ibs": {"value": 0.118, "lower": 0.11, "upper": 0.126},
                "auroc": {"value": 0.731, "lower": 0.7, "upper": 0.76},
                "brier": {"value": 0.151, "lower": 0.14, "upper": 0.162},
                "calibration_slope": {"value": 0.94, "lower": 0.81, "upper": 1.07},
                "calibration_intercept": {"value": -0.042, "lower": -0.15, "upper": 0.066},
            },
            "threshold": {
                "value": 0.2,
                "rule": "10-year risk at least 20% (ACC/AHA high risk)",
                "alert_rate": 0.31,
                "ppv": 0.42,
                "sensitivity": 0.61,
                "specificity": 0.77,
            },
            "reliability": {"mean_predicted": [0.1, 0.3], "observed": [0.12, 0.28], "count": [600, 575]},
            "roc": {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]},
            "decision_curve": {"thresholds": [0.1, 0.2], "model": [0.05, 0.03], "treat_all": [0.04, 0.0]},
            "subgroups": {
                "rows": rows,
                "disparities": [
                    {
                        "attribute": "sex",
                        "demographic_parity_difference": 0.2,
                        "equalized_odds_difference": 0.16,
                        "auroc_gap": 0.04,
                    },
                    {
                        "attribute": "age_band",
                        "demographic_parity_difference": 0.38,
                        "equalized_odds_difference": 0.3,
                        "auroc_gap": 0.09,
                    },
                ],
            },
            "conformal": {"alpha": 0.1, "quantile": 0.83, "n_calibration": 500, "coverage": 0.905},
            "explanation": {"method": "coefficients", "global": [{"feature": "num_age", "importance": 0.8}]},
            "seconds": 12.5,
        },
    }


def nhanes() -> dict[str, Any]:
    """A proposed classifier on public-domain survey data, not yet decided."""
    return {
        "id": "mdl_0a1b2c3d4e5f6071",
        "name": "nhanes-diabetes",
        "version": 1,
        "status": "proposed",
        "created_at": "2025-04-10T08:00:00+00:00",
        "proposed_by": "sam.datasci",
        "decided_by": None,
        "decided_at": None,
        "decision_reason": None,
        "code_version": "medweave 0.1.0 (git def5678)",
        "intended_use": "Flag adults who may have undiagnosed diabetes for an HbA1c test.",
        "out_of_scope": "Children; pregnancy; diagnosing diabetes.",
        "servable": True,
        "onnx_sha256": "cd" * 32,
        "developer": "Medweave clinic deployment (Example Clinic)",
        "report": {
            "dataset": {
                "name": "nhanes",
                "title": "NHANES 2017-2018 adults (20+): doctor-diagnosed diabetes",
                "task": "classification",
                "source": "CDC/NCHS NHANES 2017-2018; nhanes (Poldrack) load_NHANES_data",
                "license": "US government work, public domain; nhanes package MIT",
                "rows": 5098,
                "features": 246,
                "fingerprint": "sha256:" + "77" * 32,
                "target": "1 = doctor told you have diabetes",
                "horizon_days": None,
            },
            "model": {
                "kind": "lightgbm",
                "task": "classification",
                "params": {"n_estimators": 200, "learning_rate": 0.05},
                "features": [
                    "AgeInYearsAtScreening",
                    "Gender_Male",
                    "RacehispanicOriginWNhAsian_black",
                    "Glycohemoglobin",
                    "BodyMassIndexKgm2",
                ],
            },
            "protocol": {
                "name": "cv-5",
                "description": "5-fold stratified cross-validation",
                "seed": 0,
                "held_out_rows": 5098,
                "final_model": "refitted on all 5098 rows after the evaluation",
                "tuning": "none: estimators.DEFAULTS overridden by params",
                "bootstrap": {"method": "percentile", "resamples": 1000, "level": 0.95, "seed": 0},
            },
            "metrics": {
                "auroc": {"value": 0.87, "lower": 0.85, "upper": 0.89},
                "auprc": {"value": 0.55, "lower": 0.5, "upper": 0.6},
                "brier": {"value": 0.081, "lower": 0.075, "upper": 0.088},
                "calibration_slope": {"value": 1.03, "lower": 0.95, "upper": 1.11},
                "calibration_intercept": {"value": 0.02, "lower": -0.06, "upper": 0.1},
                "accuracy": {"value": 0.9, "lower": 0.89, "upper": 0.91},
            },
            "threshold": {
                "value": 0.15,
                "rule": "alert rate at most 20%",
                "alert_rate": 0.19,
                "ppv": 0.4,
                "sensitivity": 0.7,
                "specificity": 0.85,
            },
            "subgroups": {
                "rows": [
                    {
                        "attribute": "race_ethnicity",
                        "group": "non-hispanic black",
                        "n": 900,
                        "events": 150,
                        "auroc": 0.85,
                        "brier": 0.09,
                        "calibration_intercept": 0.1,
                        "alert_rate": 0.21,
                        "ppv": 0.42,
                        "sensitivity": 0.71,
                        "specificity": 0.83,
                    }
                ],
                "disparities": [
                    {
                        "attribute": "race_ethnicity",
                        "demographic_parity_difference": 0.05,
                        "equalized_odds_difference": 0.07,
                        "auroc_gap": 0.03,
                    }
                ],
            },
            "seconds": 3.0,
        },
    }


RECORDS = {"framingham": framingham, "nhanes": nhanes}
FORMATS = ("markdown", "model_card", "tripod_ai", "chai")


def render(record: dict[str, Any], fmt: str) -> str:
    """A format as one string (JSON documents serialised without NaN)."""
    if fmt == "markdown":
        return model_card_markdown(record)
    if fmt == "tripod_ai":
        return "\n".join(f"{row['item']} {row['status']} {row['text']}" for row in tripod_ai(record))
    document = model_card(record) if fmt == "model_card" else chai_card(record)
    return json.dumps(document, allow_nan=False)


def _value_json(card: dict[str, Any]) -> list[dict[str, Any]]:
    metrics = card["AppliedModelCard"]["KeyMetrics"]
    return [
        {"Label": r["Label"]} | json.loads(r["ValueJson"])
        for part in metrics.values()
        for r in part["Results"]["MetricResult"]
    ]


# ---- every format carries the facts -------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", RECORDS)
def test_every_format_carries_provenance_use_threshold_and_decision(name: str, fmt: str) -> None:
    record = RECORDS[name]()
    text = render(record, fmt)
    report = record["report"]
    for fact in (
        record["id"],
        report["dataset"]["fingerprint"],
        record["code_version"],
        record["status"],
        report["threshold"]["rule"],
        record["intended_use"],
        record["out_of_scope"],
    ):
        assert fact in text, (fmt, fact)
    if record["decided_by"]:
        assert record["decided_by"] in text and record["decision_reason"] in text
    else:
        assert "not yet decided" in text


@pytest.mark.parametrize("fmt", ("markdown", "tripod_ai"))
@pytest.mark.parametrize("name", RECORDS)
def test_text_formats_give_each_metric_with_its_interval(name: str, fmt: str) -> None:
    record = RECORDS[name]()
    text = render(record, fmt)
    for metric in record["report"]["metrics"].values():
        for key in ("value", "lower", "upper"):
            assert f"{metric[key]:.3f}" in text, (fmt, metric)


@pytest.mark.parametrize("name", RECORDS)
def test_json_formats_give_each_metric_with_its_interval(name: str) -> None:
    record = RECORDS[name]()
    measures = {m["key"]: m for m in model_card(record)["metrics"]["performance_measures"]}
    assert set(measures) == set(record["report"]["metrics"])
    chai = {v["Label"]: v for v in _value_json(chai_card(record))}
    for key, metric in record["report"]["metrics"].items():
        got = measures[key]
        assert (got["value"], got["lower"], got["upper"], got["level"]) == (*metric.values(), 0.95)
        entry = chai[got["metric"]]
        assert entry["kind"] == "estimate_ci" and entry["level"] == 95
        assert (entry["estimate"], entry["lower"], entry["upper"]) == tuple(metric.values())


def test_the_interval_level_is_the_training_bootstrap_level() -> None:
    record = nhanes()
    record["report"]["protocol"]["bootstrap"]["level"] = 0.9
    assert "AUROC 0.870 (90% CI 0.850 to 0.890)" in render(record, "tripod_ai")
    assert {v["Label"]: v for v in _value_json(chai_card(record))}["AUROC"]["level"] == 90
    record["report"]["metrics"]["auroc"]["level"] = 0.99  # a metric's own level wins
    assert "AUROC 0.870 (99% CI 0.850 to 0.890)" in render(record, "tripod_ai")


def test_tripod_ai_reads_the_training_protocol_details() -> None:
    rows = {row["item"]: row for row in tripod_ai(nhanes())}
    assert "tuning: none: estimators.DEFAULTS overridden by params" in rows["12c"]["text"]
    assert "refitted on all 5098 rows" in rows["12a"]["text"]
    assert rows["21"]["status"] == "not reported"
    assert "5098 rows were held out for evaluation" in rows["21"]["text"]


def test_the_registrys_own_record_shape_is_read_too() -> None:
    """`ModelRecord.as_json` keeps the fingerprint at the top level as well."""
    record = framingham()
    del record["report"]["dataset"]["fingerprint"]
    record["fingerprint"] = "sha256:" + "e1" * 32
    for fmt in FORMATS:
        assert record["fingerprint"] in render(record, fmt)


def test_uncomputable_metrics_read_not_computable_never_nan() -> None:
    record = nhanes()
    metrics = record["report"]["metrics"]
    metrics["auprc"] = {"value": None, "lower": None, "upper": None}
    metrics["accuracy"] = {"value": math.nan, "lower": math.nan, "upper": math.inf}
    metrics["brier"]["lower"] = None  # an estimate without its interval
    record["report"]["threshold"]["ppv"] = math.nan
    markdown = model_card_markdown(record)
    assert re.search(r"\| AUPRC \| not computable \| not computable \| not computable \|", markdown)
    assert re.search(r"\| Accuracy \| not computable \|", markdown)
    assert "PPV not computable" in markdown
    assert "Not computable on the evaluation data: AUPRC, Accuracy." in markdown
    chai = {v["Label"]: v for v in _value_json(chai_card(record))}
    assert "AUPRC" not in chai and "Accuracy" not in chai
    assert chai["Brier score"] == {"Label": "Brier score", "kind": "single", "value": 0.081}
    for fmt in FORMATS:
        assert not re.search(r"\b(nan|NaN|None|inf|Infinity)\b", render(record, fmt)), fmt


# ---- data limitations and local validation ------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_says_the_data_are_not_the_clinics_and_need_local_validation(fmt: str) -> None:
    teaching, survey = render(framingham(), fmt), render(nhanes(), fmt)
    for text in (teaching, survey):
        assert "not the deploying clinic's patients" in text
        assert "before any clinical use" in text and "principles 3, 8, 9 and 10" in text
    assert "teaching data, not the full research data" in teaching
    assert "teaching data, not the full research data" not in survey


def test_model_card_has_mitchells_nine_sections_in_order() -> None:
    sections = [
        "Model details",
        "Intended use",
        "Factors",
        "Metrics",
        "Evaluation data",
        "Training data",
        "Quantitative analyses",
        "Ethical considerations",
        "Caveats and recommendations",
    ]
    assert [k.replace("_", " ").capitalize() for k in model_card(framingham())] == sections
    headings = [line[3:] for line in model_card_markdown(framingham()).splitlines() if line.startswith("## ")]
    assert headings == sections


# ---- Markdown is well formed --------------------------------------------------------------------


def _cells(line: str) -> list[str]:
    """A pipe-table row's cells, honouring backslash escapes."""
    cells, current, escaped = [], "", False
    for ch in line.strip()[1:]:
        if escaped:
            current, escaped = current + ch, False
        elif ch == "\\":
            current, escaped = current + ch, True
        elif ch == "|":
            cells.append(current.strip())
            current = ""
        else:
            current += ch
    assert not current.strip(), f"row does not end with a pipe: {line!r}"
    return cells


def assert_valid_markdown(text: str) -> None:
    lines = text.splitlines()
    assert lines[0].startswith("# Model card: ")
    assert sum(line.startswith("# ") for line in lines) == 1
    i = 0
    while i < len(lines):
        if not lines[i].startswith("|"):
            i += 1
            continue
        block = []
        while i < len(lines) and lines[i].startswith("|"):
            block.append(lines[i])
            i += 1
        assert len(block) >= 2 and re.fullmatch(r"\|(---\|)+", block[1]), block[:2]
        width = len(_cells(block[0]))
        assert width == block[1].count("---")
        for row in block[2:]:
            assert len(_cells(row)) == width, row
        assert i == len(lines) or lines[i] == "", "a table must end with a blank line"


@pytest.mark.parametrize("name", RECORDS)
def test_markdown_headings_and_tables_are_well_formed(name: str) -> None:
    assert_valid_markdown(model_card_markdown(RECORDS[name]()))


def test_markdown_escapes_pipes_and_newlines_in_recorded_text() -> None:
    record = framingham()
    record["intended_use"] = "Risk | triage\nsecond line"
    record["report"]["threshold"]["rule"] = "a|b \\| c"
    record["report"]["subgroups"]["rows"][0]["group"] = "x | y"
    markdown = model_card_markdown(record)
    assert_valid_markdown(markdown)
    assert "Risk \\| triage second line" in markdown
    assert "a\\|b \\\\\\| c" in markdown


# ---- TRIPOD+AI ----------------------------------------------------------------------------------

#: The items of the published checklist (Collins et al., BMJ 2024;385:e078378, table 1), in order.
TRIPOD_ITEMS = (
    "1 2 3a 3b 3c 4 5a 5b 6a 6b 6c 7 8a 8b 8c 9a 9b 9c 10 11 12a 12b 12c 12d 12e 12f 12g 13 14 15 16 17 "
    "18a 18b 18c 18d 18e 18f 19 20a 20b 20c 21 22 23a 23b 24 25 26 27a 27b 27c"
).split()


def test_tripod_ai_has_the_published_items_once_each_in_order() -> None:
    rows = tripod_ai(framingham())
    assert [row["item"] for row in rows] == TRIPOD_ITEMS
    assert len(rows) == 52 and len({row["item"] for row in rows}) == 52
    assert {int(re.match(r"\d+", row["item"]).group()) for row in rows} == set(range(1, 28))  # type: ignore[union-attr]
    for row in rows:
        assert set(row) == {"item", "section", "topic", "requirement", "status", "text"}
        assert row["status"] in ("reported", "not applicable", "not reported")
        assert row["text"] and row["requirement"]
    topics = {row["item"]: row["topic"] for row in rows}
    assert (topics["14"], topics["13"], topics["19"]) == (
        "Fairness",
        "Class imbalance",
        "Patient and public involvement",
    )


def test_tripod_ai_never_claims_what_the_run_cannot_know() -> None:
    rows = {row["item"]: row for row in tripod_ai(framingham())}
    for item in ("2", "3a", "3c", "5b", "6b", "10", "17", "18a", "18b", "18d", "19", "25", "27b"):
        assert rows[item]["status"] == "not reported", item
        assert "to be completed by" in rows[item]["text"], item
    assert "ethics committee" in rows["17"]["text"]
    assert "The dataset has 4699 rows." in rows["10"]["text"]


def _drop(path: str) -> Any:
    def mutate(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = record
        for key in parents:
            target = target[key]
        del target[last]

    return mutate


def _set(path: str, value: Any) -> Any:
    def mutate(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = record
        for key in parents:
            target = target[key]
        target[last] = value

    return mutate


def _no_intervals(record: dict[str, Any]) -> None:
    for metric in record["report"]["metrics"].values():
        metric["lower"] = metric["upper"] = None


@pytest.mark.parametrize(
    ("mutate", "items"),
    [
        (_drop("report.subgroups"), ("14",)),
        (_no_intervals, ("23a",)),
        (_drop("report.protocol"), ("4", "12a", "12c", "16", "18c")),
        (_set("servable", False), ("22",)),
        (_drop("intended_use"), ("3b",)),
        (_drop("report.model.kind"), ("1", "7", "11", "12b", "12c", "12g", "15", "27a")),
        (_drop("report.dataset.source"), ("5a", "18e")),
        (_drop("report.dataset.target"), ("1", "8a")),
        (_drop("report.metrics"), ("12e", "23a")),
        (_drop("code_version"), ("18f",)),
        (_set("report.model.features", []), ("9a",)),
    ],
)
@pytest.mark.parametrize("name", RECORDS)
def test_tripod_ai_items_stop_being_reported_when_the_record_lacks_their_data(
    name: str, mutate: Any, items: tuple[str, ...]
) -> None:
    record = RECORDS[name]()
    before = {row["item"]: row["status"] for row in tripod_ai(record)}
    mutate(record)
    after = {row["item"]: row for row in tripod_ai(record)}
    for item in items:
        assert before[item] == "reported", item
        assert after[item]["status"] == "not reported", item
        assert after[item]["text"].startswith("Not reported by the run; to be completed by"), item


def test_tripod_ai_class_imbalance_follows_the_task_and_the_parameters() -> None:
    assert {r["item"]: r["status"] for r in tripod_ai(framingham())}["13"] == "not applicable"
    record = nhanes()
    assert {r["item"]: r["status"] for r in tripod_ai(record)}["13"] == "not applicable"
    record["report"]["model"]["params"]["class_weight"] = "balanced"
    row = {r["item"]: r for r in tripod_ai(record)}["13"]
    assert row["status"] == "reported" and "class_weight=balanced" in row["text"]


# ---- CHAI Applied Model Card --------------------------------------------------------------------

#: The element tree of AppliedModelCard in mc-schema v0.2/schema.xsd: name -> (required, children);
#: children None for a text element. ds:Signature (optional) is left out: we do not sign.
_TEXT = None
_KEY_METRIC = {
    "MetricGoal": (True, _TEXT),
    "Results": (True, "MetricResult"),
    "Interpretation": (True, _TEXT),
    "TestType": (True, _TEXT),
    "TestingDataDescription": (True, _TEXT),
    "ValidationProcessAndJustification": (True, _TEXT),
}
CHAI_V02: dict[str, Any] = {
    "BasicInfo": (
        True,
        {"ModelName": (True, _TEXT), "ModelDeveloper": (True, _TEXT), "DeveloperContact": (True, _TEXT)},
    ),
    "ReleaseInfo": (
        True,
        {
            "ReleaseStage": (True, _TEXT),
            "ReleaseDate": (True, _TEXT),
            "ReleaseVersion": (True, _TEXT),
            "GlobalAvailability": (True, _TEXT),
            "EHRCompatibility": (False, "EHR"),
            "RegulatoryApproval": (False, _TEXT),
        },
    ),
    "ModelSummary": (True, {"Summary": (True, _TEXT), "Keywords": (True, "Keyword")}),
    "UsesAndDirections": (
        True,
        {
            "IntendedUseAndWorkflow": (True, _TEXT),
            "PrimaryIntendedUsers": (True, _TEXT),
            "HowToUse": (True, _TEXT),
            "TargetedPatientPopulation": (True, _TEXT),
            "CautionedOutOfScopeSettings": (True, _TEXT),
        },
    ),
    "Warnings": (
        True,
        {
            "KnownRisksAndLimitations": (True, _TEXT),
            "KnownBiasesOrEthicalConsiderations": (True, _TEXT),
            "ClinicalRiskLevel": (True, _TEXT),
        },
    ),
    "TrustIngredients": (
        True,
        {
            "AISystemFacts": (
                True,
                {
                    "OutcomesAndOutputs": (True, _TEXT),
                    "ModelType": (True, _TEXT),
                    "FoundationModels": (False, _TEXT),
                    "InputDataSource": (True, _TEXT),
                    "OutputAndInputDataTypes": (True, _TEXT),
                    "DevelopmentDataCharacterization": (True, _TEXT),
                    "BiasMitigationApproaches": (True, _TEXT),
                    "OngoingMaintenance": (True, _TEXT),
                    "Security": (False, _TEXT),
                    "Transparency": (False, _TEXT),
                },
            ),
            "TransparencyInformation": (
                True,
                {
                    "FundingSource": (True, _TEXT),
                    "ThirdPartyInformation": (False, _TEXT),
                    "StakeholdersConsulted": (True, _TEXT),
                },
            ),
        },
    ),
    "KeyMetrics": (
        True,
        {
            "UsefulnessUsabilityEfficacy": (True, _KEY_METRIC),
            "FairnessEquity": (True, _KEY_METRIC),
            "SafetyReliability": (True, _KEY_METRIC),
        },
    ),
    "Resources": (
        True,
        {
            "EvaluationReferences": (False, _TEXT),
            "ClinicalTrial": (False, _TEXT),
            "PeerReviewedPublications": (True, _TEXT),
            "ReimbursementStatus": (False, _TEXT),
            "PatientConsentOrDisclosure": (True, _TEXT),
        },
    ),
    "Bibliography": (True, _TEXT),
}


def assert_matches_schema(
    node: dict[str, Any], schema: dict[str, Any], where: str = "AppliedModelCard"
) -> None:
    """Every required element present, no element the schema lacks, the schema's order kept."""
    assert isinstance(node, dict), where
    unknown = set(node) - set(schema)
    assert not unknown, f"{where}: not in the schema: {unknown}"
    order = [name for name in schema if name in node]
    assert list(node) == order, f"{where}: order {list(node)} is not the schema's {order}"
    for name, (required, children) in schema.items():
        path = f"{where}.{name}"
        if name not in node:
            assert not required, f"{path} is required"
            continue
        value = node[name]
        if children is _TEXT:
            assert isinstance(value, str) and value.strip(), path
        elif isinstance(children, str):  # a sequence of one repeated element
            assert list(value) == [children] and isinstance(value[children], list), path
            if name == "Results":
                assert value[children], f"{path}: MetricResult is minOccurs=1"
                for result in value[children]:
                    assert set(result) == {"Label", "ValueJson"} and result["Label"], path
                    parsed = json.loads(result["ValueJson"])
                    assert parsed["kind"] in ("single", "estimate_ci"), path
                    if result["Label"] == "No result could be computed":  # the schema needs one result
                        assert parsed == {"kind": "single"}, path
                    else:
                        assert all(isinstance(v, (int, float)) for k, v in parsed.items() if k != "kind")
            else:
                assert all(isinstance(v, str) and v for v in value[children]), path
        else:
            assert_matches_schema(value, children, path)


@pytest.mark.parametrize("name", RECORDS)
def test_chai_card_has_the_v02_schemas_elements(name: str) -> None:
    card = chai_card(RECORDS[name]())
    json.dumps(card, allow_nan=False)
    assert card["schema"]["namespace"] == "https://mc.chai.org/v0.2/schema.xsd"
    assert_matches_schema(card["AppliedModelCard"], CHAI_V02)


def test_chai_card_checker_catches_a_missing_or_misplaced_element() -> None:
    card = chai_card(framingham())["AppliedModelCard"]
    broken = copy.deepcopy(card)
    del broken["Warnings"]["ClinicalRiskLevel"]
    with pytest.raises(AssertionError, match="ClinicalRiskLevel is required"):
        assert_matches_schema(broken, CHAI_V02)
    swapped = copy.deepcopy(card)
    swapped["BasicInfo"] = dict(reversed(list(card["BasicInfo"].items())))
    with pytest.raises(AssertionError, match="order"):
        assert_matches_schema(swapped, CHAI_V02)


def test_chai_card_states_what_the_run_cannot_know_as_not_reported() -> None:
    card = chai_card(framingham())["AppliedModelCard"]
    for text in (
        card["TrustIngredients"]["TransparencyInformation"]["FundingSource"],
        card["Warnings"]["ClinicalRiskLevel"],
        card["Resources"]["PatientConsentOrDisclosure"],
        card["BasicInfo"]["DeveloperContact"],
    ):
        assert text.startswith("Not reported by the run; to be completed by")
    assert card["ReleaseInfo"]["ReleaseStage"].startswith("Approved for local use (approved by dr.lee")
    assert chai_card(nhanes())["AppliedModelCard"]["ReleaseInfo"]["ReleaseStage"].startswith(
        "Proposed, not approved"
    )


def test_chai_fairness_results_are_the_recorded_disparities() -> None:
    fair = chai_card(framingham())["AppliedModelCard"]["KeyMetrics"]["FairnessEquity"]["Results"][
        "MetricResult"
    ]
    values = {r["Label"]: json.loads(r["ValueJson"])["value"] for r in fair}
    assert values["age_band: auroc gap"] == 0.09 and values["sex: demographic parity difference"] == 0.2
    record = framingham()
    del record["report"]["subgroups"]
    bare = chai_card(record)["AppliedModelCard"]["KeyMetrics"]["FairnessEquity"]
    assert bare["Results"]["MetricResult"] == [
        {"Label": "No result could be computed", "ValueJson": '{"kind":"single"}'}
    ]
    assert "No subgroup (fairness) analysis is recorded" in bare["Interpretation"]


# ---- HTI-1 source attributes --------------------------------------------------------------------


def test_hti1_has_the_31_predictive_dsi_source_attributes() -> None:
    attributes = chai_card(framingham())["hti1_source_attributes"]
    assert len(attributes) == 31
    assert len({a["key"] for a in attributes}) == len({a["paragraph"] for a in attributes}) == 31
    per_category: dict[str, int] = {}
    for a in attributes:
        per_category[a["category"]] = per_category.get(a["category"], 0) + 1
        assert a["status"] in ("reported", "not reported") and a["value"]
    assert list(per_category.values()) == [4, 4, 2, 4, 2, 4, 5, 4, 2]
    assert attributes[0]["paragraph"] == "(b)(11)(iv)(B)(1)(i)"
    assert attributes[-1]["paragraph"] == "(b)(11)(iv)(B)(9)(ii)"


def test_hti1_reports_only_what_the_record_holds() -> None:
    by_key = {a["key"]: a for a in chai_card(nhanes())["hti1_source_attributes"]}
    for key in (
        "developer",
        "intended_use",
        "out_of_scope",
        "internal_validity",
        "internal_fairness",
        "fairness_approach",
        "demographic_inputs",
        "training_relevance",
    ):
        assert by_key[key]["status"] == "reported", key
    for key in (
        "funding",
        "intended_users",
        "decision_role",
        "external_source",
        "external_validity",
        "local_validity",
        "validity_monitoring",
        "update_process",
    ):
        assert by_key[key]["status"] == "not reported", key
    assert by_key["intended_use"]["value"] == nhanes()["intended_use"]
    assert "AUROC 0.870 (95% CI 0.850 to 0.890)" in by_key["internal_validity"]["value"]
    inputs = by_key["demographic_inputs"]["value"]
    assert (
        "AgeInYearsAtScreening" in inputs
        and "Gender_Male" in inputs
        and "RacehispanicOriginWNhAsian_black" in inputs
    )
    assert "Glycohemoglobin" not in inputs
    record = nhanes()
    del record["report"]["subgroups"]
    by_key = {a["key"]: a for a in chai_card(record)["hti1_source_attributes"]}
    assert by_key["fairness_approach"]["status"] == by_key["internal_fairness"]["status"] == "not reported"


# ---- random records -----------------------------------------------------------------------------

_WORDS = st.text(st.sampled_from("abcxyz019 |-_{}#*\\\n:%"), max_size=12).filter(
    lambda s: not re.search(r"nan|none|inf", s, re.IGNORECASE)
)
_NUMBER = st.one_of(st.none(), st.floats(-1e6, 1e6), st.integers(-10, 10_000), st.just(math.nan))
_MAYBE_WORDS = st.one_of(st.none(), _WORDS)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict that may lack any of its keys."""
    return strategy.flatmap(
        lambda d: st.sets(st.sampled_from(sorted(d)) if d else st.nothing()).map(
            lambda dropped: {k: v for k, v in d.items() if k not in dropped}
        )
    )


_METRIC = st.fixed_dictionaries({"value": _NUMBER, "lower": _NUMBER, "upper": _NUMBER})
_RECORDS = st.fixed_dictionaries(
    {
        "id": _WORDS,
        "name": _WORDS,
        "version": _NUMBER,
        "status": st.sampled_from(["proposed", "approved", "retired"]),
        "created_at": _WORDS,
        "proposed_by": _WORDS,
        "decided_by": _MAYBE_WORDS,
        "decided_at": _MAYBE_WORDS,
        "decision_reason": _MAYBE_WORDS,
        "code_version": _MAYBE_WORDS,
        "intended_use": _WORDS,
        "out_of_scope": _WORDS,
        "servable": st.booleans(),
        "developer": _MAYBE_WORDS,
        "report": _maybe(
            st.fixed_dictionaries(
                {
                    "dataset": _maybe(
                        st.fixed_dictionaries(
                            {
                                "name": _WORDS,
                                "title": _MAYBE_WORDS,
                                "task": st.sampled_from(["classification", "survival"]),
                                "source": _MAYBE_WORDS,
                                "license": _MAYBE_WORDS,
                                "rows": _NUMBER,
                                "features": _NUMBER,
                                "fingerprint": _WORDS,
                                "target": _MAYBE_WORDS,
                                "horizon_days": _NUMBER,
                            }
                        )
                    ),
                    "model": _maybe(
                        st.fixed_dictionaries(
                            {
                                "kind": st.sampled_from(["logistic", "lightgbm", "coxnet", "rsf", "other"]),
                                "params": st.dictionaries(_WORDS, _NUMBER, max_size=3),
                                "features": st.lists(_WORDS, max_size=40),
                            }
                        )
                    ),
                    "protocol": _maybe(
                        st.fixed_dictionaries({"name": _WORDS, "description": _MAYBE_WORDS, "seed": _NUMBER})
                    ),
                    "metrics": st.dictionaries(
                        st.sampled_from(["auroc", "auprc", "brier", "c_index", "ibs", "other_x"]),
                        st.one_of(_METRIC, _NUMBER),
                        max_size=6,
                    ),
                    "threshold": _maybe(
                        st.fixed_dictionaries(
                            {
                                "value": _NUMBER,
                                "rule": _MAYBE_WORDS,
                                "alert_rate": _NUMBER,
                                "ppv": _NUMBER,
                                "sensitivity": _NUMBER,
                                "specificity": _NUMBER,
                            }
                        )
                    ),
                    "subgroups": _maybe(
                        st.fixed_dictionaries(
                            {
                                "rows": st.lists(
                                    st.fixed_dictionaries(
                                        {
                                            "attribute": _WORDS,
                                            "group": _WORDS,
                                            "n": _NUMBER,
                                            "auroc": _NUMBER,
                                            "ppv": _NUMBER,
                                        }
                                    ),
                                    max_size=3,
                                ),
                                "disparities": st.lists(
                                    st.fixed_dictionaries(
                                        {
                                            "attribute": _WORDS,
                                            "auroc_gap": _NUMBER,
                                            "demographic_parity_difference": _NUMBER,
                                        }
                                    ),
                                    max_size=2,
                                ),
                            }
                        )
                    ),
                    "conformal": st.dictionaries(st.sampled_from(["alpha", "coverage", "quantile"]), _NUMBER),
                    "explanation": _maybe(
                        st.fixed_dictionaries(
                            {
                                "method": _MAYBE_WORDS,
                                "global": st.lists(
                                    st.fixed_dictionaries({"feature": _WORDS, "importance": _NUMBER}),
                                    max_size=3,
                                ),
                            }
                        )
                    ),
                }
            )
        ),
    }
)
_UNSAID = re.compile(r"\b(nan|NaN|None|inf|Infinity|null)\b")


@settings(max_examples=150, deadline=None)
@given(_RECORDS)
def test_random_records_never_crash_nor_print_nan_or_none(record: dict[str, Any]) -> None:
    markdown = model_card_markdown(record)
    assert_valid_markdown(markdown)
    rows = tripod_ai(record)
    assert [row["item"] for row in rows] == TRIPOD_ITEMS
    card, chai = model_card(record), chai_card(record)
    json.dumps(card, allow_nan=False)
    assert_matches_schema(chai["AppliedModelCard"], CHAI_V02)
    assert len(chai["hti1_source_attributes"]) == 31
    texts = [markdown, *(row["text"] for row in rows), *_strings(chai)]
    for text in texts:
        assert not _UNSAID.search(text), text


def _strings(node: Any) -> list[str]:
    """Every string in a JSON document, the JSON inside ``ValueJson`` parsed and checked too."""
    if isinstance(node, dict):
        if "ValueJson" in node:
            json.loads(node["ValueJson"], parse_constant=lambda c: pytest.fail(f"ValueJson holds {c}"))
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []
