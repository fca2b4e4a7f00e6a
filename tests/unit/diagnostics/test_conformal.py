"""Conformal sets: MAPIE's quantile against the textbook order statistic, the served numpy sets
against MAPIE's own ``predict_set``, and the coverage guarantee on fresh exchangeable data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("mapie")

from scipy.stats import beta
from sklearn.base import BaseEstimator, ClassifierMixin

from medweave.diagnostics.conformal import ConformalSets, calibrate, minimum_rows

ALPHAS = st.sampled_from([0.05, 0.1, 0.2, 0.3])


def _data(seed: int, n: int, gamma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Exchangeable rows: a risk r ~ U(0, 1) and an outcome ~ Bernoulli(r ** gamma); gamma != 1 is
    a miscalibrated model, which conformal coverage must survive."""
    rng = np.random.default_rng(seed)
    r = rng.uniform(size=n)
    return r, (rng.uniform(size=n) < r**gamma).astype(np.int64)


def _textbook(r: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """Angelopoulos & Bates 2021, section 1: the ceil((n + 1)(1 - alpha))/n empirical quantile of
    s = 1 - p(true class), i.e. the ceil((n + 1)(1 - alpha))-th smallest score."""
    scores = np.where(y == 1, 1.0 - r, r)
    k = math.ceil((len(r) + 1) * (1.0 - alpha))
    return float(np.sort(scores)[k - 1])


class _Risk(ClassifierMixin, BaseEstimator):
    def fit(self, x: object = None, y: object = None) -> _Risk:
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.column_stack([1.0 - x[:, 0], x[:, 0]])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (x[:, 0] >= 0.5).astype(int)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(20, 400), alpha=ALPHAS, ties=st.booleans())
def test_the_quantile_is_the_textbook_order_statistic(seed: int, n: int, alpha: float, ties: bool) -> None:
    r, y = _data(seed, n)
    if ties:  # risks from few values: many equal scores
        r = np.round(r, 1)
    # Equal up to float rounding: MAPIE scores 1 - p as 1 - 0.8 = 0.19999999999999996.
    assert calibrate(r, y, alpha=alpha).quantile == pytest.approx(_textbook(r, y, alpha), abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(20, 300), alpha=ALPHAS)
def test_served_sets_are_mapies_sets(seed: int, n: int, alpha: float) -> None:
    from mapie.classification import SplitConformalClassifier

    r, y = _data(seed, n)
    fresh = np.r_[_data(seed + 1, 200)[0], 0.0, 1.0, 0.5]
    mapie = SplitConformalClassifier(_Risk().fit(), confidence_level=1 - alpha, prefit=True)
    mapie.conformalize(r[:, None], y)
    _, expected = mapie.predict_set(fresh[:, None])
    served = ConformalSets.from_dict(json.loads(json.dumps(calibrate(r, y, alpha=alpha).to_dict())))
    np.testing.assert_array_equal(served.sets(fresh), expected[:, :, 0])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(50, 500),
    alpha=ALPHAS,
    gamma=st.sampled_from([0.5, 1.0, 2.0]),
)
def test_coverage_on_fresh_exchangeable_data(seed: int, n: int, alpha: float, gamma: float) -> None:
    # Given the calibration rows, coverage of a fresh row is Beta(k, n + 1 - k) distributed with
    # k = ceil((n + 1)(1 - alpha)) when scores have no ties (Angelopoulos & Bates 2021, section 3.2;
    # Vovk 2012). Test: the 1e-7 and 1 - 1e-7 quantiles of that Beta, widened by 5.3 binomial
    # standard errors of the m fresh rows (two-sided 1e-7 too). Below 1 - alpha minus slack means
    # a wrong quantile; above the upper bound means sets larger than the data justifies.
    r, y = _data(seed, n, gamma)
    m = 20_000
    fresh_r, fresh_y = _data(seed ^ 0x5EED, m, gamma)
    k = math.ceil((n + 1) * (1 - alpha))
    sampling = 5.3 * math.sqrt(alpha * (1 - alpha) / m)
    coverage = calibrate(r, y, alpha=alpha).coverage(fresh_r, fresh_y)
    assert coverage >= beta.ppf(1e-7, k, n + 1 - k) - sampling
    assert coverage <= beta.ppf(1 - 1e-7, k, n + 1 - k) + sampling


