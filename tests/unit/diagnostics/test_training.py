"""Training and evaluation (issue 7): each model kind under each protocol, the report's schema,
metrics on held-out rows only (a memorising model on pure noise must score as chance), the
documented splits, seed determinism, the errors, progress, and the pure helpers of `protocols`
against scikit-learn.

The bootstrap runs 200 resamples here instead of 1000 (a module fixture), which keeps the file
quick; the intervals' width is not what these tests check."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("sksurv")
pytest.importorskip("lightgbm")

from sklearn.metrics import accuracy_score, roc_auc_score, roc_curve
from sklearn.model_selection import ShuffleSplit, train_test_split
from sksurv.metrics import (
    brier_score,
    concordance_index_censored,
    cumulative_dynamic_auc,
    integrated_brier_score,
)

from medweave.diagnostics import datasets, estimators, metrics, protocols, training
from medweave.diagnostics.tabular import SURVIVAL_DTYPE, fingerprint
from medweave.errors import InvalidInput, NotFound

SMALL = {"rsf": {"n_estimators": 40}, "lightgbm": {"n_estimators": 60}}
TOP = {
    "dataset",
    "model",
    "protocol",
    "metrics",
    "threshold",
    "reliability",
    "roc",
    "decision_curve",
    "seconds",
}
METRICS = {
    "classification": ["auroc", "auprc", "brier", "calibration_slope", "calibration_intercept", "accuracy"],
    "survival": ["c_index", "ibs", "auroc", "brier", "calibration_slope", "calibration_intercept"],
}
RUNS = {  # kind: (dataset, protocol, seed)
    "logistic": ("wdbc", "holdout", 3),
    "lightgbm": ("wdbc", "cv", 0),
    "coxnet": ("gbsg2", "holdout", 1),
    "rsf": ("veterans", "cv", 0),
}


@pytest.fixture(scope="module", autouse=True)
def fast_bootstrap() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "RESAMPLES", 200)
        yield


@pytest.fixture(scope="module")
def results(fast_bootstrap: None) -> dict[str, training.TrainingResult]:
    out: dict[str, training.TrainingResult] = {}
    for kind, (name, protocol, seed) in RUNS.items():
        out[kind] = training.train(name, kind, seed=seed, protocol=protocol, params=SMALL.get(kind), n_jobs=2)
    return out


# ---- the report -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(RUNS))
def test_each_kind_reports_the_schema_as_strict_json(
    results: dict[str, training.TrainingResult], kind: str
) -> None:
    result = results[kind]
    report = result.report
    task = estimators.KINDS[kind]
    assert set(report) == TOP
    assert json.loads(json.dumps(report, allow_nan=False)) == report  # no NaN, no numpy types
    name, protocol, seed = RUNS[kind]
    data = datasets.load(name)
    assert report["dataset"] == {
        "name": name,
        "title": data.info.title,
        "task": task,
        "source": data.info.source,
        "license": data.info.license,
        "rows": data.rows,
        "features": data.features.shape[1],
        "fingerprint": data.fingerprint,
        "target": data.info.target,
        "horizon_days": estimators.HORIZON_DAYS.get(name),
    }
    assert report["model"] == {
        "kind": kind,
        "task": task,
        "params": {**estimators.DEFAULTS[kind], **SMALL.get(kind, {})},
        "features": list(data.features.columns),
    }
    assert report["protocol"]["name"] == protocol and report["protocol"]["model_seed"] == seed
    assert list(report["metrics"]) == METRICS[task]
    for metric, m in report["metrics"].items():
        assert set(m) == {"value", "lower", "upper"}
        if m["lower"] is None:  # no interval only with the reason in the notes
            assert any(note.startswith(f"{metric}: no interval") for note in report["protocol"]["notes"])
            assert m["upper"] is None and m["value"] is not None
        else:
            assert m["lower"] <= m["value"] <= m["upper"], metric
    assert set(report["threshold"]) == {"value", "rule", "alert_rate", "ppv", "sensitivity", "specificity"}
    assert report["threshold"]["sensitivity"] >= protocols.SENSITIVITY_TARGET
    assert "Leeflang" in report["threshold"]["rule"]
    assert sum(report["reliability"]["count"]) == len(result.calibration_risk)
    assert len(report["roc"]["fpr"]) == len(report["roc"]["tpr"]) <= protocols.ROC_POINTS
    curve = report["decision_curve"]
    assert len(curve["thresholds"]) == len(curve["model"]) == len(curve["treat_all"]) == 99
    assert report["seconds"] > 0


@pytest.mark.parametrize("kind", list(RUNS))
def test_the_held_out_arrays_line_up(results: dict[str, training.TrainingResult], kind: str) -> None:
    result = results[kind]
    n = len(result.test_x)
    assert len(result.test_groups) == len(result.test_risk) == len(result.test_outcome) == n
    assert (result.test_groups.index == result.test_x.index).all()
    assert result.report["protocol"]["held_out_rows"] == n
    np.testing.assert_array_equal(result.calibration_risk, result.test_risk[result.test_known])
    np.testing.assert_array_equal(result.calibration_outcome, result.test_outcome[result.test_known])
    assert result.calibration_outcome.dtype == np.bool_
    np.testing.assert_array_equal(result.model_input(result.test_x), result.test_x.to_numpy(dtype=float))
    if result.test_survival is None:
        assert result.test_known.all()
        return
    event, time = result.test_survival["event"], result.test_survival["time"]
    horizon = result.report["dataset"]["horizon_days"]
    # Unknown at the horizon means exactly: censored before it.
    np.testing.assert_array_equal(~result.test_known, ~event & (time < horizon))
    np.testing.assert_array_equal(result.test_outcome, event & (time <= horizon))
    assert result.report["protocol"]["horizon"]["excluded_rows"] == int((~result.test_known).sum())


def test_a_metric_without_a_bootstrap_interval_keeps_its_value(
    results: dict[str, training.TrainingResult],
) -> None:
    # WDBC's seed-3 holdout is nearly separable (AUROC 0.999): too many resamples separate the
    # outcomes completely, where a calibration slope has no finite maximum. The report keeps the
    # slope itself and says why it has no interval, rather than an interval from the remainder.
    report = results["logistic"].report
    slope = report["metrics"]["calibration_slope"]
    assert slope["lower"] is None and slope["upper"] is None
    y, p = results["logistic"].calibration_outcome, results["logistic"].calibration_risk
    assert slope["value"] == metrics.calibration_slope(y, p)
    assert [n for n in report["protocol"]["notes"] if "degenerate" in n] == [
        n for n in report["protocol"]["notes"] if n.startswith("calibration_slope: no interval")
    ]


def test_a_holdout_is_evaluated_with_the_model_it_serves(results: dict[str, training.TrainingResult]) -> None:
    # A holdout serves the split's own model, so its risks are exactly the report's held-out ones;
    # for a survival model they come from the same curves the IBS reads.
    for kind in ("logistic", "coxnet"):
        result = results[kind]
        assert "holdout split's model" in result.report["protocol"]["final_model"]
        np.testing.assert_allclose(result.model.risk(result.test_x), result.test_risk, rtol=0, atol=1e-12)


def test_holdout_metrics_are_scikit_learns_and_scikit_survivals_on_the_held_out_rows(
    results: dict[str, training.TrainingResult],
) -> None:
    # Recomputed independently from the served (holdout) model and the held-out rows alone.
    logistic = results["logistic"]
    y = datasets.load("wdbc").target[logistic.test_x.index]
    p = logistic.model.risk(logistic.test_x)
    m = logistic.report["metrics"]
    assert m["auroc"]["value"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["accuracy"]["value"] == pytest.approx(accuracy_score(y, p >= 0.5), abs=1e-12)
    cox = results["coxnet"]
    data = datasets.load("gbsg2")
    test = data.target[cox.test_x.index]
    m = cox.report["metrics"]
    score = cox.model.score(cox.test_x)
    assert m["c_index"]["value"] == pytest.approx(
        concordance_index_censored(test["event"], test["time"], score)[0], abs=1e-12
    )
    low, high = np.percentile(data.target["time"], [10, 90])
    times = np.linspace(low, high, 100)
    curves = np.vstack(
        [fn(times) for fn in cox.model.estimator.predict_survival_function(cox.test_x.to_numpy())]
    )
    ibs = integrated_brier_score(data.target, test, curves, times)
    assert m["ibs"]["value"] == pytest.approx(ibs, abs=1e-12)
    horizon = cox.report["dataset"]["horizon_days"]
    risk = cox.model.risk(cox.test_x)
    assert m["brier"]["value"] == pytest.approx(
        brier_score(data.target, test, 1 - risk, horizon)[1][0], abs=1e-12
    )
    auc = cumulative_dynamic_auc(data.target, test, risk, [horizon])[0][0]
    assert m["auroc"]["value"] == pytest.approx(auc, abs=1e-12)


def test_cv_refits_on_all_rows_and_predicts_every_row_out_of_fold(
    results: dict[str, training.TrainingResult],
) -> None:
    result = results["lightgbm"]
    data = datasets.load("wdbc")
    assert len(result.test_x) == data.rows  # 5 folds x 2 repeats hold every row out twice
    assert (
        result.report["protocol"]["final_model"] == f"refitted on all {data.rows} rows after the evaluation"
    )
    assert result.report["protocol"] | {"folds": 5, "repeats": 2, "splits": 10} == result.report["protocol"]
    # The held-out risks are not the refitted model's (which saw every row).
    assert np.max(np.abs(result.model.risk(result.test_x) - result.test_risk)) > 0.05


def test_the_holdout_rows_are_the_documented_splits(results: dict[str, training.TrainingResult]) -> None:
    # Seed 1 on GBSG2 is the split of scikit-survival's "Evaluating Survival Models" guide:
    # train_test_split(x, y, stratify=y["event"], random_state=1).
    data = datasets.load("gbsg2")
    _, guide_test = train_test_split(data.features, stratify=data.target["event"], random_state=1)
    assert list(results["coxnet"].test_x.index) == sorted(guide_test.index)  # held-out rows in data order
    wdbc = datasets.load("wdbc")
    _, test = train_test_split(wdbc.features, test_size=0.25, stratify=wdbc.target, random_state=3)
    assert list(results["logistic"].test_x.index) == sorted(test.index)


def test_published_protocols_are_the_sources_splits() -> None:
    gbsg2 = datasets.load("gbsg2")
    plan = protocols.plan(None, dataset="gbsg2", strata=gbsg2.target["event"], seed=7)
    _, guide = train_test_split(np.arange(gbsg2.rows), test_size=0.25, random_state=20)  # RSF guide
    assert plan.name == "published" and plan.seed == 20 and not plan.refit
    np.testing.assert_array_equal(plan.splits[0][1], guide)
    veterans = datasets.load("veterans")
    plan = protocols.plan("published", dataset="veterans", strata=veterans.target["event"], seed=7)
    shuffle = ShuffleSplit(n_splits=100, test_size=0.5, random_state=0).split(np.zeros((veterans.rows, 1)))
    assert len(plan.splits) == 100 and plan.refit
    for (fit, test), (fit_guide, test_guide) in zip(plan.splits, shuffle, strict=True):
        np.testing.assert_array_equal(fit, fit_guide)
        np.testing.assert_array_equal(test, test_guide)
    wdbc = datasets.load("wdbc")
    plan = protocols.plan(None, dataset="wdbc", strata=wdbc.target, seed=0)
    assert len(plan.splits) == 100 and plan.details["folds"] == 10 and plan.details["repeats"] == 10
    assert protocols.plan(None, dataset="whas500", strata=np.zeros(50, dtype=bool), seed=0).name == "cv"


# ---- held-out only: a model that memorises is caught --------------------------------------------


def _noise(monkeypatch: pytest.MonkeyPatch, name: str, task: datasets.Task, n: int = 300) -> datasets.Dataset:
    """A dataset whose outcome is independent of its features: no model can beat chance on rows it
    did not see, and a memorising model scores near perfectly on rows it did."""
    rng = np.random.default_rng(11)
    features = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"x{i}" for i in range(6)])
    if task == "classification":
        target = rng.integers(0, 2, n).astype("int64")
    else:
        target = np.empty(n, dtype=SURVIVAL_DTYPE)
        target["event"], target["time"] = rng.random(n) < 0.7, rng.exponential(100.0, n).round() + 1
        monkeypatch.setitem(estimators.HORIZON_DAYS, name, 70.0)
    groups = pd.DataFrame({"sex": rng.choice(["female", "male"], n)})
    data: datasets.Dataset
    info = datasets.DatasetInfo(name, task, "noise", "noise", "a test", "numpy", "none", lambda: data)
    data = datasets.Dataset(info, features, features, target, groups, fingerprint(features, target))
    monkeypatch.setitem(datasets.DATASETS, name, info)
    real = datasets.load
    monkeypatch.setattr(datasets, "load", lambda key: data if key == name else real(key))
    return data


MEMORISE: dict[str, dict[str, Any]] = {
    "lightgbm": {"n_estimators": 300, "learning_rate": 0.3, "num_leaves": 63, "min_child_samples": 1,
                 "subsample": 1.0, "colsample_bytree": 1.0, "reg_lambda": 0.0},
    "rsf": {"n_estimators": 60, "min_samples_split": 2, "min_samples_leaf": 1, "max_features": None},
}  # fmt: skip


def test_a_memorising_classifier_scores_chance_on_held_out_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _noise(monkeypatch, "noise", "classification")
    result = training.train("noise", "lightgbm", protocol="cv", params=MEMORISE["lightgbm"])
    # The served model (refitted on every row) has memorised them...
    assert roc_auc_score(data.target, result.model.risk(data.features)) > 0.99
    # ...but the report only counts held-out rows, where pure noise scores as chance.
    auroc, accuracy = result.report["metrics"]["auroc"], result.report["metrics"]["accuracy"]
    assert auroc["lower"] < 0.5 < auroc["upper"] and auroc["value"] < 0.6
    assert accuracy["lower"] < 0.5 < accuracy["upper"]
    assert list(result.test_groups.columns) == ["sex"]


def test_a_memorising_survival_forest_scores_chance_on_held_out_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _noise(monkeypatch, "noise-survival", "survival")
    result = training.train("noise-survival", "rsf", protocol="holdout", params=MEMORISE["rsf"], n_jobs=2)
    fit_rows = np.setdiff1d(np.arange(data.rows), result.test_x.index)
    seen = data.target[fit_rows]
    in_sample = concordance_index_censored(
        seen["event"], seen["time"], result.model.score(data.features.iloc[fit_rows])
    )[0]
    assert in_sample > 0.9  # the forest knows its training rows
    c = result.report["metrics"]["c_index"]
    assert c["lower"] < 0.5 < c["upper"] and abs(c["value"] - 0.5) < 0.1


# ---- determinism, progress, errors --------------------------------------------------------------


def test_the_same_seed_gives_the_same_report_and_another_seed_another_split() -> None:
    first = training.train("veterans", "coxnet", seed=5, protocol="holdout")
    again = training.train("veterans", "coxnet", seed=5, protocol="holdout")
    other = training.train("veterans", "coxnet", seed=6, protocol="holdout")
    strip = ("seconds",)
    assert {k: v for k, v in first.report.items() if k not in strip} == {
        k: v for k, v in again.report.items() if k not in strip
    }
    assert list(first.test_x.index) != list(other.test_x.index)
    assert first.report["metrics"] != other.report["metrics"]


@pytest.mark.parametrize(
    ("protocol", "calls"), [("holdout", [(1, 1)]), ("cv", [(i, 11) for i in range(1, 12)])]
)
def test_progress_is_called_as_each_split_finishes(protocol: str, calls: list[tuple[int, int]]) -> None:
    seen: list[tuple[int, int]] = []
    training.train("veterans", "coxnet", protocol=protocol, progress=lambda d, t: seen.append((d, t)))
    assert seen == calls


NO_PUBLISHED = "has no published protocol; those that do: wdbc, gbsg2, veterans"
REFUSED = [
    ("wdbc", "logistic", "bootstrap", None, "unknown protocol 'bootstrap'; one of: holdout, cv, published"),
    ("whas500", "coxnet", "published", None, NO_PUBLISHED),
    ("diabetes", "logistic", None, None, "'diabetes' is a regression task"),
    ("diabetes", "rsf", None, None, "'diabetes' is a regression task"),
    (
        "wdbc",
        "rsf",
        None,
        None,
        "model 'rsf' is for survival, dataset 'wdbc' is classification: use logistic",
    ),
    ("veterans", "lightgbm", None, None, "dataset 'veterans' is survival: use coxnet, rsf"),
    ("wdbc", "svm", None, None, "unknown model 'svm'"),
    ("wdbc", "logistic", "holdout", {"no_such_option": 1}, "bad hyper-parameters for logistic"),
    ("wdbc", "logistic", "holdout", {"C": -1.0}, "bad hyper-parameters for logistic"),
    ("wdbc", "logistic", "holdout", {"C": [1, 2]}, "must be a number, string, boolean or null"),
]


@pytest.mark.parametrize(("dataset", "kind", "protocol", "params", "message"), REFUSED)
def test_what_cannot_be_trained_is_refused(
    dataset: str, kind: str, protocol: str | None, params: dict[str, object] | None, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        training.train(dataset, kind, protocol=protocol, params=params)
    assert message in str(caught.value)


def test_an_unknown_dataset_is_not_found() -> None:
    with pytest.raises(NotFound):
        training.train("no-such-data", "logistic")


# ---- the pure helpers -------------------------------------------------------------------------


@st.composite
def scored(draw: st.DrawFn, min_cases: int = 1) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(2, 60))
    y = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    levels = st.sampled_from([0.0, 0.2, 0.5, 0.8, 1.0]) if draw(st.booleans()) else st.floats(0.0, 1.0)
    p = np.array(draw(st.lists(levels, min_size=n, max_size=n)), dtype=float)
    return y, p


@settings(deadline=None, max_examples=300)
@given(scored(), st.sampled_from([0.5, 0.8, 0.9, 1.0]))
def test_the_threshold_is_the_highest_risk_reaching_the_sensitivity(
    case: tuple[np.ndarray, np.ndarray], target: float
) -> None:
    y, p = case
    if not y.any():
        with pytest.raises(ValueError):
            protocols.sensitivity_threshold(y, p, target)
        return
    t = protocols.sensitivity_threshold(y, p, target)
    assert metrics.at_threshold(y, p, t).sensitivity >= target
    for higher in np.unique(p[p > t]):
        assert metrics.at_threshold(y, p, higher).sensitivity < target


def test_the_threshold_rule_survives_floating_point() -> None:
    # 0.8 * 35 is 28.000000000000004 in floating point: the 28th case is enough, not the 29th.
    y = np.ones(35, dtype=bool)
    p = np.linspace(1.0, 0.0, 35)
    assert protocols.sensitivity_threshold(y, p) == p[27]


@settings(deadline=None, max_examples=300)
@given(scored())
def test_roc_points_are_scikit_learns(case: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = case
    if y.all() or not y.any():
        with pytest.raises(ValueError):
            protocols.roc_points(y, p)
        return
    fpr, tpr = protocols.roc_points(y, p, max_points=1000)
    expected_fpr, expected_tpr, _ = roc_curve(y, p, drop_intermediate=False)
    np.testing.assert_allclose(fpr, expected_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, expected_tpr, atol=1e-12)
    thin_fpr, thin_tpr = protocols.roc_points(y, p, max_points=5)
    assert len(thin_fpr) <= 5 and (thin_fpr[0], thin_tpr[0]) == (0.0, 0.0) and thin_tpr[-1] == 1.0
    assert (np.diff(thin_fpr) >= 0).all() and (np.diff(thin_tpr) >= 0).all()
    # Thinning keeps points of the full curve, no invented ones.
    assert set(zip(thin_fpr, thin_tpr, strict=True)) <= set(zip(fpr, tpr, strict=True))


@given(
    st.lists(st.tuples(st.booleans(), st.sampled_from([1.0, 5.0, 10.0, 10.5, 30.0])), min_size=1, max_size=30)
)
def test_a_row_is_unknown_at_the_horizon_only_when_censored_before_it(rows: list[tuple[bool, float]]) -> None:
    event = np.array([e for e, _ in rows])
    time = np.array([t for _, t in rows])
    outcome, known = protocols.horizon_status(event, time, 10.0)
    for e, t, o, k in zip(event, time, outcome, known, strict=True):
        assert o == (e and t <= 10.0)
        assert k == (o or t >= 10.0)
        assert k != (not e and t < 10.0)


@given(
    st.recursive(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), st.booleans(), st.text()
        ),
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=3), inner)),
        max_leaves=10,
    )
)
def test_json_safe_turns_non_finite_numbers_into_null(value: object) -> None:
    safe = protocols.json_safe({"a": value, "b": np.array([1.5, np.nan]), "c": np.float32("inf")})
    text = json.dumps(safe, allow_nan=False)
    assert json.loads(text)["b"] == [1.5, None] and json.loads(text)["c"] is None
    if isinstance(value, float):
        assert safe["a"] == (value if math.isfinite(value) else None)


@settings(deadline=None, max_examples=50)
@given(st.integers(20, 80), st.integers(0, 2**16), st.sampled_from(["holdout", "cv"]))
def test_every_split_holds_out_rows_it_did_not_fit(n: int, seed: int, protocol: str) -> None:
    strata = np.arange(n) % 4 == 0
    plan = protocols.plan(protocol, dataset="any", strata=strata, seed=seed)
    for fit, test in plan.splits:
        assert not np.intersect1d(fit, test).size and len(fit) + len(test) == n
        assert strata[test].any()  # stratified: every held-out part has cases
    if protocol == "cv":
        for repeat in range(protocols.CV_REPEATS):
            folds = plan.splits[repeat * protocols.CV_FOLDS : (repeat + 1) * protocols.CV_FOLDS]
            np.testing.assert_array_equal(np.sort(np.concatenate([t for _, t in folds])), np.arange(n))
    else:
        assert len(plan.splits[0][1]) == math.ceil(0.25 * n)
