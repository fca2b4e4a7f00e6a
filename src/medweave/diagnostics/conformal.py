"""Split conformal prediction sets for a binary risk (issue 7): the outcome of a classifier, or the
event by the horizon for a survival model. Calibrating needs MAPIE; serving a set needs numpy only.

Method: split conformal prediction with the LAC score (Sadinle, Lei & Wasserman, "Least Ambiguous
Set-Valued Classifiers with Bounded Error Levels", JASA 2019;114:223-234), as laid out in
Angelopoulos & Bates, "A Gentle Introduction to Conformal Prediction and Distribution-Free
Uncertainty Quantification", arXiv:2107.07511 (2021), section 1:

- the score of a calibration row is ``s = 1 - p(true outcome)``, with p(1) = risk, p(0) = 1 - risk;
- with n calibration rows, ``q = the ceil((n + 1)(1 - alpha))-th smallest score``;
- a new row's set holds every outcome y with ``1 - p(y) <= q``.

If calibration and new rows are exchangeable, the set holds the true outcome with probability at
least 1 - alpha (ibid., section 1 and appendix D; Vovk, Gammerman & Shafer, "Algorithmic
Learning in a Random World", 2005). The guarantee is marginal, over patients, not for each patient.
A survival outcome is only known for rows followed to the horizon or with an event before it, so
the caller calibrates on those rows; their selection is where exchangeability can fail.

With two outcomes the set is {absent}, {present}, both (the model cannot tell at this level), or
empty (only when q < 0.5: neither outcome is plausible enough, an atypical row).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

#: A set is compared to the quantile with this slack, ``1 - p(y) - q <= TOLERANCE``, exactly as
#: MAPIE does (``mapie._machine_precision.EPSILON``, used by ``LACConformityScore``), so that a
#: set served from the stored quantile is the set MAPIE would give.
TOLERANCE = 1e-8

METHOD = "split-conformal-lac"


def _risks(risk: npt.ArrayLike) -> npt.NDArray[np.float64]:
    values = np.asarray(risk, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"risk must be one-dimensional, got shape {values.shape}")
    if not ((values >= 0.0) & (values <= 1.0)).all():  # False for NaN too
        raise ValueError("risk must hold probabilities in [0, 1]")
    return values


def _outcomes(outcome: npt.ArrayLike, n: int) -> npt.NDArray[np.bool_]:
    values = np.asarray(outcome)
    if values.shape != (n,):
        raise ValueError(f"outcome must have shape ({n},), got {values.shape}")
    if values.dtype != np.bool_ and not np.isin(values, (0, 1)).all():
        raise ValueError("outcome must hold 0/1 (or booleans)")
    return np.asarray(values == 1, dtype=np.bool_)


@dataclass(frozen=True)
class ConformalSets:
    """A calibrated LAC quantile: ``alpha`` the miscoverage asked for, ``quantile`` the score
    threshold q, ``n_calibration`` the rows it was computed on."""

    alpha: float
    quantile: float
    n_calibration: int

    def sets(self, risk: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Shape (n, 2): column 0 is True when "outcome absent" is in the set (``risk <= q``),
        column 1 when "outcome present" is (``1 - risk <= q``). Pure numpy, for serving."""
        r = _risks(risk)
        probabilities = np.column_stack([1.0 - r, r])
        return np.asarray((1.0 - probabilities) - self.quantile <= TOLERANCE, dtype=np.bool_)

    def coverage(self, risk: npt.ArrayLike, outcome: npt.ArrayLike) -> float:
        """Empirical coverage: the fraction of rows whose set holds their outcome."""
        included = self.sets(risk)
        y = _outcomes(outcome, len(included))
        if not len(y):
            raise ValueError("coverage needs at least one row")
        return float(np.mean(included[np.arange(len(y)), y.astype(np.int64)]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": METHOD,
            "alpha": self.alpha,
            "quantile": self.quantile,
            "n_calibration": self.n_calibration,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConformalSets:
        if data.get("method", METHOD) != METHOD:
            raise ValueError(f"not a {METHOD} calibration: {data.get('method')!r}")
        alpha, quantile = float(data["alpha"]), float(data["quantile"])
        n = int(data["n_calibration"])
        if not 0.0 < alpha < 1.0 or not 0.0 <= quantile <= 1.0 or n < 1:
            raise ValueError(f"invalid conformal calibration: {data!r}")
        return cls(alpha=alpha, quantile=quantile, n_calibration=n)


def minimum_rows(alpha: float) -> int:
    """The fewest calibration rows MAPIE accepts at ``alpha``: n >= max(1/alpha, 1/(1 - alpha))
    (``mapie.utils._check_alpha_and_n_samples``). The textbook needs n >= 1/alpha - 1 for
    ceil((n + 1)(1 - alpha)) <= n, a finite quantile; MAPIE asks one row more."""
    return math.ceil(max(1.0 / alpha, 1.0 / (1.0 - alpha)))


def calibrate(risk: npt.ArrayLike, outcome: npt.ArrayLike, *, alpha: float = 0.1) -> ConformalSets:
    """The LAC quantile of calibration rows (held out from training), through MAPIE's
    ``SplitConformalClassifier(prefit=True, conformity_score="lac")`` over the risks themselves.

    ``alpha`` = 0.1 (90% sets) is the level Angelopoulos & Bates use throughout their examples.
    ValueError for fewer rows than `minimum_rows`, or bad inputs."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    r = _risks(risk)
    y = _outcomes(outcome, len(r))
    if len(r) < minimum_rows(alpha):
        raise ValueError(
            f"conformal calibration at alpha={alpha} needs at least {minimum_rows(alpha)} rows, got {len(r)}"
        )
    from mapie.classification import SplitConformalClassifier
    from mapie.conformity_scores import LACConformityScore

    score = LACConformityScore()
    conformal = SplitConformalClassifier(
        _prefit_risk(),
        confidence_level=1.0 - alpha,
        conformity_score=score,
        prefit=True,
    )
    rows = r[:, None]
    with warnings.catch_warnings():
        # MAPIE warns when the calibration rows hold one outcome only, as a hint that they may not
        # be the training population. The quantile, and its guarantee, need exchangeability only.
        warnings.filterwarnings(
            "ignore", message=".*conformalization dataset has less labels", category=UserWarning
        )
        conformal.conformalize(rows, y.astype(np.int64))
    conformal.predict_set(rows[:1])  # MAPIE computes the quantile when it first predicts a set
    quantile = float(np.asarray(score.quantiles_).ravel()[0])
    return ConformalSets(alpha=float(alpha), quantile=quantile, n_calibration=len(r))


def _prefit_risk() -> Any:
    """A fitted two-class classifier whose only feature is the risk itself: ``predict_proba``
    returns [1 - risk, risk]. It lets MAPIE score risks computed elsewhere, by any model."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class PrefitRisk(ClassifierMixin, BaseEstimator):
        def fit(self, x: Any = None, y: Any = None) -> PrefitRisk:
            self.classes_ = np.array([0, 1])
            self.n_features_in_ = 1
            return self

        def predict_proba(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
            r = np.asarray(x, dtype=np.float64)[:, 0]
            return np.column_stack([1.0 - r, r])

        def predict(self, x: npt.ArrayLike) -> npt.NDArray[np.int64]:
            return np.asarray(np.asarray(x, dtype=np.float64)[:, 0] >= 0.5, dtype=np.int64)

    return PrefitRisk().fit()