def test_average_coverage_is_at_least_the_level() -> None:
    # The marginal guarantee, 1 - alpha <= E[coverage] <= 1 - alpha + 1/(n + 1), over 300
    # calibration draws of n = 99 rows (then k/(n+1) = 0.9 exactly): the mean's standard error is
    # about sqrt(0.9 * 0.1 / 101 / 300) = 0.0017, so 5 of them is the slack.
    alpha, n, draws = 0.1, 99, 300
    coverages = []
    for seed in range(draws):
        r, y = _data(seed, n)
        fresh_r, fresh_y = _data(10_000 + seed, 500)
        coverages.append(calibrate(r, y, alpha=alpha).coverage(fresh_r, fresh_y))
    mean = float(np.mean(coverages))
    assert 1 - alpha - 0.0085 <= mean <= 1 - alpha + 1 / (n + 1) + 0.0085


@settings(max_examples=100, deadline=None)
@given(
    r=st.lists(st.sampled_from([0.0, 0.2, 0.5, 0.7, 1.0]) | st.floats(0, 1), min_size=20, max_size=80),
    data=st.data(),
    alpha=ALPHAS,
)
def test_calibration_rows_are_covered_at_the_level(r: list[float], data: st.DataObject, alpha: float) -> None:
    # At least k = ceil((n + 1)(1 - alpha)) of the n calibration scores are <= q, ties or not, so
    # the calibration rows themselves are covered at k/n >= 1 - alpha.
    y = np.array(data.draw(st.lists(st.integers(0, 1), min_size=len(r), max_size=len(r))))
    if len(r) < minimum_rows(alpha):
        return
    sets = calibrate(r, y, alpha=alpha)
    assert sets.coverage(r, y) >= 1 - alpha


@given(
    q=st.floats(0, 1),
    r=st.lists(st.floats(0, 1), min_size=1, max_size=50),
)
def test_a_set_is_empty_only_when_neither_outcome_is_plausible(q: float, r: list[float]) -> None:
    risk = np.array(r)
    sets = ConformalSets(alpha=0.1, quantile=q, n_calibration=100).sets(risk)
    empty = np.logical_not(sets.any(axis=1))
    # Away from the 1e-8 tolerance (where 1 - (1 - r) and r may round differently): empty exactly
    # when both r > q and 1 - r > q, "present" exactly when 1 - r <= q.
    gap = np.minimum(risk, 1 - risk) - q
    assert empty[gap > 1e-7].all() and not empty[gap <= 0].any()
    assert sets[1 - risk - q <= 0, 1].all() and not sets[1 - risk - q > 1e-7, 1].any()
    if q >= 0.5:
        assert not empty.any()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(40, 300))
def test_smaller_alpha_gives_larger_sets(seed: int, n: int) -> None:
    r, y = _data(seed, n)
    wide, narrow = calibrate(r, y, alpha=0.05), calibrate(r, y, alpha=0.3)
    assert wide.quantile >= narrow.quantile
    fresh = _data(seed + 1, 100)[0]
    assert (wide.sets(fresh) >= narrow.sets(fresh)).all()


def test_a_known_calibration_by_hand() -> None:
    # n = 19, alpha = 0.1: k = ceil(20 * 0.9) = 18, the 18th smallest of the scores 1 - p(true).
    r = np.linspace(0.05, 0.95, 19)
    y = (r > 0.5).astype(int)
    y[[2, 16]] = 1 - y[[2, 16]]  # two surprises, scores 0.85 and 0.85
    sets = calibrate(r, y, alpha=0.1)
    scores = np.sort(np.where(y == 1, 1 - r, r))
    assert sets.quantile == pytest.approx(scores[17]) == pytest.approx(0.85)
    assert sets.n_calibration == 19
    # q = 0.85: "absent" when r <= 0.85, "present" when 1 - r <= 0.85
    np.testing.assert_array_equal(sets.sets([0.1, 0.5, 0.9]), [[True, False], [True, True], [False, True]])


def test_round_trip_and_refusals() -> None:
    sets = ConformalSets(alpha=0.1, quantile=0.42, n_calibration=120)
    assert ConformalSets.from_dict(json.loads(json.dumps(sets.to_dict()))) == sets
    with pytest.raises(ValueError, match="not a split-conformal"):
        ConformalSets.from_dict({**sets.to_dict(), "method": "aps"})
    with pytest.raises(ValueError, match="invalid"):
        ConformalSets.from_dict({**sets.to_dict(), "alpha": 1.5})
    with pytest.raises(ValueError, match="at least 10 rows"):
        calibrate(np.full(9, 0.5), np.zeros(9), alpha=0.1)
    with pytest.raises(ValueError, match="probabilities"):
        calibrate(np.r_[np.full(19, 0.5), np.nan], np.zeros(20))
    with pytest.raises(ValueError, match="0/1"):
        calibrate(np.full(20, 0.5), np.full(20, 2))
    with pytest.raises(ValueError, match="alpha"):
        calibrate(np.full(20, 0.5), np.zeros(20), alpha=0.0)
