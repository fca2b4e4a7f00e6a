"""Model performance in each subgroup of sex, age band and race/ethnicity, and the gaps between
subgroups (issue 7). fairlearn's ``MetricFrame`` splits the rows; the metrics are ours
(`medweave.diagnostics.metrics`). Pure computation, no I/O; the result is JSON-able.

A small subgroup's metric is noise, so it is reported as None (never NaN), and the row's
``note`` says why. Two published rules set the floor:

- a proportion (alert rate, PPV, sensitivity, specificity) needs a denominator of at least
  `MIN_ROWS` = 30: the National Center for Health Statistics suppresses a proportion whose
  sample size is under 30 (Parker et al., "National Center for Health Statistics Data
  Presentation Standards for Proportions", Vital Health Stat 2(175), 2017);
- discrimination and calibration (AUROC, Brier score, calibration intercept) need at least
  `MIN_EVENTS` = 20 rows of each outcome, the c-index 20 events: NCHS does not present a rate
  based on fewer than 20 events, whose relative standard error is then 23% or more (the rule of
  National Vital Statistics Reports, e.g. "Deaths: Final Data", technical notes).

Rows whose attribute is "unknown" get a row of their own, but are left out of the disparities:
missing data is not a demographic group to compare with.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from medweave.diagnostics import metrics

if TYPE_CHECKING:
    import pandas as pd

#: The smallest denominator of a reported proportion (NCHS, Parker et al. 2017).
MIN_ROWS = 30
#: The fewest events (and non-events) behind a reported AUROC, Brier score, calibration intercept
#: or c-index (NCHS: no rate from fewer than 20 events).
MIN_EVENTS = 20
UNKNOWN = "unknown"

Metric = Callable[..., float]


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _guarded(metric: Metric, *, min_events: int) -> Metric:
    """``metric`` as fairlearn calls it, NaN when a class has fewer than ``min_events`` rows or the
    metric has no value (our metrics raise ValueError: one class, no convergence)."""

    def guarded(y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any]) -> float:
        events = int(np.sum(y_true))
        if min(events, len(y_true) - events) < min_events:
            return math.nan
        try:
            return float(metric(y_true, y_pred))
        except ValueError:
            return math.nan

    return guarded


def _proportion(name: str, threshold: float, *, min_rows: int) -> Metric:
    """One rate of `metrics.at_threshold`, NaN when its denominator is under ``min_rows``."""

    def rate(y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any]) -> float:
        table = metrics.at_threshold(y_true, y_pred, threshold)
        denominator = {
            "ppv": table.tp + table.fp,
            "sensitivity": table.tp + table.fn,
            "specificity": table.tn + table.fp,
        }[name]
        return float(getattr(table, name)) if denominator >= min_rows else math.nan

    return rate


def _c_index(*, min_rows: int, min_events: int) -> Metric:
    def c_index(event: npt.NDArray[Any], risk: npt.NDArray[Any], time: npt.NDArray[Any]) -> float:
        if len(event) < min_rows or int(np.sum(event)) < min_events:
            return math.nan
        try:
            return metrics.concordance_index(event, time, risk)
        except ValueError:
            return math.nan

    return c_index


def _note(row: dict[str, Any], events_followed: int | None, *, min_rows: int, min_events: int) -> str | None:
    """Why a row's metrics are None, in words; None when nothing was held back for size."""
    reasons = []
    events, non_events = row["events"], row["n_known"] - row["events"]
    if row["n"] < min_rows:
        reasons.append(f"{row['n']} rows, under {min_rows}: no alert rate")
    if min(events, non_events) < min_events:
        reasons.append(
            f"{events} events and {non_events} non-events with a known outcome, under {min_events} of "
            "each: no AUROC, Brier score or calibration intercept"
        )
    for name, denominator in (("sensitivity", events), ("specificity", non_events)):
        if denominator < min_rows:
            reasons.append(f"{denominator} rows behind the {name}, under {min_rows}")
    if row["calibration_intercept"] is None and row["auroc"] is not None:
        reasons.append("no calibration intercept: its fit has no finite maximum (separated predictions)")
    if row["ppv"] is None and row["n_known"]:
        reasons.append(f"fewer than {min_rows} alerts with a known outcome: no PPV")
    if events_followed is not None and (events_followed < min_events or row["n"] < min_rows):
        reasons.append(f"{events_followed} events in follow-up of {row['n']} rows: no c-index")
    return "; ".join(reasons) or None


