"""The models we train (issue 7), as unfitted scikit-learn estimators, and a fitted model's risk.

Four kinds, each named in the CLI (``--model``):

- ``logistic``: L2-regularised logistic regression (classification); median imputation and
  standardisation in the same pipeline, so they are learnt on the training rows only.
- ``lightgbm``: LightGBM gradient-boosted trees (classification); it takes missing values itself.
- ``coxnet``: elastic-net penalised Cox proportional hazards (survival; scikit-survival's
  ``CoxnetSurvivalAnalysis``, Simon et al. 2011, J Stat Softw 39(5)), with a Breslow baseline so
  that it predicts absolute risk; median imputation and standardisation first.
- ``rsf``: random survival forest (survival; Ishwaran et al. 2008, Ann Appl Stat 2(3)), median
  imputation first.

A survival model's risk is the probability of the event by the dataset's horizon,
``1 - S(horizon | x)``; a classifier's risk is the probability of class 1. Both are what a
clinician reads on a card, and what calibration, thresholds and conformal sets are computed on.

Every import of scikit-learn, scikit-survival or LightGBM happens inside a function, so importing
this module needs only numpy (the ``ml`` extra holds the rest).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from medweave.errors import InvalidInput

Kind = Literal["logistic", "lightgbm", "coxnet", "rsf"]
Task = Literal["classification", "survival"]

#: The task each model kind solves.
KINDS: dict[str, Task] = {
    "logistic": "classification",
    "lightgbm": "classification",
    "coxnet": "survival",
    "rsf": "survival",
}

#: The horizon, in days, at which a survival dataset's risk is read: the conventional one for its
#: population where there is one. GBSG2: 5-year recurrence-free survival (Schumacher et al. 1994);
#: WHAS500: 1-year mortality after myocardial infarction (Hosmer, Lemeshow & May 2008, ch. 1);
#: veterans: 6-month survival (follow-up median 80 days); AIDS (ACTG 320): 300 days, inside its
#: 364-day follow-up; FLCHAIN: 10-year mortality (Dispenzieri et al. 2012 report 10-year
#: survival); SUPPORT2: 180-day survival, SUPPORT's own prognostic horizon (Knaus et al. 1995);
#: Framingham: 10-year coronary heart disease, as the Framingham risk scores (Wilson et al. 1998).
HORIZON_DAYS: dict[str, float] = {
    "gbsg2": 1826.0,
    "whas500": 365.0,
    "veterans": 182.0,
    "aids": 300.0,
    "flchain": 3652.0,
    "support2": 180.0,
    "framingham": 3652.0,
}

#: Default hyper-parameters of each kind; ``params`` given to `build` override them.
DEFAULTS: dict[str, dict[str, Any]] = {
    "logistic": {"C": 1.0},
    "lightgbm": {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_child_samples": 20,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
    },
    "coxnet": {"l1_ratio": 0.5, "alpha_min_ratio": 0.01},
    "rsf": {"n_estimators": 300, "min_samples_split": 10, "min_samples_leaf": 15, "max_features": "sqrt"},
}


def task_of(kind: str) -> Task:
    try:
        return KINDS[kind]
    except KeyError:
        raise InvalidInput(f"unknown model {kind!r}; one of: {', '.join(KINDS)}") from None


def build(kind: str, *, seed: int = 0, params: Mapping[str, Any] | None = None, n_jobs: int = 1) -> Any:
    """An unfitted estimator (a scikit-learn Pipeline or LightGBM model) of ``kind``.

    ``params`` override `DEFAULTS` for the model step. For ``coxnet``, ``alpha`` picks one
    penalty (``alphas=[alpha]``); without it the model fits the whole path and predicts with
    its smallest alpha, as scikit-survival does.
    """
    task_of(kind)
    settings = {**DEFAULTS[kind], **(params or {})}
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        return Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
                ("model", LogisticRegression(max_iter=5000, random_state=seed, **settings)),
            ]
        )
    if kind == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(random_state=seed, n_jobs=n_jobs, verbose=-1, **settings)
    if kind == "coxnet":
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        alpha = settings.pop("alpha", None)
        if alpha is not None:
            settings["alphas"] = [float(alpha)]
        return Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
                ("model", CoxnetSurvivalAnalysis(fit_baseline_model=True, **settings)),
            ]
        )
    from sksurv.ensemble import RandomSurvivalForest

    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("model", RandomSurvivalForest(random_state=seed, n_jobs=n_jobs, **settings)),
        ]
    )


@dataclass
class FittedModel:
    """A trained estimator with what is needed to read its risk: the kind, the feature columns in
    order, and for survival the horizon in days."""

    kind: str
    features: tuple[str, ...]
    estimator: Any = field(repr=False)
    horizon: float | None = None

    @property
    def task(self) -> Task:
        return task_of(self.kind)

    def risk(self, x: Any) -> npt.NDArray[np.float64]:
        """Probability of the outcome for each row of ``x`` (a frame with `features` or an array in
        that column order): class 1 for a classifier, the event by `horizon` for a survival model."""
        rows = _matrix(x, self.features)
        if self.task == "classification":
            return np.asarray(self.estimator.predict_proba(rows)[:, 1], dtype=np.float64)
        if self.horizon is None:
            raise InvalidInput("a survival model needs a horizon to give a risk")
        survival = self.estimator.predict_survival_function(rows, return_array=False)
        return np.array([1.0 - float(fn(self.horizon)) for fn in survival], dtype=np.float64)

    def score(self, x: Any) -> npt.NDArray[np.float64]:
        """The model's ranking score, higher = worse: the log-odds or probability for a
        classifier, the linear predictor or cumulative-hazard sum for a survival model."""
        rows = _matrix(x, self.features)
        if self.task == "classification":
            return self.risk(rows)
        return np.asarray(self.estimator.predict(rows), dtype=np.float64)


def fit(
    kind: str,
    x: Any,
    y: npt.NDArray[Any],
    *,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    horizon: float | None = None,
    n_jobs: int = 1,
) -> FittedModel:
    """Fit a model of ``kind`` on the frame ``x`` and the target ``y`` (0/1, or sksurv's structured
    event/time array for survival)."""
    features = tuple(str(c) for c in x.columns)
    estimator = build(kind, seed=seed, params=params, n_jobs=n_jobs)
    rows = _matrix(x, features)
    if task_of(kind) == "survival" and horizon is None:
        raise InvalidInput("a survival model needs a horizon (days)")
    estimator.fit(rows, y)
    return FittedModel(kind=kind, features=features, estimator=estimator, horizon=horizon)


def _matrix(x: Any, features: tuple[str, ...]) -> npt.NDArray[np.float64]:
    """``x`` as a float64 array with the columns in ``features`` order; a frame's columns are
    checked by name, so a model never reads a column in the wrong place."""
    if hasattr(x, "columns"):
        missing = [f for f in features if f not in x.columns]
        if missing:
            raise InvalidInput(f"missing feature columns: {', '.join(missing[:5])}")
        return np.asarray(x.loc[:, list(features)].to_numpy(dtype="float64", na_value=np.nan))
    rows = np.asarray(x, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != len(features):
        raise InvalidInput(f"expected {len(features)} feature columns, got shape {rows.shape}")
    return rows
