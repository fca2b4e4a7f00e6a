"""Train one model on one dataset under one protocol, and evaluate it on held-out rows only (issue 7).

`train` fits a model of each split of the protocol (`protocols.plan`) on the split's training rows
and predicts its held-out rows; every metric is computed from those held-out predictions, never
from a row the predicting model was fitted on. The served model is refitted on all rows after a
cross-validation protocol, or is the holdout split's own model (``report["protocol"]["final_model"]``).

What is measured on what:

- A row held out by several splits (repeated CV, random splits) gets the mean of its held-out
  risks (and survival curves): one held-out prediction per row, for the calibration, ROC,
  decision curve, threshold and the pooled metrics below. Probabilities are on one scale whatever
  the model, so they can be averaged and pooled across splits.
- ``c_index`` (survival) and ``accuracy`` (classification) are the mean over the splits of the
  metric on each split's held-out rows, scored by that split's own model: the estimand of the
  published protocols (scikit-learn's ``cross_val_score``, ``GridSearchCV.best_score_``). Harrell's
  c uses the model's ranking score (``FittedModel.score``, as scikit-survival's guides use
  ``predict``), whose scale differs between fits and so cannot be pooled across splits.
  Accuracy counts ``risk >= 0.5`` as positive.
- Classification: ``auroc``, ``auprc`` (average precision), ``brier``, ``calibration_slope``,
  ``calibration_intercept`` on the pooled held-out risks.
- Survival, inverse-probability-of-censoring weighted (IPCW) with the Kaplan-Meier censoring
  distribution of all rows, as scikit-survival's "Evaluating Survival Models" guide (the weights
  use outcomes only, never a prediction): ``ibs``, the integrated Brier score (Graf et al. 1999,
  Stat Med 18:2529-2545) over 100 evenly spaced days from the 10th to the 90th percentile of all
  observed times; ``brier``, the Brier score at the horizon (`estimators.HORIZON_DAYS`), the
  same estimator at one time; ``auroc``, the cumulative/dynamic AUC at the horizon (Uno et al.
  2007, J Am Stat Assoc 102:527-537), scikit-survival's ``cumulative_dynamic_auc``.
  ``calibration_slope`` and ``calibration_intercept`` (`metrics` has no weighted fit) treat
  "event by the horizon" as a binary outcome on the rows whose status there is known
  (`protocols.horizon_status`): rows censored before the horizon are excluded. That is a known
  bias, not corrected here: the excluded rows were event-free until censored, so the event rate
  among the known rows runs high and the intercept reads too high (the reason for Graf et al.'s
  weights; on GBSG2's seed-1 holdout at 5 years, 0.69 known-row events against a Kaplan-Meier
  risk of 0.51). The report therefore also gives calibration in the large against Kaplan-Meier
  over all held-out rows (``report["protocol"]["horizon"]``). The threshold, reliability curve,
  ROC and decision curve use the known rows (so the ROC's area is not ``auroc``), and so do
  ``calibration_risk`` and ``calibration_outcome``.

A metric whose bootstrap fails (over 10% of resamples degenerate, e.g. predictions separating the
outcomes, where a calibration slope has no finite value) keeps its value with ``lower`` and
``upper`` None, and one it cannot compute at all is None; ``report["protocol"]["notes"]`` says why.

Every metric carries a 95% percentile bootstrap interval (`metrics.bootstrap_ci`, 1000 resamples
of the held-out rows, stratified on the outcome, seeded with the run's seed). For a split mean
each resample of rows recomputes every split's metric on its resampled held-out rows. The
intervals reflect the sampling of rows, not the variability of refitting on other training rows.

Hyper-parameters are `estimators.DEFAULTS` overridden by ``params``; there is no tuning, so no
tuning can see held-out rows. The alert threshold follows `protocols.sensitivity_threshold`.
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from medweave.diagnostics import clinic_data, datasets, estimators, metrics, protocols
from medweave.diagnostics.estimators import FittedModel
from medweave.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import pandas as pd

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Positions = npt.NDArray[np.int64]
#: A metric of (strata, row positions), for a bootstrap over rows.
RowMetric = Callable[[Bools, Positions], float]

#: Bootstrap resamples and level of every interval.
RESAMPLES = 1000
LEVEL = 0.95
#: Points of the integrated Brier score's time grid, and the percentiles of all times it spans.
IBS_POINTS = 100
IBS_PERCENTILES = (10.0, 90.0)
#: Decision-curve thresholds: 0.01 to 0.99 in steps of 0.01.
DECISION_THRESHOLDS = np.arange(1, 100) / 100.0
RELIABILITY_BINS = 10


@dataclass(frozen=True, eq=False)
class TrainingResult:
    """A trained model, its evaluation report, and the held-out rows other modules need.

    ``test_*`` are aligned with ``test_x`` (every row with a held-out prediction, its original
    index kept): ``test_risk`` the held-out risk, ``test_outcome`` the binary outcome (for survival
    the event by the horizon), ``test_known`` whether that outcome is known (False for a row
    censored before the horizon; all True for classification), ``test_survival`` the structured
    survival target (None for classification). ``calibration_risk`` and ``calibration_outcome``
    are ``test_risk`` and ``test_outcome`` on the known rows."""

    report: dict[str, Any]
    model: FittedModel
    calibration_risk: Floats
    calibration_outcome: Bools
    test_x: pd.DataFrame
    test_groups: pd.DataFrame
    test_risk: Floats
    test_outcome: Bools
    test_known: Bools
    test_survival: npt.NDArray[Any] | None

    def model_input(self, x: pd.DataFrame) -> Floats:
        """The model's input for the rows of ``x``: float64, its feature columns in order, NaN kept."""
        return _matrix(self.model, x)


