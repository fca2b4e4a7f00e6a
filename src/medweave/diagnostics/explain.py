"""Explanations of a model's predictions (issue 7): each feature's contribution to one prediction,
and each feature's importance over a population, both as SHAP values (Lundberg & Lee, "A Unified
Approach to Interpreting Model Predictions", NeurIPS 2017).

The served model runs in ONNX Runtime without the fitted estimator, so a per-prediction
explanation is computed from a JSON spec that `explainer_spec` writes at training time:

- ``logistic`` and ``coxnet`` (``type: "linear"``): exact SHAP values of a linear model under
  feature independence, ``phi_j = beta_j (z_j - mean_j)``, where z is the row after the model's
  own median imputation and standardisation and mean_j is the background mean of z_j (Lundberg &
  Lee 2017, "Linear SHAP"; shap's ``LinearExplainer`` with an ``Independent`` masker). They add
  up to the prediction minus the base value ``intercept + beta . mean``, on the log-odds scale
  (``link: "logit"``) or the log relative hazard (``link: "log_hazard"``, the Cox linear
  predictor). The spec holds the medians, scaler centre and scale, coefficients, intercept and
  background means: numpy reproduces them.
- ``lightgbm`` (``type: "tree"``): TreeSHAP (Lundberg et al., "From local explanations to global
  understanding with explainable AI for trees", Nat Mach Intell 2020;2:56-67), computed by
  LightGBM itself (``predict(pred_contrib=True)``) from the booster's text dump, on the log-odds
  scale. Path-dependent TreeSHAP takes the training rows' cover in each leaf as its background,
  so the ``background`` given to `explainer_spec` is not used for trees.
- ``rsf``: no spec (a forest of survival trees has no compact explanation to serve); its global
  importance is model-agnostic, `global_importance` below.

No pickle: every spec survives ``json.dumps``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

    from medweave.diagnostics.estimators import FittedModel

Floats = npt.NDArray[np.float64]

#: Background rows for the model-agnostic (permutation) explainer. Its cost is rows x (2f + 1) x
#: background predictions, so the background is kept small; 25 rows estimate each feature's mean
#: effect to about a fifth of its spread (the standard error of a mean of 25 draws).
BACKGROUND_ROWS = 25

#: The link scale of each servable kind's contributions.
LINKS = {"logistic": "logit", "coxnet": "log_hazard", "lightgbm": "logit"}


def _floats(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def _columns(frame: pd.DataFrame, features: tuple[str, ...]) -> Floats:
    """The frame's ``features`` columns, by name and in the model's order, as float64."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ValueError(f"missing feature columns: {', '.join(missing[:5])}")
    return np.asarray(frame.loc[:, list(features)].to_numpy(dtype="float64", na_value=np.nan))


def _linear_parts(model: FittedModel) -> tuple[Any, Any, Floats, float]:
    """The imputer, the scaler, the coefficients and the intercept the model predicts with."""
    steps = model.estimator.named_steps
    final = steps["model"]
    if model.kind == "logistic":
        coef, intercept = np.asarray(final.coef_, dtype=np.float64)[0], float(final.intercept_[0])
    else:
        # CoxnetSurvivalAnalysis.predict(X, alpha=None) uses the last alpha of its path and returns
        # X @ coef_[:, -1] - offset_[-1] (scikit-survival, sksurv/linear_model/coxnet.py).
        coef, intercept = np.asarray(final.coef_, dtype=np.float64)[:, -1], -float(final.offset_[-1])
    return steps["impute"], steps["scale"], coef, intercept


def explainer_spec(model: FittedModel, background: pd.DataFrame) -> dict[str, Any] | None:
    """A JSON-able spec from which `contributions` explains any row without the estimator; None
    for a kind that cannot be served this way (``rsf``). ``background`` (the training rows, say)
    sets the linear base value: the mean prediction over it."""
    features = list(model.features)
    if model.kind in ("logistic", "coxnet"):
        imputer, scaler, coef, intercept = _linear_parts(model)
        z = scaler.transform(imputer.transform(_columns(background, model.features)))
        mean = np.asarray(z, dtype=np.float64).mean(axis=0)
        return {
            "type": "linear",
            "kind": model.kind,
            "link": LINKS[model.kind],
            "features": features,
            "medians": _floats(imputer.statistics_),
            "center": _floats(scaler.mean_),
            "scale": _floats(scaler.scale_),
            "coefficients": _floats(coef),
            "intercept": intercept,
            "background_mean": _floats(mean),
            "background_rows": len(z),
            "base_value": float(intercept + coef @ mean),
        }
    if model.kind == "lightgbm":
        text = model.estimator.booster_.model_to_string()
        empty = np.full((1, len(features)), np.nan)
        base = float(_booster(text).predict(empty, pred_contrib=True)[0, -1])
        return {
            "type": "tree",
            "kind": model.kind,
            "link": LINKS[model.kind],
            "features": features,
            "model": text,
            "base_value": base,
        }
    return None