def table(
    groups: pd.DataFrame,
    *,
    outcome: npt.ArrayLike,
    risk: npt.ArrayLike,
    threshold: float,
    known: npt.ArrayLike | None = None,
    survival: npt.NDArray[Any] | None = None,
    min_rows: int = MIN_ROWS,
    min_events: int = MIN_EVENTS,
) -> dict[str, Any]:
    """Per-subgroup metrics and between-group disparities.

    ``groups`` has one string column per attribute (``sex``, ``age_band``, ``race_ethnicity``; NaN
    is read as "unknown"), one row per patient; ``outcome`` is 0/1 and ``risk`` the predicted
    probability, in the same order. ``known`` marks the rows whose outcome is known (a survival
    outcome at the horizon); outcome metrics use those rows only, the alert rate uses every row.
    ``survival`` (scikit-survival's structured (event, time) array) adds a c-index per group.
    A row alerts when ``risk >= threshold``.

    Returns ``{"rows": [...], "disparities": [...]}``. A row: attribute, group, n, n_known,
    events, auroc, brier, calibration_intercept, alert_rate, ppv, sensitivity, specificity,
    c_index (with ``survival`` only) and note (why a metric is None, or None). A disparity, per
    attribute, over the groups other than "unknown" whose rates are reported:
    ``demographic_parity_difference`` (largest gap in alert rate), ``equalized_odds_difference``
    (the larger of the largest gaps in sensitivity and in false-positive rate), both fairlearn's
    ``between_groups``, and ``auroc_gap`` (highest minus lowest AUROC); None with fewer than two
    such groups, and ``compared`` names the groups each was computed over."""
    import pandas as pd

    r = np.asarray(risk, dtype=np.float64)
    n = len(groups)
    mask = np.ones(n, dtype=bool) if known is None else np.asarray(known, dtype=bool)
    if r.shape != (n,) or mask.shape != (n,) or np.shape(outcome) != (n,):
        raise ValueError(f"groups, outcome, risk and known must all have {n} rows")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold!r}")
    if not ((r >= 0.0) & (r <= 1.0)).all():
        raise ValueError("risk must hold probabilities in [0, 1]")
    given = np.asarray(outcome)[mask]
    if given.dtype != np.bool_ and not np.isin(given, (0, 1)).all():
        raise ValueError("outcome must hold 0/1 (or booleans) where it is known")
    y = np.zeros(n, dtype=np.int64)
    y[mask] = given == 1
    follow_up = None
    if survival is not None:
        if len(survival) != n:
            raise ValueError(f"survival must have {n} rows, got {len(survival)}")
        event_field, time_field = survival.dtype.names or ("event", "time")
        follow_up = (
            np.asarray(survival[event_field], dtype=bool),
            np.asarray(survival[time_field], dtype=float),
        )

    limits = {"min_rows": min_rows, "min_events": min_events}
    rows: list[dict[str, Any]] = []
    disparities: list[dict[str, Any]] = []
    for attribute in groups.columns:
        labels = pd.Series(groups[attribute].to_numpy(dtype=object), name=str(attribute))
        labels = labels.where(labels.notna(), UNKNOWN).astype(str)
        found = _rows(str(attribute), labels, y, r, mask, threshold, follow_up, **limits)
        rows.extend(found)
        disparities.append(_disparities(str(attribute), found, labels.to_numpy(), y, r >= threshold, mask))
    return {"rows": rows, "disparities": disparities}