def check(dataset: str, kind: str, protocol: str | None) -> estimators.Task:
    """Refuse what `train` would refuse about its arguments, without loading any data: NotFound for
    an unknown dataset, InvalidInput for an unknown model or protocol, a model for another task,
    a regression dataset, or ``published`` where there is none. Returns the task."""
    task = estimators.task_of(kind)
    info = (
        clinic_data.info(dataset)
        if dataset.startswith(clinic_data.PREFIX)
        else datasets.DATASETS.get(dataset)
    )
    if info is None:
        raise NotFound(f"unknown dataset {dataset!r}; use one of {', '.join(datasets.DATASETS)}")
    if info.task == "regression":
        raise InvalidInput(
            f"dataset {dataset!r} is a regression task; training supports classification "
            "(logistic, lightgbm) and survival (coxnet, rsf) datasets"
        )
    if info.task != task:
        fitting = ", ".join(k for k, t in estimators.KINDS.items() if t == info.task)
        raise InvalidInput(f"model {kind!r} is for {task}, dataset {dataset!r} is {info.task}: use {fitting}")
    protocols.check(protocol, dataset=dataset)
    return task


def train(
    dataset: str,
    kind: str,
    *,
    seed: int = 0,
    protocol: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    n_jobs: int = 1,
    params: Mapping[str, Any] | None = None,
) -> TrainingResult:
    """Fit a ``kind`` model on ``dataset`` under ``protocol`` (``holdout``, ``cv`` or ``published``;
    None: published where the dataset has one, else cv) and evaluate it on held-out rows.

    ``progress(done, total)`` is called as each split's model, and the final refit, is fitted.
    InvalidInput for an unknown model or protocol, a model whose task is not the dataset's (a
    regression dataset has none), ``published`` on a dataset without one, or bad ``params``;
    NotFound for an unknown dataset."""
    start = clock.perf_counter()
    task = check(dataset, kind, protocol)
    settings = _settings(kind, params)
    data = clinic_data.load(dataset) if dataset.startswith(clinic_data.PREFIX) else datasets.load(dataset)
    info = data.info
    x, target = data.features, data.target
    horizon = estimators.HORIZON_DAYS[dataset] if task == "survival" else None
    strata = np.asarray(target["event"] if horizon is not None else target)
    split_plan = protocols.plan(protocol, dataset=dataset, strata=strata, seed=seed)

    held = _HeldOut(len(x), len(split_plan.splits), _ibs_times(target) if horizon else None, horizon)
    total = len(split_plan.splits) + int(split_plan.refit)
    model: FittedModel | None = None
    for i, (fit_rows, test_rows) in enumerate(split_plan.splits):
        model = _fit(kind, x.iloc[fit_rows], target[fit_rows], seed, params, horizon, n_jobs)
        held.add(i, test_rows, model, x.iloc[test_rows])
        if progress is not None:
            progress(i + 1, total)
    if split_plan.refit or model is None:
        model = _fit(kind, x, target, seed, params, horizon, n_jobs)
        if progress is not None:
            progress(total, total)

    ev = _evaluate(target, held, seed)
    y, p = ev.outcome[ev.known], ev.risk[ev.known]
    report = {
        "dataset": {
            "name": dataset,
            "title": info.title,
            "task": info.task,
            "source": info.source,
            "license": info.license,
            "rows": data.rows,
            "features": x.shape[1],
            "fingerprint": data.fingerprint,
            "target": info.target,
            "horizon_days": horizon,
        },
        "model": {"kind": kind, "task": task, "params": settings, "features": list(model.features)},
        "protocol": _protocol_report(split_plan, seed, len(x), ev),
        "metrics": ev.metrics,
        "threshold": _threshold(y, p),
        **_curves(y, p),
        "seconds": clock.perf_counter() - start,
    }
    return TrainingResult(
        report=protocols.json_safe(report),
        model=model,
        calibration_risk=p,
        calibration_outcome=y,
        test_x=x.iloc[ev.rows],
        test_groups=data.groups.iloc[ev.rows],
        test_risk=ev.risk,
        test_outcome=ev.outcome,
        test_known=ev.known,
        test_survival=target[ev.rows] if horizon is not None else None,
    )