@functools.lru_cache(maxsize=4)
def _booster(text: str) -> Any:
    import lightgbm

    return lightgbm.Booster(model_str=text)


def _rows(spec: dict[str, Any], x: npt.ArrayLike) -> Floats:
    rows = np.asarray(x, dtype=np.float64)
    width = len(spec["features"])
    if rows.ndim != 2 or rows.shape[1] != width:
        raise ValueError(f"expected rows of {width} features, got shape {rows.shape}")
    return rows


def contributions(spec: dict[str, Any], x: npt.ArrayLike) -> tuple[Floats, float]:
    """SHAP values of each row of ``x`` (shape (n, f), the spec's feature order, NaN for a missing
    value), shape (n, f), and the base value, on the spec's link scale: each row's values add up
    to its prediction on that scale minus the base value."""
    rows = _rows(spec, x)
    if spec["type"] == "linear":
        filled = np.where(np.isnan(rows), np.asarray(spec["medians"]), rows)
        z = (filled - np.asarray(spec["center"])) / np.asarray(spec["scale"])
        phi = np.asarray(spec["coefficients"]) * (z - np.asarray(spec["background_mean"]))
        return np.asarray(phi, dtype=np.float64), float(spec["base_value"])
    if spec["type"] == "tree":
        if not len(rows):
            return np.zeros((0, rows.shape[1])), float(spec["base_value"])
        out = np.asarray(_booster(spec["model"]).predict(rows, pred_contrib=True), dtype=np.float64)
        return out[:, :-1], float(spec["base_value"])
    raise ValueError(f"unknown explainer spec type {spec.get('type')!r}")


def top_features(spec: dict[str, Any], x_row: npt.ArrayLike, k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` features that moved this prediction most, by absolute contribution (ties in
    feature order): name, the row's value (None where missing) and the contribution."""
    row = np.asarray(x_row, dtype=np.float64).ravel()
    phi = contributions(spec, row[None, :])[0][0]
    order = np.argsort(-np.abs(phi), kind="stable")[: max(k, 0)]
    return [
        {
            "feature": spec["features"][j],
            "value": None if np.isnan(row[j]) else float(row[j]),
            "contribution": float(phi[j]),
        }
        for j in order
    ]


def global_importance(
    model: FittedModel,
    x: pd.DataFrame,
    *,
    seed: int = 0,
    max_rows: int = 200,
    background_rows: int = BACKGROUND_ROWS,
) -> list[dict[str, Any]]:
    """Each feature's mean absolute SHAP value over at most ``max_rows`` rows of ``x`` (a seeded
    sample without replacement when ``x`` has more), highest first: ``[{"feature",
    "importance"}]`` (Lundberg et al. 2020, the global summary of local explanations).

    Servable kinds use their exact spec, ``x`` as the background, on the link scale. ``rsf`` uses
    shap's ``PermutationExplainer`` (Strumbelj & Kononenko, Knowl Inf Syst 2014;41:647-665) on the
    risk by the horizon (a probability), with ``background_rows`` rows of ``x`` as an
    ``Independent`` masker and one antithetic permutation per row (2f + 1 evaluations, exact
    for an additive model); its cost is about max_rows x (2f + 1) x background_rows predictions.
    The same seed gives the same result."""
    rows = _columns(x, model.features)
    rng = np.random.default_rng(seed)
    sample = rows if len(rows) <= max_rows else rows[np.sort(rng.choice(len(rows), max_rows, replace=False))]
    spec = explainer_spec(model, x)
    if spec is not None:
        phi = contributions(spec, sample)[0]
    else:
        background = rows[rng.choice(len(rows), min(background_rows, len(rows)), replace=False)]
        phi = _permutation_shap(model, sample, background, seed=seed)
    importance = np.abs(phi).mean(axis=0) if len(phi) else np.zeros(len(model.features))
    order = np.argsort(-importance, kind="stable")
    return [{"feature": model.features[j], "importance": float(importance[j])} for j in order]


def _permutation_shap(model: FittedModel, rows: Floats, background: Floats, *, seed: int) -> Floats:
    """shap's PermutationExplainer over ``model.risk``. It draws its permutations from numpy's
    global generator, seeded from ``seed``; the caller's global state is put back afterwards."""
    import shap

    state = np.random.get_state()
    try:
        explainer = shap.PermutationExplainer(
            model.risk, shap.maskers.Independent(background, max_samples=len(background)), seed=seed
        )
        explanation = explainer(rows, max_evals=2 * rows.shape[1] + 1, silent=True)
    finally:
        np.random.set_state(state)
    return np.asarray(explanation.values, dtype=np.float64)
