"""Evaluation metrics for diagnostic models (issue 7): discrimination, calibration, clinical utility,
bootstrap intervals, and Harrell's c-index. Pure numpy; no I/O.

Binary classification takes ``y`` (outcomes in {0, 1}, or booleans) and ``p`` (predicted
probabilities in [0, 1]); a length mismatch, an empty input, an outcome other than 0/1, or a
probability outside [0, 1] (NaN included) raises ``ValueError``. A case is flagged ("alerted",
"treated") when ``p >= threshold``. Survival takes ``event`` (True = event observed, False =
right-censored), ``time`` and ``risk`` (higher = earlier event expected).

The integrated Brier score is left to scikit-survival, whose inverse-probability-of-censoring
weights need the training data's censoring distribution: ``integrated_brier`` imports it lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

#: Probabilities are clipped to [EPS, 1 - EPS] before taking their logit (calibration).
EPS = 1e-6


# ---- inputs -------------------------------------------------------------------------------------


def _vector(values: npt.ArrayLike, name: str) -> npt.NDArray[Any]:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    return array


def _outcomes(y: npt.ArrayLike, name: str = "y") -> npt.NDArray[np.bool_]:
    array = _vector(y, name)
    if array.dtype == np.bool_:
        return np.asarray(array, dtype=np.bool_)
    if not np.issubdtype(array.dtype, np.number) or not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must hold binary outcomes 0/1 (or booleans)")
    return np.asarray(array == 1, dtype=np.bool_)


def _binary(y: npt.ArrayLike, p: npt.ArrayLike) -> tuple[npt.NDArray[np.bool_], Floats]:
    outcomes = _outcomes(y)
    probs = _vector(p, "p")
    if not np.issubdtype(probs.dtype, np.number) or np.issubdtype(probs.dtype, np.complexfloating):
        raise ValueError(f"p must be real numbers, got dtype {probs.dtype}")
    probs = probs.astype(np.float64)
    if len(outcomes) != len(probs):
        raise ValueError(f"y and p must have the same length, got {len(outcomes)} and {len(probs)}")
    if not ((probs >= 0.0) & (probs <= 1.0)).all():  # False for NaN too
        bad = probs[~((probs >= 0.0) & (probs <= 1.0))][0]
        raise ValueError(f"p must be probabilities in [0, 1], got {bad!r}")
    return outcomes, probs


def _both_classes(y: npt.NDArray[np.bool_], metric: str) -> None:
    if y.all() or not y.any():
        raise ValueError(f"{metric} needs both outcome classes in y, got only {int(y[0])}s")


# ---- discrimination and accuracy ----------------------------------------------------------------


def auroc(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Area under the ROC curve: the Mann-Whitney U statistic divided by n1 * n0, the probability
    that a random case scores higher than a random control, ties counting one half (Hanley & McNeil,
    Radiology 1982;143:29-36). Equals scikit-learn's ``roc_auc_score``. Needs both classes."""
    outcomes, probs = _binary(y, p)
    _both_classes(outcomes, "AUROC")
    _, level = np.unique(probs, return_inverse=True)
    levels = int(level.max()) + 1
    cases = np.bincount(level[outcomes], minlength=levels)
    controls = np.bincount(level[~outcomes], minlength=levels)
    below = np.cumsum(controls) - controls  # controls scoring strictly lower, at each level
    u = float(np.sum(cases * below)) + 0.5 * float(np.sum(cases * controls))
    return u / (float(cases.sum()) * float(controls.sum()))


