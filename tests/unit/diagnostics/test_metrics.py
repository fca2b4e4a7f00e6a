"""Evaluation metrics against scikit-learn and scikit-survival on random data (ties and tiny samples
included), calibration on synthetic data with known miscalibration, a hand-computed decision curve,
the bootstrap's reproducibility, and the errors bad inputs get."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sksurv.metrics import concordance_index_censored, integrated_brier_score
from sksurv.util import Surv

from medweave.diagnostics.metrics import (
    DecisionCurve,
    Interval,
    at_threshold,
    auroc,
    average_precision,
    bootstrap_ci,
    brier,
    calibration_intercept,
    calibration_slope,
    concordance_index,
    integrated_brier,
    net_benefit,
    reliability_curve,
)

TOL = 1e-9
FEW = [0.0, 0.1, 0.25, 0.5, 0.75, 1.0]  # probabilities drawn from few values: many ties


@st.composite
def binary(draw: st.DrawFn, max_size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, max_size))
    y = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    mixed = st.one_of(st.sampled_from(FEW), st.floats(0.0, 1.0))
    value = mixed if draw(st.booleans()) else st.sampled_from(FEW)
    p = draw(st.lists(value, min_size=n, max_size=n))
    return np.array(y), np.array(p, dtype=float)


@st.composite
def survival(draw: st.DrawFn, max_size: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(1, max_size))
    event = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    tied = draw(st.booleans())
    time = st.sampled_from([1.0, 2.0, 3.0, 5.0]) if tied else st.floats(0.0, 1e3)
    risk = st.sampled_from([-1.0, 0.0, 0.5, 2.0]) if tied else st.floats(-1e3, 1e3)
    times = draw(st.lists(time, min_size=n, max_size=n))
    risks = draw(st.lists(risk, min_size=n, max_size=n))
    return np.array(event, dtype=bool), np.array(times), np.array(risks)


def synthetic(n: int = 100_000, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Linear predictors and outcomes drawn from exactly those probabilities."""
    rng = np.random.default_rng(seed)
    lp = rng.normal(-1.0, 1.2, n)
    y = rng.random(n) < 1.0 / (1.0 + np.exp(-lp))
    return lp, y


def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ---- against the references ---------------------------------------------------------------------


@settings(deadline=None, max_examples=300)
@given(binary())
def test_auroc_matches_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    if len(set(y)) < 2:
        with pytest.raises(ValueError, match="both outcome classes"):
            auroc(y, p)
        return
    assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=TOL)


@settings(deadline=None, max_examples=300)
@given(binary())
def test_average_precision_matches_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    if not y.any():
        with pytest.raises(ValueError, match="at least one positive"):
            average_precision(y, p)
        return
    assert average_precision(y, p) == pytest.approx(average_precision_score(y, p), abs=TOL)


@settings(deadline=None)
@given(binary())
def test_brier_matches_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p, labels=[0, 1]), abs=TOL)


@settings(deadline=None)
@given(binary(max_size=60), st.integers(1, 12))
def test_reliability_curve_matches_sklearn(data: tuple[np.ndarray, np.ndarray], bins: int) -> None:
    y, p = data
    curve = reliability_curve(y, p, bins=bins)
    observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="quantile")
    np.testing.assert_allclose(curve.observed, observed, atol=TOL)
    np.testing.assert_allclose(curve.mean_predicted, predicted, atol=TOL)
    assert curve.counts.sum() == len(y) and (curve.counts > 0).all()
    assert (np.diff(curve.mean_predicted) >= 0).all()


def test_reliability_curve_bins_by_quantile() -> None:
    p = np.arange(100) / 100
    y = (np.arange(100) % 2).astype(int)
    curve = reliability_curve(y, p)
    assert curve.counts.tolist() == [10] * 10
    np.testing.assert_allclose(curve.mean_predicted, np.arange(10) / 10 + 0.045)
    np.testing.assert_allclose(curve.observed, 0.5)


