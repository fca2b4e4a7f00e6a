"""Issue 7's proof: our pipeline against each published baseline, under the baseline's own protocol.

`baselines` reruns each published result (see its module docstring for the sources); here
`training.train` runs our pipeline on the same rows, splits and seeds, and the published figure
must be equal or better within our 95% bootstrap interval: published <= our upper bound (for the
integrated Brier score, lower is better: published >= our lower bound). Our report also carries
what the publications do not: calibration (slope, intercept, reliability curve, and for survival
the Kaplan-Meier check at the horizon) and the held-out rows with their groups for the subgroup
table. Run with ``-s`` to see the comparison table.

Our pipelines are the served defaults (`estimators.DEFAULTS`, no tuning): a random survival
forest on GBSG2 (both baselines; the same pipeline on both splits), Coxnet on veterans (137 rows,
where a linear model is the natural choice), L2 logistic regression on WDBC.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sksurv")

from medweave.diagnostics import training

#: Published figures, as `baselines` quotes them, by baseline and metric.
PUBLISHED = {
    "gbsg2_random_survival_forest": {"c_index": 0.67453},  # sksurv guide, RSF, 5 decimals
    "gbsg2_coxnet": {"c_index": 0.688, "ibs": 0.189},  # sksurv guide, Coxnet, 3 decimals
    "veterans_survival_svm": {"c_index": 0.720},  # sksurv guide, tuned FastSurvivalSVM
    "wdbc_logistic_regression": {"accuracy": 0.975},  # Street et al. 1993, MSM-T, 10x10-fold CV
}
LOWER_IS_BETTER = {"ibs"}

_rows: list[tuple[str, str, str, float, dict[str, Any]]] = []


@pytest.fixture(scope="module", autouse=True)
def table() -> Iterator[None]:
    yield
    if not _rows:
        return
    print("\n\nbaseline                       ours                        metric    published  ours [95% CI]")
    for baseline, ours, metric, published, m in _rows:
        interval = f"{m['value']:.3f} [{m['lower']:.3f}, {m['upper']:.3f}]"
        print(f"{baseline:<31}{ours:<28}{metric:<10}{published:<11.3f}{interval}")


def _compare(baseline: str, result: training.TrainingResult) -> None:
    report = result.report
    ours = f"{report['model']['kind']} ({report['protocol']['name']})"
    for metric, published in PUBLISHED[baseline].items():
        m = report["metrics"][metric]
        _rows.append((baseline, ours, metric, published, m))
        if metric in LOWER_IS_BETTER:
            assert published >= m["lower"], (baseline, metric, published, m)
        else:
            assert published <= m["upper"], (baseline, metric, published, m)
    _check_calibration_and_subgroups(result)


def _check_calibration_and_subgroups(result: training.TrainingResult) -> None:
    """What the publications do not report: calibration, and held-out rows ready for subgroups."""
    report = result.report
    for name in ("calibration_slope", "calibration_intercept"):
        assert isinstance(report["metrics"][name]["value"], float), name
    reliability = report["reliability"]
    assert len(reliability["mean_predicted"]) == len(reliability["observed"]) >= 5
    assert sum(reliability["count"]) == len(result.calibration_risk)
    assert all(0.0 <= v <= 1.0 for v in reliability["observed"] + reliability["mean_predicted"])
    assert len(report["decision_curve"]["model"]) == 99 and len(report["roc"]["fpr"]) >= 3
    assert isinstance(report["threshold"]["value"], float) and isinstance(report["threshold"]["ppv"], float)
    n = len(result.test_x)
    assert n == report["protocol"]["held_out_rows"]
    assert len(result.test_groups) == len(result.test_risk) == len(result.test_outcome) == n
    assert (result.test_groups.index == result.test_x.index).all()
    if result.test_survival is not None:
        assert result.test_groups["age_band"].nunique() >= 2  # GBSG2 and veterans record only age
        horizon = report["protocol"]["horizon"]
        assert isinstance(horizon["observed_risk_km"], float) and 0.0 < horizon["observed_risk_km"] < 1.0
        assert horizon["known_rows"] == len(result.calibration_risk)


def test_gbsg2_forest_on_the_random_survival_forest_guides_holdout() -> None:
    # Published protocol: train_test_split(test_size=0.25, random_state=20), Harrell's c of predict.
    result = training.train("gbsg2", "rsf", n_jobs=2)
    protocol = result.report["protocol"]
    expected = {"name": "published", "seed": 20, "splits": 1, "held_out_rows": 172}
    assert {key: protocol[key] for key in expected} == expected
    _compare("gbsg2_random_survival_forest", result)


def test_gbsg2_forest_on_the_coxnet_guides_stratified_holdout() -> None:
    # Published protocol: train_test_split(stratify=event, random_state=1), the default 25% test;
    # our holdout at seed 1 is that split (test_training checks the rows). IBS over days P10..P90
    # of all times with censoring weights from all rows, as the guide.
    result = training.train("gbsg2", "rsf", protocol="holdout", seed=1, n_jobs=2)
    protocol = result.report["protocol"]
    expected = {"seed": 1, "test_size": 0.25, "stratified_on": "the event indicator", "held_out_rows": 172}
    assert {key: protocol[key] for key in expected} == expected
    assert np.isclose(protocol["ibs_times"]["from"], 325.5) and np.isclose(
        protocol["ibs_times"]["to"], 2014.0
    )
    _compare("gbsg2_coxnet", result)


@pytest.mark.slow
def test_veterans_coxnet_over_the_survival_svm_guides_100_random_halves() -> None:
    # Published protocol: ShuffleSplit(n_splits=100, test_size=0.5, random_state=0), the mean
    # test-half Harrell's c; ours is the same mean, each half scored by the model fitted on the
    # other. The published 0.720 is the best of 13 alphas on these very splits (a tuning score).
    result = training.train("veterans", "coxnet", n_jobs=2)
    assert result.report["protocol"]["splits"] == 100 and result.report["protocol"]["name"] == "published"
    _compare("veterans_survival_svm", result)


@pytest.mark.slow
def test_wdbc_logistic_over_ten_times_ten_fold_cv() -> None:
    # Published protocol: repeated 10-fold cross-validation; ours RepeatedStratifiedKFold(10, 10,
    # random_state=0) as `baselines`, the mean over the 100 folds of the accuracy of risk >= 0.5.
    result = training.train("wdbc", "logistic", n_jobs=2)
    protocol = result.report["protocol"]
    assert (protocol["folds"], protocol["repeats"], protocol["splits"]) == (10, 10, 100)
    _compare("wdbc_logistic_regression", result)