# ---- fitting ------------------------------------------------------------------------------------


def _settings(kind: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The effective hyper-parameters; InvalidInput for one the estimator does not take, or a value
    a report cannot hold (numbers, strings, booleans and None only)."""
    given = dict(params or {})
    for name, value in given.items():
        if not isinstance(name, str) or not isinstance(value, (str, int, float, bool, type(None))):
            raise InvalidInput(f"hyper-parameter {name!r} must be a number, string, boolean or null")
    try:
        estimators.build(kind, params=given)
    except TypeError as exc:
        raise InvalidInput(f"bad hyper-parameters for {kind}: {exc}") from None
    return {**estimators.DEFAULTS[kind], **given}


def _fit(
    kind: str,
    x: pd.DataFrame,
    y: npt.NDArray[Any],
    seed: int,
    params: Mapping[str, Any] | None,
    horizon: float | None,
    n_jobs: int,
) -> FittedModel:
    try:
        return estimators.fit(kind, x, y, seed=seed, params=params, horizon=horizon, n_jobs=n_jobs)
    except (TypeError, ValueError) as exc:
        if not params:
            raise
        # scikit-learn checks a parameter's value only when fitting (its InvalidParameterError is
        # a ValueError and a TypeError); the message keeps the estimator's own reason.
        raise InvalidInput(f"bad hyper-parameters for {kind}: {exc}") from None


def _matrix(model: FittedModel, x: pd.DataFrame) -> Floats:
    return np.asarray(x.loc[:, list(model.features)].to_numpy(dtype="float64", na_value=np.nan))


def _ibs_times(target: npt.NDArray[Any]) -> Floats:
    """The IBS grid: the percentiles of all times, kept strictly below the last follow-up time
    (scikit-survival's Brier score is defined only inside follow-up; in a cohort censored at the
    end of the study, as Framingham's, the 90th percentile can be that last time itself)."""
    times = target["time"]
    low, high = np.percentile(times, IBS_PERCENTILES)
    below_last = times[times < times.max()]
    if len(below_last):
        high = min(float(high), float(below_last.max()))
    return np.linspace(float(low), float(high), IBS_POINTS)


class _HeldOut:
    """Held-out predictions accumulated over splits: sums and counts per row, and each split's own
    predictions (risk for a classifier, ranking score for a survival model) for split means."""

    def __init__(self, n: int, splits: int, grid: Floats | None, horizon: float | None) -> None:
        self.grid, self.horizon = grid, horizon
        self.risk_sum = np.zeros(n)
        self.count = np.zeros(n, dtype=np.int64)
        self.curve_sum = np.zeros((n, len(grid))) if grid is not None else np.zeros((n, 0))
        self.values = np.full((splits, n), np.nan)
        self.tested = np.zeros((splits, n), dtype=np.bool_)

    def add(self, split: int, rows: Positions, model: FittedModel, x: pd.DataFrame) -> None:
        if self.grid is None:
            risk = model.risk(x)
            self.values[split, rows] = risk
        else:
            assert model.horizon is not None
            survival = _survival_at(model, x, np.append(self.grid, model.horizon))
            risk = 1.0 - survival[:, -1]  # = model.risk(x), from the same curves
            self.curve_sum[rows] += survival[:, :-1]
            self.values[split, rows] = model.score(x)
        self.risk_sum[rows] += risk
        self.count[rows] += 1
        self.tested[split, rows] = True


def _survival_at(model: FittedModel, x: pd.DataFrame, times: Floats) -> Floats:
    """S(t | x) at ``times`` for each row; a time past a curve's domain (the longest training time)
    reads the curve's last value."""
    functions = model.estimator.predict_survival_function(_matrix(model, x), return_array=False)
    return np.vstack([fn(np.minimum(times, fn.domain[1])) for fn in functions]).astype(np.float64)


# ---- evaluation ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Evaluation:
    """Held-out rows (positions), their mean held-out risk, binary outcome and whether it is known,
    the metrics in report order, notes on metrics that could not be computed, and for survival
    the horizon's part of the protocol report."""

    rows: Positions
    risk: Floats
    outcome: Bools
    known: Bools
    metrics: dict[str, dict[str, float | None]]
    notes: list[str]
    horizon: dict[str, Any]


def _evaluate(target: npt.NDArray[Any], held: _HeldOut, seed: int) -> _Evaluation:
    rows = np.flatnonzero(held.count > 0)
    risk = held.risk_sum[rows] / held.count[rows]
    score = _Scorer(seed)
    everyone = np.arange(len(rows))
    values, tested = held.values[:, rows], held.tested[:, rows]
    if held.grid is None or held.horizon is None:
        outcome, known = np.asarray(target[rows] == 1, dtype=np.bool_), np.ones(len(rows), dtype=np.bool_)
        scores = {name: score(name, fn, outcome, risk) for name, fn in BINARY.items()}
        scores["accuracy"] = score("accuracy", _mean_accuracy(outcome, values, tested), outcome, everyone)
        return _Evaluation(rows, risk, outcome, known, scores, score.notes, {})
    from sksurv.metrics import brier_score, cumulative_dynamic_auc

    horizon, grid, held_out = held.horizon, held.grid, target[rows]
    event, time = held_out["event"], held_out["time"]
    outcome, known = protocols.horizon_status(event, time, horizon)
    curves = held.curve_sum[rows] / held.count[rows, None]

    def c_index(split: int, at: Positions) -> float:
        return metrics.concordance_index(event[at], time[at], values[split, at])

    def ibs(_event: Bools, at: Positions) -> float:
        return metrics.integrated_brier(target, held_out[at], curves[at], grid)

    def brier_at(_event: Bools, at: Positions) -> float:
        return float(brier_score(target, held_out[at], 1.0 - risk[at], [horizon])[1][0])

    def auroc_at(_event: Bools, at: Positions) -> float:
        return float(cumulative_dynamic_auc(target, held_out[at], risk[at], [horizon])[0][0])

    scores = {
        "c_index": score("c_index", _split_mean(c_index, tested), event, everyone),
        "ibs": score("ibs", ibs, event, everyone),
        "auroc": score("auroc", auroc_at, event, everyone),
        "brier": score("brier", brier_at, event, everyone),
    }
    for name in ("calibration_slope", "calibration_intercept"):
        scores[name] = score(name, BINARY[name], outcome[known], risk[known])
    extra = _horizon_report(held_out, risk, known, horizon, grid)
    return _Evaluation(rows, risk, outcome, known, scores, score.notes, extra)


# ---- metrics ------------------------------------------------------------------------------------

#: The metrics of a binary outcome and its risk, from `metrics`.
BINARY: dict[str, Callable[..., float]] = {
    "auroc": metrics.auroc,
    "auprc": metrics.average_precision,
    "brier": metrics.brier,
    "calibration_slope": metrics.calibration_slope,
    "calibration_intercept": metrics.calibration_intercept,
}


@dataclass
class _Scorer:
    """Each metric with its bootstrap interval, and notes on those that could not have one."""

    seed: int
    notes: list[str] = field(default_factory=list)

    def __call__(self, name: str, metric: Callable[..., float], *arrays: Any) -> dict[str, float | None]:
        """``metric(*arrays)`` and its 95% interval, the first array the bootstrap's strata. If the
        bootstrap fails (over 10% of resamples degenerate, e.g. predictions that separate the
        outcomes in a resample), the value alone; if the metric fails too (one class only, no
        comparable pair), None. Either way the reason goes to ``notes``."""
        try:
            value, lower, upper = metrics.bootstrap_ci(
                metric, *arrays, resamples=RESAMPLES, level=LEVEL, seed=self.seed
            )
        except ValueError as exc:
            reason = str(exc)
        else:
            return {"value": value, "lower": lower, "upper": upper}
        try:
            estimate: float | None = float(metric(*arrays))
        except ValueError as exc:
            estimate, reason = None, str(exc)
        self.notes.append(f"{name}: {'no interval' if estimate is not None else 'not computed'}: {reason}")
        return {"value": estimate, "lower": None, "upper": None}


def _split_mean(of_split: Callable[[int, Positions], float], tested: Bools) -> RowMetric:
    """A metric of (strata, rows): the mean over splits of ``of_split(split, rows it held out)``.
    Bootstrapped, each resample of rows recomputes every split on its resampled held-out rows."""

    def mean(_strata: Bools, rows: Positions) -> float:
        return float(np.mean([of_split(s, rows[tested[s, rows]]) for s in range(len(tested))]))

    return mean


def _mean_accuracy(y: Bools, values: Floats, tested: Bools) -> RowMetric:
    """`_split_mean` of the accuracy of ``risk >= 0.5`` (``metrics.at_threshold``'s rule), the
    right answers of each split read once so that a resample only counts them (100 splits x 1000
    resamples would otherwise take seconds)."""
    right = ((values >= protocols.ACCURACY_THRESHOLD) == y[None, :]) & tested

    def mean(_y: Bools, rows: Positions) -> float:
        held = tested[:, rows].sum(axis=1)
        if not held.all():
            raise ValueError("a split has no held-out row in this resample")
        return float(np.mean(right[:, rows].sum(axis=1) / held))

    return mean


def _threshold(y: Bools, p: Floats) -> dict[str, Any]:
    rule = protocols.THRESHOLD_RULE
    if not y.any():
        return {"value": None, "rule": rule, "alert_rate": None, "ppv": None, "sensitivity": None,
                "specificity": None}  # fmt: skip
    value = protocols.sensitivity_threshold(y, p)
    at = metrics.at_threshold(y, p, value)
    return {
        "value": value,
        "rule": rule,
        "alert_rate": at.alert_rate,
        "ppv": at.ppv,
        "sensitivity": at.sensitivity,
        "specificity": at.specificity,
    }


def _curves(y: Bools, p: Floats) -> dict[str, Any]:
    reliability = metrics.reliability_curve(y, p, bins=RELIABILITY_BINS)
    decision = metrics.net_benefit(y, p, DECISION_THRESHOLDS)
    if y.all() or not y.any():
        fpr, tpr = np.array([]), np.array([])
    else:
        fpr, tpr = protocols.roc_points(y, p)
    return {
        "reliability": {
            "mean_predicted": reliability.mean_predicted,
            "observed": reliability.observed,
            "count": reliability.counts,
        },
        "roc": {"fpr": fpr, "tpr": tpr},
        "decision_curve": {"thresholds": decision.thresholds, "model": decision.model,
                           "treat_all": decision.treat_all},
    }  # fmt: skip


# ---- the report ---------------------------------------------------------------------------------


def _protocol_report(split_plan: protocols.Plan, seed: int, n: int, ev: _Evaluation) -> dict[str, Any]:
    final = (
        f"refitted on all {n} rows after the evaluation"
        if split_plan.refit
        else f"the holdout split's model, fitted on its {len(split_plan.splits[0][0])} training rows"
    )
    return {
        "name": split_plan.name,
        "description": split_plan.description,
        "seed": split_plan.seed,
        "model_seed": seed,
        "splits": len(split_plan.splits),
        **split_plan.details,
        "held_out_rows": len(ev.rows),
        "final_model": final,
        "aggregation": "metrics on held-out predictions only; a row held out by several splits gets "
        "the mean of its held-out risks; c_index and accuracy are means over splits, each split's "
        "held-out rows scored by its own model",
        "tuning": "none: estimators.DEFAULTS overridden by params",
        "bootstrap": {"method": "percentile, rows resampled within outcome strata",
                      "resamples": RESAMPLES, "level": LEVEL, "seed": seed},
        "notes": ev.notes,
        **ev.horizon,
    }  # fmt: skip


def _horizon_report(
    held_out: npt.NDArray[Any], risk: Floats, known: Bools, horizon: float, grid: Floats
) -> dict[str, Any]:
    """How the survival metrics read the horizon, with calibration in the large against the
    Kaplan-Meier risk of the held-out rows (free of the known-rows bias)."""
    from sksurv.nonparametric import kaplan_meier_estimator

    times, survival = kaplan_meier_estimator(held_out["event"], held_out["time"])
    observed = None
    if horizon <= times[-1]:
        observed = 1.0 - float(survival[np.searchsorted(times, horizon, side="right") - 1])
    return {
        "horizon": {
            "days": horizon,
            "known_rows": int(known.sum()),
            "excluded_rows": int((~known).sum()),
            "excluded": "censored before the horizon: left out of the calibration slope and intercept, "
            "threshold, reliability, ROC and decision curves (a known bias); c_index, ibs, auroc and "
            "brier use every held-out row",
            "observed_risk_km": observed,
            "mean_predicted_risk": float(np.mean(risk)),
        },
        "ibs_times": {"from": grid[0], "to": grid[-1], "points": len(grid),
                      "censoring": "Kaplan-Meier of all rows' censoring times"},
    }  # fmt: skip