def sksurv_cindex(event: np.ndarray, time: np.ndarray, risk: np.ndarray) -> float | None:
    """scikit-survival's value, or None where it has none (it raises, or returns NaN for 0/0)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = float(concordance_index_censored(event, time, risk)[0])
        except ValueError:
            return None
    return None if math.isnan(value) else value


@settings(deadline=None, max_examples=300)
@given(survival())
def test_concordance_index_matches_sksurv(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    event, time, risk = data
    expected = sksurv_cindex(event, time, risk)
    if expected is None:
        with pytest.raises(ValueError):
            concordance_index(event, time, risk)
        return
    assert concordance_index(event, time, risk) == pytest.approx(expected, abs=TOL)


def test_concordance_index_in_blocks_matches_sksurv() -> None:
    # 3000 rows: the pair matrix is built in blocks of 1398 events.
    rng = np.random.default_rng(3)
    time = np.round(rng.exponential(10.0, 3000), 1)
    event = rng.random(3000) < 0.6
    risk = np.round(-time + rng.normal(0, 5, 3000))
    assert concordance_index(event, time, risk) == pytest.approx(sksurv_cindex(event, time, risk), abs=TOL)


def test_concordance_index_ties_by_hand() -> None:
    # Comparable pairs (event first): (0,1) (0,2) (0,3) (0,4), then (1,3) (4,3) by time, and (1,2) (4,2)
    # at equal times with 2 censored; (1,4) are events at the same time: not comparable. Concordant:
    # 0-1, 0-2, 0-4, 1-2, 4-2; risk tie: 0-3; discordant: 1-3, 4-3. So (5 + 0.5) / 8.
    event = np.array([True, True, False, False, True])
    time = np.array([1.0, 2.0, 2.0, 4.0, 2.0])
    risk = np.array([3.0, 2.0, 1.0, 3.0, 2.0])
    assert concordance_index(event, time, risk) == pytest.approx(5.5 / 8)
    assert concordance_index(event, time, risk) == pytest.approx(sksurv_cindex(event, time, risk))


def test_integrated_brier_wraps_sksurv() -> None:
    train = Surv.from_arrays(event=[True, False, True, True, False, True], time=[1, 2, 3, 4, 5, 6])
    test = Surv.from_arrays(event=[True, True, False, True], time=[1.5, 2.5, 3.5, 5.5])
    times = np.array([2.0, 3.0, 4.0])
    estimate = np.exp(-np.outer([0.1, 0.2, 0.3, 0.4], times))
    expected = integrated_brier_score(train, test, estimate, times)
    assert integrated_brier(train, test, estimate, times) == pytest.approx(expected)


def test_integrated_brier_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sksurv.metrics", None)
    with pytest.raises(ImportError, match="scikit-survival"):
        integrated_brier([], [], [], [])


# ---- calibration --------------------------------------------------------------------------------

# With n = 100,000 and this case mix the standard errors are about 0.009 (slope) and 0.008
# (intercept): a tolerance of 0.04 is over four of them, for a fixed seed.
CAL_TOL = 0.04


def test_calibrated_predictions_have_slope_one_and_intercept_zero() -> None:
    lp, y = synthetic()
    assert calibration_slope(y, expit(lp)) == pytest.approx(1.0, abs=CAL_TOL)
    assert calibration_intercept(y, expit(lp)) == pytest.approx(0.0, abs=CAL_TOL)


def test_too_extreme_predictions_have_slope_below_one() -> None:
    lp, y = synthetic()
    assert calibration_slope(y, expit(2.0 * lp)) == pytest.approx(0.5, abs=CAL_TOL / 2)


def test_too_moderate_predictions_have_slope_above_one() -> None:
    lp, y = synthetic()
    assert calibration_slope(y, expit(0.5 * lp)) == pytest.approx(2.0, abs=CAL_TOL * 2)


def test_over_prediction_has_negative_intercept() -> None:
    lp, y = synthetic()
    assert calibration_intercept(y, expit(lp + 0.5)) == pytest.approx(-0.5, abs=CAL_TOL)
    assert calibration_slope(y, expit(lp + 0.5)) == pytest.approx(1.0, abs=CAL_TOL)


def test_calibration_slope_matches_sklearn_logistic_regression() -> None:
    lp, y = synthetic(n=5000, seed=11)
    p = expit(1.3 * lp - 0.2)
    logit = np.log(p / (1 - p))
    model = LogisticRegression(C=np.inf, tol=1e-12, max_iter=1000).fit(logit[:, None], y)
    assert calibration_slope(y, p) == pytest.approx(model.coef_[0, 0], abs=1e-5)


def test_calibration_intercept_solves_its_score_equation() -> None:
    # At the maximum, the mean of expit(a + logit p) equals the observed event rate.
    lp, y = synthetic(n=2000, seed=5)
    p = expit(lp + 0.3)
    a = calibration_intercept(y, p)
    assert expit(a + np.log(p / (1 - p))).mean() == pytest.approx(y.mean(), abs=1e-9)


def test_calibration_clips_certain_predictions() -> None:
    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([0.0, 1.0, 0.3, 0.6, 0.4, 0.7])
    assert math.isfinite(calibration_slope(y, p)) and math.isfinite(calibration_intercept(y, p))


@pytest.mark.parametrize(
    ("y", "p"),
    [([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]), ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5])],
    ids=["separated", "constant"],
)
def test_calibration_slope_without_a_maximum_raises(y: list[int], p: list[float]) -> None:
    with pytest.raises(ValueError, match="calibration slope"):
        calibration_slope(y, p)


# ---- clinical utility ---------------------------------------------------------------------------

Y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 1, 0])
P = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])

# threshold, TP, FP, model net benefit, treat-all net benefit (prevalence 0.4, n 10), by hand
DECISION_TABLE = [
    (0.0, 4, 6, 4 / 10, 4 / 10),
    (0.1, 4, 5, 4 / 10 - 5 / 10 / 9, 4 / 10 - 6 / 10 / 9),  # odds 1/9: 31/90 and 1/3
    (0.25, 3, 4, 3 / 10 - 4 / 10 / 3, 4 / 10 - 6 / 10 / 3),  # odds 1/3: 1/6 and 1/5
    (0.5, 3, 2, 3 / 10 - 2 / 10, 4 / 10 - 6 / 10),  # odds 1: 1/10 and -1/5
    (0.75, 2, 0, 2 / 10, 4 / 10 - 6 / 10 * 3),  # odds 3: 1/5 and -7/5
    (0.95, 0, 0, 0.0, 4 / 10 - 6 / 10 * 19),
]


def test_net_benefit_matches_the_hand_computed_table() -> None:
    curve = net_benefit(Y, P, [row[0] for row in DECISION_TABLE])
    assert isinstance(curve, DecisionCurve)
    np.testing.assert_allclose(curve.model, [row[3] for row in DECISION_TABLE], atol=1e-12)
    np.testing.assert_allclose(curve.treat_all, [row[4] for row in DECISION_TABLE], atol=1e-12)
    np.testing.assert_array_equal(curve.treat_none, 0.0)
    for t, tp, fp, *_ in DECISION_TABLE:
        table = at_threshold(Y, P, t)
        assert (table.tp, table.fp) == (tp, fp)


def test_threshold_metrics_by_hand() -> None:
    m = at_threshold(Y, P, 0.5)
    assert (m.tp, m.fp, m.tn, m.fn) == (3, 2, 4, 1)
    assert (m.alert_rate, m.ppv, m.sensitivity) == (0.5, 0.6, 0.75)
    assert m.specificity == pytest.approx(4 / 6)


def test_threshold_metrics_without_alerts_have_no_ppv() -> None:
    m = at_threshold(Y, P, 0.95)
    assert m.alert_rate == 0.0 and math.isnan(m.ppv)
    assert (m.sensitivity, m.specificity) == (0.0, 1.0)


# ---- bootstrap ----------------------------------------------------------------------------------


def test_bootstrap_contains_the_estimate_and_is_reproducible() -> None:
    lp, y = synthetic(n=400, seed=2)
    p = expit(lp)
    first = bootstrap_ci(auroc, y, p, resamples=300, seed=42)
    assert isinstance(first, Interval)
    assert first.estimate == auroc(y, p)
    assert first.low < first.estimate < first.high
    assert bootstrap_ci(auroc, y, p, resamples=300, seed=42) == first
    assert bootstrap_ci(auroc, y, p, resamples=300, seed=43) != first
    narrow = bootstrap_ci(auroc, y, p, resamples=300, seed=42, level=0.5)
    assert first.low < narrow.low < narrow.high < first.high


def test_bootstrap_accepts_a_generator_and_survival_metrics() -> None:
    rng = np.random.default_rng(9)
    time = rng.exponential(5.0, 200)
    event = rng.random(200) < 0.7
    risk = -time + rng.normal(0, 3, 200)
    estimate, low, high = bootstrap_ci(concordance_index, event, time, risk, resamples=200, seed=rng)
    assert low < estimate < high


def test_stratified_resamples_keep_both_classes() -> None:
    y = np.array([1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.1, 0.2, 0.3, 0.4, 0.95])
    estimate, low, high = bootstrap_ci(auroc, y, p, resamples=200, max_degenerate=0.0)
    assert low <= estimate <= high
    # Unstratified, a third of the resamples lack the case: degenerate, dropped, and too many.
    with pytest.raises(ValueError, match="degenerate"):
        bootstrap_ci(auroc, y, p, resamples=200, stratify=False)


def test_bootstrap_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="same length"):
        bootstrap_ci(auroc, Y, P[:-1])
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(auroc, Y, P, level=95)
    with pytest.raises(ValueError, match="binary outcomes"):
        bootstrap_ci(lambda p, y: auroc(y, p), P, Y)


# ---- invalid inputs -----------------------------------------------------------------------------

ALL = [auroc, average_precision, brier, calibration_intercept, calibration_slope, reliability_curve]


@pytest.mark.parametrize("metric", ALL)
def test_length_mismatch(metric) -> None:
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        metric([0, 1, 1], [0.2, 0.4])


@pytest.mark.parametrize("metric", ALL)
@pytest.mark.parametrize("bad", [1.2, -0.1, float("nan")])
def test_probabilities_outside_the_unit_interval(metric, bad: float) -> None:
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        metric([0, 1, 1], [0.2, bad, 0.4])


@pytest.mark.parametrize("y", [[0, 2, 1], [0.0, 0.5, 1.0], ["a", "b", "a"]])
def test_outcomes_must_be_binary(y: list[float] | list[str]) -> None:
    with pytest.raises(ValueError, match="binary outcomes"):
        auroc(y, [0.1, 0.2, 0.3])


def test_a_single_class_has_no_auroc() -> None:
    with pytest.raises(ValueError, match="AUROC needs both outcome classes"):
        auroc([1, 1, 1], [0.1, 0.5, 0.9])


def test_empty_and_two_dimensional_inputs() -> None:
    with pytest.raises(ValueError, match="empty"):
        brier([], [])
    with pytest.raises(ValueError, match="one-dimensional"):
        brier([[0, 1]], [[0.1, 0.9]])


def test_bad_thresholds_and_bins() -> None:
    with pytest.raises(ValueError, match=r"thresholds must lie in \[0, 1\)"):
        net_benefit(Y, P, [0.5, 1.0])
    with pytest.raises(ValueError, match="threshold must lie"):
        at_threshold(Y, P, 1.5)
    with pytest.raises(ValueError, match="bins"):
        reliability_curve(Y, P, bins=0)


def test_concordance_index_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="same length"):
        concordance_index([True, False], [1.0, 2.0, 3.0], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        concordance_index([True, False], [1.0, float("nan")], [0.1, 0.2])
    with pytest.raises(ValueError, match="no comparable pairs"):
        concordance_index([False, False], [1.0, 2.0], [0.1, 0.2])
