"""Explanations against shap's own explainers (LinearExplainer, TreeExplainer), local accuracy
against each model's own prediction, the JSON round trip, and the permutation explainer's seed."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("shap")
pytest.importorskip("sksurv")

import shap

from medweave.diagnostics import datasets, estimators
from medweave.diagnostics.explain import (
    _permutation_shap,
    contributions,
    global_importance,
    top_features,
)
from medweave.diagnostics.explain import explainer_spec as _explainer_spec


def explainer_spec(model: estimators.FittedModel, background: pd.DataFrame) -> dict[str, Any]:
    spec = _explainer_spec(model, background)
    assert spec is not None
    return spec


def _with_gaps(frame: pd.DataFrame, seed: int = 3) -> pd.DataFrame:
    """A copy with about 5% of the values missing, so imputation is exercised."""
    rng = np.random.default_rng(seed)
    return frame.mask(rng.uniform(size=frame.shape) < 0.05)


@pytest.fixture(scope="module")
def wdbc() -> datasets.Dataset:
    return datasets.load("wdbc")


@pytest.fixture(scope="module")
def gbsg2() -> datasets.Dataset:
    return datasets.load("gbsg2")


def _linear_reference(model: estimators.FittedModel, background: pd.DataFrame, rows: pd.DataFrame):
    """shap's LinearExplainer on the model's last step, over z = the pipeline's impute + scale."""
    pipeline = model.estimator

    def z(frame: pd.DataFrame) -> np.ndarray:
        return pipeline[:-1].transform(frame.loc[:, list(model.features)].to_numpy(dtype=float))

    final = pipeline.named_steps["model"]
    linear = final if model.kind == "logistic" else (final.coef_[:, -1], -final.offset_[-1])
    explainer = shap.LinearExplainer(linear, masker=shap.maskers.Independent(z(background), max_samples=1000))
    return explainer(z(rows)).values, float(np.ravel(explainer.expected_value)[0])


@pytest.mark.parametrize("kind", ["logistic", "coxnet"])
def test_linear_contributions_are_linear_shap(
    kind: str, wdbc: datasets.Dataset, gbsg2: datasets.Dataset
) -> None:
    data = wdbc if kind == "logistic" else gbsg2
    model = estimators.fit(kind, data.features, data.target, horizon=1826.0 if kind == "coxnet" else None)
    background, rows = data.features.iloc[:300], _with_gaps(data.features.iloc[300:])
    spec = json.loads(json.dumps(explainer_spec(model, background), allow_nan=False))
    assert spec["link"] == {"logistic": "logit", "coxnet": "log_hazard"}[kind]
    phi, base = contributions(spec, rows.to_numpy(dtype=float))

    expected, expected_base = _linear_reference(model, background, rows)
    np.testing.assert_allclose(phi, expected, atol=1e-6, rtol=0)
    assert base == pytest.approx(expected_base, abs=1e-6)
    # local accuracy against the model's own prediction on its link scale
    x = rows.to_numpy(dtype=float)
    margin = model.estimator.decision_function(x) if kind == "logistic" else model.score(x)
    np.testing.assert_allclose(phi.sum(axis=1) + base, margin, atol=1e-9, rtol=0)


def test_coxnet_explains_the_alpha_it_predicts_with(gbsg2: datasets.Dataset) -> None:
    # A path of alphas: the spec must use the last one, as predict(alpha=None) does; a single
    # pinned alpha must be explained too.
    for params in ({}, {"alpha": 0.05}):
        model = estimators.fit("coxnet", gbsg2.features, gbsg2.target, horizon=1826.0, params=params)
        spec = explainer_spec(model, gbsg2.features)
        phi, base = contributions(spec, gbsg2.features.to_numpy(dtype=float))
        np.testing.assert_allclose(phi.sum(axis=1) + base, model.score(gbsg2.features), atol=1e-9)
    assert np.count_nonzero(spec["coefficients"]) < len(spec["features"])  # that alpha is sparse