def average_precision(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Area under the precision-recall curve as average precision, the step-wise sum
    AP = sum_k (R_k - R_{k-1}) P_k over the distinct thresholds from the highest down (no
    interpolation), as scikit-learn's ``average_precision_score``. Needs at least one case."""
    outcomes, probs = _binary(y, p)
    if not outcomes.any():
        raise ValueError("average precision needs at least one positive outcome in y")
    order = np.argsort(-probs, kind="stable")
    ranked = outcomes[order]
    last = np.r_[np.flatnonzero(np.diff(probs[order])), len(probs) - 1]  # end of each tied block
    tp = np.cumsum(ranked)[last]
    precision = tp / (last + 1.0)
    recall = tp / float(tp[-1])
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def brier(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Brier score, the mean squared difference between probability and outcome (Brier, Monthly
    Weather Review 1950;78:1-3); 0 is perfect, 0.25 is a constant 0.5. As ``brier_score_loss``."""
    outcomes, probs = _binary(y, p)
    return float(np.mean((probs - outcomes) ** 2))


# ---- calibration --------------------------------------------------------------------------------


def _logit(p: Floats) -> Floats:
    clipped = np.clip(p, EPS, 1.0 - EPS)
    return np.asarray(np.log(clipped) - np.log1p(-clipped), dtype=np.float64)


def _loglik(y: Floats, eta: Floats) -> float:
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def _newton(x: Floats, y: Floats, offset: Floats, *, max_iter: int, tol: float, what: str) -> Floats:
    """Maximum likelihood for logit P(y = 1) = offset + x @ beta by Newton-Raphson from beta = 0,
    halving a step (up to 30 times) while it lowers the log-likelihood."""
    beta = np.zeros(x.shape[1])
    current = _loglik(y, offset)
    for _ in range(max_iter):
        mu = np.exp(-np.logaddexp(0.0, -(offset + x @ beta)))  # the logistic function, overflow-free
        info = x.T @ (x * (mu * (1.0 - mu))[:, None])
        eigen = np.linalg.eigvalsh(info)
        if not eigen[-1] > 0.0 or eigen[0] <= 1e-12 * eigen[-1]:
            raise ValueError(
                f"{what}: the information matrix is singular (constant or separated predictions)"
            )
        newton = step = np.linalg.solve(info, x.T @ (y - mu))
        for _ in range(30):
            candidate = _loglik(y, offset + x @ (beta + step))
            if candidate >= current - 1e-12 * abs(current):
                break
            step = step / 2.0
        beta = beta + step
        current = candidate
        if float(np.max(np.abs(newton))) < tol:
            return beta
    raise ValueError(
        f"{what}: Newton-Raphson did not converge in {max_iter} iterations "
        "(are the outcomes perfectly separated by the predictions?)"
    )


def calibration_intercept(
    y: npt.ArrayLike, p: npt.ArrayLike, *, max_iter: int = 100, tol: float = 1e-10
) -> float:
    """Calibration-in-the-large: a in logit P(y = 1) = a + logit(p), the logit as a fixed offset
    (slope 1). 0 is ideal; below 0 the model over-predicts risk on average, above 0 it
    under-predicts. Van Calster et al., "Calibration: the Achilles heel of predictive analytics",
    BMC Med 2019;17:230; Steyerberg, Clinical Prediction Models, 2nd ed. 2019, ch. 15.

    ``p`` is clipped to [1e-6, 1 - 1e-6] before the logit. The fit is Newton-Raphson from 0, a step
    halved while it would lower the log-likelihood; it has converged once a full Newton step moves
    no coefficient by more than ``tol``. There is no finite maximum when the information matrix is
    singular (constant predictions, or fitted probabilities driven to 0 and 1 by outcomes the
    predictions separate) or after ``max_iter`` steps: both raise ValueError, never a guess."""
    outcomes, probs = _binary(y, p)
    _both_classes(outcomes, "the calibration intercept")
    target = outcomes.astype(np.float64)
    ones = np.ones((len(target), 1))
    beta = _newton(ones, target, _logit(probs), max_iter=max_iter, tol=tol, what="calibration intercept")
    return float(beta[0])


def calibration_slope(
    y: npt.ArrayLike, p: npt.ArrayLike, *, max_iter: int = 100, tol: float = 1e-10
) -> float:
    """Calibration slope: b in the logistic regression logit P(y = 1) = a + b logit(p). 1 is
    ideal; below 1 the predictions are too extreme (overfitting), above 1 too moderate. Same
    sources, clipping and convergence handling as ``calibration_intercept``."""
    outcomes, probs = _binary(y, p)
    _both_classes(outcomes, "the calibration slope")
    target = outcomes.astype(np.float64)
    design = np.column_stack([np.ones(len(target)), _logit(probs)])
    offset = np.zeros(len(target))
    beta = _newton(design, target, offset, max_iter=max_iter, tol=tol, what="calibration slope")
    return float(beta[1])


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per non-empty bin, in increasing order of predicted risk."""

    mean_predicted: Floats
    observed: Floats  # fraction of outcomes equal to 1
    counts: Ints


def reliability_curve(y: npt.ArrayLike, p: npt.ArrayLike, *, bins: int = 10) -> ReliabilityCurve:
    """Reliability (calibration) curve over ``bins`` quantile bins of ``p``: the edges are the
    0, 1/bins, ..., 1 quantiles (linear interpolation), a value on an inner edge falls in the lower
    bin, and bins left empty by ties are dropped. As scikit-learn's ``calibration_curve(...,
    strategy="quantile")``, plus the counts. Van Calster et al., BMC Med 2019;17:230."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    outcomes, probs = _binary(y, p)
    edges = np.percentile(probs, np.linspace(0.0, 1.0, bins + 1) * 100.0)  # as sklearn, rounding too
    index = np.searchsorted(edges[1:-1], probs)
    counts = np.bincount(index, minlength=bins)
    sums = np.bincount(index, weights=probs, minlength=bins)
    events = np.bincount(index, weights=outcomes.astype(np.float64), minlength=bins)
    kept = counts > 0
    return ReliabilityCurve(
        mean_predicted=sums[kept] / counts[kept],
        observed=events[kept] / counts[kept],
        counts=counts[kept].astype(np.int64),
    )


# ---- clinical utility ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionCurve:
    """Net benefit at each threshold, of the model and of the two default strategies."""

    thresholds: Floats
    model: Floats
    treat_all: Floats
    treat_none: Floats


def net_benefit(y: npt.ArrayLike, p: npt.ArrayLike, thresholds: npt.ArrayLike) -> DecisionCurve:
    """Decision-curve analysis (Vickers & Elkin, Med Decis Making 2006;26:565-574): at threshold
    probability t, treating those with p >= t has net benefit TP/n - FP/n * t / (1 - t). Treat-all
    has prevalence - (1 - prevalence) * t / (1 - t); treat-none has 0. Thresholds lie in [0, 1)."""
    outcomes, probs = _binary(y, p)
    ts = _vector(thresholds, "thresholds").astype(np.float64)
    if not ((ts >= 0.0) & (ts < 1.0)).all():
        raise ValueError("thresholds must lie in [0, 1)")
    n = float(len(probs))
    cases, controls = np.sort(probs[outcomes]), np.sort(probs[~outcomes])
    tp = (len(cases) - np.searchsorted(cases, ts, side="left")) / n  # cases with p >= t
    fp = (len(controls) - np.searchsorted(controls, ts, side="left")) / n
    odds = ts / (1.0 - ts)
    prevalence = float(outcomes.mean())
    return DecisionCurve(
        thresholds=ts,
        model=tp - fp * odds,
        treat_all=prevalence - (1.0 - prevalence) * odds,
        treat_none=np.zeros_like(ts),
    )


@dataclass(frozen=True)
class ThresholdMetrics:
    """The confusion table of ``p >= threshold`` and its rates; a rate whose denominator is 0
    (PPV with no alerts, sensitivity with no cases, specificity with no controls) is NaN."""

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    alert_rate: float  # (tp + fp) / n
    ppv: float  # tp / (tp + fp)
    sensitivity: float  # tp / (tp + fn)
    specificity: float  # tn / (tn + fp)


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def at_threshold(y: npt.ArrayLike, p: npt.ArrayLike, threshold: float) -> ThresholdMetrics:
    """Alert rate, positive predictive value, sensitivity and specificity of alerting when
    ``p >= threshold``, the quantities a clinic needs to staff an alert."""
    outcomes, probs = _binary(y, p)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold!r}")
    alert = probs >= threshold
    tp, fp = int(np.sum(alert & outcomes)), int(np.sum(alert & ~outcomes))
    fn, tn = int(np.sum(~alert & outcomes)), int(np.sum(~alert & ~outcomes))
    return ThresholdMetrics(
        threshold=float(threshold),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        alert_rate=(tp + fp) / len(probs),
        ppv=_ratio(tp, tp + fp),
        sensitivity=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
    )


# ---- uncertainty --------------------------------------------------------------------------------


class Interval(NamedTuple):
    """A point estimate and its confidence interval."""

    estimate: float
    low: float
    high: float


def bootstrap_ci(
    metric: Callable[..., float],
    *arrays: npt.ArrayLike,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int | np.random.Generator = 0,
    stratify: bool = True,
    max_degenerate: float = 0.1,
) -> Interval:
    """Percentile bootstrap interval (Efron & Tibshirani, An Introduction to the Bootstrap, 1993,
    ch. 13) for ``metric(*arrays)``: the estimate on the full data, and the (1 - level) / 2 and
    (1 + level) / 2 quantiles of the metric over ``resamples`` resamples of the rows, drawn
    with replacement by ``numpy.random.default_rng(seed)`` (the same seed gives the same interval).

    With ``stratify`` (the default) the first array is the outcome (``y``, or ``event`` for
    ``concordance_index``) and must be binary; each class is resampled to its own size, so both
    classes appear in every resample. A resample is degenerate when the metric raises ValueError
    on it (a single class, no comparable pair, no convergence) or returns a non-finite value;
    degenerate resamples are dropped, and if more than ``max_degenerate`` of them are, ValueError
    is raised rather than an interval from an unrepresentative remainder."""
    if not arrays:
        raise ValueError("bootstrap_ci needs the metric's input arrays")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    data = [_vector(a, f"array {i}") for i, a in enumerate(arrays)]
    n = len(data[0])
    if any(len(a) != n for a in data):
        raise ValueError(f"the arrays must have the same length, got {[len(a) for a in data]}")
    strata = [np.arange(n)]
    if stratify:
        first = _outcomes(data[0], "the first array (stratify=True)")
        strata = [np.flatnonzero(first), np.flatnonzero(~first)]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    estimate = float(metric(*data))
    values: list[float] = []
    for _ in range(resamples):
        rows = np.concatenate([s[rng.integers(0, len(s), len(s))] for s in strata if len(s)])
        try:
            value = float(metric(*(a[rows] for a in data)))
        except ValueError:
            continue
        if np.isfinite(value):
            values.append(value)
    degenerate = resamples - len(values)
    if not values or degenerate > max_degenerate * resamples:
        raise ValueError(
            f"{degenerate} of {resamples} bootstrap resamples were degenerate (over {max_degenerate:.0%})"
        )
    low, high = np.quantile(values, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return Interval(estimate, float(low), float(high))


# ---- survival -----------------------------------------------------------------------------------


def concordance_index(
    event: npt.ArrayLike, time: npt.ArrayLike, risk: npt.ArrayLike, *, tied_tol: float = 1e-8
) -> float:
    """Harrell's c-index for right-censored data (Harrell et al., JAMA 1982;247:2543-2546), as
    scikit-survival's ``concordance_index_censored``: a pair is comparable when the shorter time
    ends in an event, or when the times are equal and only one ends in an event (that one counts
    as shorter); it is concordant when the shorter has the higher risk, and counts 0.5 when the
    risks differ by at most ``tied_tol``. ValueError if there is no comparable pair."""
    events = _outcomes(event, "event")
    times = _vector(time, "time").astype(np.float64)
    risks = _vector(risk, "risk").astype(np.float64)
    if not len(events) == len(times) == len(risks):
        raise ValueError(
            f"event, time and risk must have the same length, got {len(events)}, {len(times)}, {len(risks)}"
        )
    if not (np.isfinite(times).all() and np.isfinite(risks).all()):
        raise ValueError("time and risk must be finite")
    which = np.flatnonzero(events)
    comparable = concordant = tied = 0
    step = max(1, 2**22 // len(times))  # rows of the pair matrix per block: bounded memory
    for start in range(0, len(which), step):
        rows = which[start : start + step]
        t_i, r_i = times[rows, None], risks[rows, None]
        pairs = (t_i < times[None, :]) | ((t_i == times[None, :]) & ~events[None, :])
        ties = np.abs(risks[None, :] - r_i) <= tied_tol
        comparable += int(pairs.sum())
        tied += int((pairs & ties).sum())
        concordant += int((pairs & ~ties & (risks[None, :] < r_i)).sum())
    if comparable == 0:
        raise ValueError("no comparable pairs: the c-index needs an event before another time")
    return (concordant + 0.5 * tied) / comparable


def integrated_brier(
    survival_train: npt.ArrayLike, survival_test: npt.ArrayLike, estimate: npt.ArrayLike, times: npt.ArrayLike
) -> float:
    """Integrated Brier score, left to scikit-survival's ``integrated_brier_score`` (Graf et al.,
    Stat Med 1999;18:2529-2545), which weights by the censoring distribution of
    ``survival_train``: structured arrays of (event, time), ``estimate`` the survival probability
    of each test row at each of ``times``. ImportError with the fix if scikit-survival is missing."""
    try:
        from sksurv.metrics import integrated_brier_score
    except ImportError as exc:
        raise ImportError(
            "integrated_brier needs scikit-survival; install it with pip install 'medweave[ml]'"
        ) from exc
    return float(integrated_brier_score(survival_train, survival_test, estimate, times))