def _rows(
    attribute: str,
    labels: pd.Series[str],
    y: npt.NDArray[np.int64],
    r: npt.NDArray[np.float64],
    known: npt.NDArray[np.bool_],
    threshold: float,
    follow_up: tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]] | None,
    *,
    min_rows: int,
    min_events: int,
) -> list[dict[str, Any]]:
    """One row per group of ``labels``, from three fairlearn MetricFrames: over every row (size,
    alert rate), over rows with a known outcome, and over the follow-up (c-index)."""
    from fairlearn.metrics import MetricFrame

    def alert_rate(_: npt.NDArray[Any], p: npt.NDArray[np.float64]) -> float:
        return float(np.mean(p >= threshold)) if len(p) >= min_rows else math.nan

    def count(t: npt.NDArray[Any], _: npt.NDArray[Any]) -> int:
        return int(np.sum(t))

    def size(t: npt.NDArray[Any], _: npt.NDArray[Any]) -> int:
        return len(t)

    every = MetricFrame(
        metrics={"n": size, "alert_rate": alert_rate}, y_true=y, y_pred=r, sensitive_features=labels
    ).by_group
    on_known = None
    if known.any():
        outcome_metrics: dict[str, Metric] = {
            "n_known": size,
            "events": count,
            "auroc": _guarded(metrics.auroc, min_events=min_events),
            "brier": _guarded(metrics.brier, min_events=min_events),
            "calibration_intercept": _guarded(metrics.calibration_intercept, min_events=min_events),
        }
        for name in ("ppv", "sensitivity", "specificity"):
            outcome_metrics[name] = _proportion(name, threshold, min_rows=min_rows)
        on_known = MetricFrame(
            metrics=outcome_metrics,
            y_true=y[known],
            y_pred=r[known],
            sensitive_features=labels[known].reset_index(drop=True),
        ).by_group
    on_follow_up = None
    if follow_up is not None:
        on_follow_up = MetricFrame(
            metrics={"c_index": _c_index(min_rows=min_rows, min_events=min_events), "events": count},
            y_true=follow_up[0],
            y_pred=r,
            sensitive_features=labels,
            sample_params={"c_index": {"time": follow_up[1]}},
        ).by_group

    rows = []
    for group in every.index:
        outcome = on_known.loc[group] if on_known is not None and group in on_known.index else None
        row: dict[str, Any] = {
            "attribute": attribute,
            "group": str(group),
            "n": int(every.loc[group, "n"]),
            "n_known": 0 if outcome is None else int(outcome["n_known"]),
            "events": 0 if outcome is None else int(outcome["events"]),
        }
        for name in (
            "auroc",
            "brier",
            "calibration_intercept",
            "alert_rate",
            "ppv",
            "sensitivity",
            "specificity",
        ):
            source = every.loc[group] if name == "alert_rate" else outcome
            row[name] = None if source is None else _finite(source[name])
        events_followed = None
        if on_follow_up is not None:
            row["c_index"] = _finite(on_follow_up.loc[group, "c_index"])
            events_followed = int(on_follow_up.loc[group, "events"])
        row["note"] = _note(row, events_followed, min_rows=min_rows, min_events=min_events)
        rows.append(row)
    return rows


def _disparities(
    attribute: str,
    rows: list[dict[str, Any]],
    labels: npt.NDArray[Any],
    y: npt.NDArray[np.int64],
    alert: npt.NDArray[np.bool_],
    known: npt.NDArray[np.bool_],
) -> dict[str, Any]:
    """fairlearn's between-group differences over the groups whose rates are reported: alert
    rates for demographic parity, sensitivity and specificity for equalized odds."""
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    named = [row for row in rows if row["group"] != UNKNOWN]
    parity = [row["group"] for row in named if row["alert_rate"] is not None]
    odds = [
        row["group"] for row in named if row["sensitivity"] is not None and row["specificity"] is not None
    ]
    aurocs = {row["group"]: row["auroc"] for row in named if row["auroc"] is not None}
    result: dict[str, Any] = {
        "attribute": attribute,
        "demographic_parity_difference": None,
        "equalized_odds_difference": None,
        "auroc_gap": max(aurocs.values()) - min(aurocs.values()) if len(aurocs) >= 2 else None,
        "compared": {"demographic_parity": parity, "equalized_odds": odds, "auroc": sorted(aurocs)},
    }
    if len(parity) >= 2:
        rows_in = np.isin(labels, parity)
        # The outcome does not enter demographic parity; every row counts, known outcome or not.
        result["demographic_parity_difference"] = float(
            demographic_parity_difference(y[rows_in], alert[rows_in], sensitive_features=labels[rows_in])
        )
    if len(odds) >= 2:
        rows_in = np.isin(labels, odds) & known
        result["equalized_odds_difference"] = float(
            equalized_odds_difference(y[rows_in], alert[rows_in], sensitive_features=labels[rows_in])
        )
    return result