def test_lightgbm_contributions_are_treeshap(wdbc: datasets.Dataset) -> None:
    model = estimators.fit("lightgbm", wdbc.features, wdbc.target, params={"n_estimators": 60})
    spec = json.loads(json.dumps(explainer_spec(model, wdbc.features)))
    rows = _with_gaps(wdbc.features).to_numpy(dtype=float)
    phi, base = contributions(spec, rows)

    explainer = shap.TreeExplainer(model.estimator)
    np.testing.assert_allclose(phi, explainer(rows).values, atol=1e-6, rtol=0)
    assert base == pytest.approx(float(np.ravel(explainer.expected_value)[0]), abs=1e-6)
    raw = model.estimator.predict(rows, raw_score=True)
    np.testing.assert_allclose(phi.sum(axis=1) + base, raw, atol=1e-9, rtol=0)
    empty, same_base = contributions(spec, np.zeros((0, len(spec["features"]))))
    assert empty.shape == (0, len(spec["features"])) and same_base == base


def test_top_features(wdbc: datasets.Dataset) -> None:
    model = estimators.fit("logistic", wdbc.features, wdbc.target)
    spec = explainer_spec(model, wdbc.features)
    row = wdbc.features.iloc[7].to_numpy(dtype=float).copy()
    row[3] = np.nan
    top = top_features(spec, row, k=4)
    phi = contributions(spec, row[None, :])[0][0]
    assert [t["contribution"] for t in top] == sorted(phi, key=abs, reverse=True)[:4]
    assert all(t["feature"] == spec["features"][list(phi).index(t["contribution"])] for t in top)
    missing = top_features(spec, row, k=len(row))
    assert next(t for t in missing if t["feature"] == spec["features"][3])["value"] is None
    json.dumps(missing, allow_nan=False)


def test_global_importance_of_servable_kinds_is_mean_absolute_shap(wdbc: datasets.Dataset) -> None:
    model = estimators.fit("lightgbm", wdbc.features, wdbc.target, params={"n_estimators": 30})
    ranking = global_importance(model, wdbc.features, max_rows=len(wdbc.features))
    phi = contributions(explainer_spec(model, wdbc.features), wdbc.features.to_numpy(dtype=float))[0]
    mean = dict(zip(model.features, np.abs(phi).mean(axis=0), strict=True))
    assert [r["feature"] for r in ranking] == sorted(mean, key=lambda f: -mean[f])
    assert all(r["importance"] == pytest.approx(mean[r["feature"]]) for r in ranking)
    sampled = global_importance(model, wdbc.features, max_rows=100, seed=1)
    assert sampled == global_importance(model, wdbc.features, max_rows=100, seed=1)
    assert sampled != global_importance(model, wdbc.features, max_rows=100, seed=2)


def test_random_survival_forest_importance() -> None:
    data = datasets.load("veterans")
    params = {"n_estimators": 15, "min_samples_leaf": 10}
    model = estimators.fit("rsf", data.features, data.target, horizon=182.0, params=params)
    assert _explainer_spec(model, data.features) is None

    np.random.seed(11)
    before = np.random.random_sample()
    np.random.seed(11)
    ranking = global_importance(model, data.features, max_rows=12, background_rows=10, seed=4)
    assert np.random.random_sample() == before  # the global generator is left as it was
    assert ranking == global_importance(model, data.features, max_rows=12, background_rows=10, seed=4)
    assert sorted(r["feature"] for r in ranking) == sorted(model.features)
    values = [r["importance"] for r in ranking]
    assert values == sorted(values, reverse=True) and values[0] > 0

    # a feature held constant in every row and the background moves no prediction: importance 0
    flat = data.features.assign(Age_in_years=60.0)
    importance = {r["feature"]: r["importance"] for r in global_importance(model, flat, max_rows=12)}
    assert importance["Age_in_years"] == 0.0 and max(importance.values()) > 0

    # local accuracy of the permutation values: they add up to risk minus the mean background risk
    x = data.features.to_numpy(dtype=float)
    rows, background = x[:8], x[50:60]
    phi = _permutation_shap(model, rows, background, seed=0)
    expected = model.risk(rows) - model.risk(background).mean()
    np.testing.assert_allclose(phi.sum(axis=1), expected, atol=1e-9)


def test_bad_specs_and_rows_are_refused(wdbc: datasets.Dataset) -> None:
    model = estimators.fit("logistic", wdbc.features, wdbc.target)
    spec = explainer_spec(model, wdbc.features)
    with pytest.raises(ValueError, match="30 features"):
        contributions(spec, np.zeros((2, 29)))
    with pytest.raises(ValueError, match="unknown explainer spec"):
        contributions({**spec, "type": "kernel"}, np.zeros((1, 30)))
    with pytest.raises(ValueError, match="missing feature columns"):
        explainer_spec(model, wdbc.features.drop(columns=["mean radius"]))
