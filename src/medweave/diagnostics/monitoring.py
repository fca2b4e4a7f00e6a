"""Watching a served model: feature drift (PSI) and, once outcomes arrive, rolling calibration and AUC.

Every prediction is logged (``serving``). Drift compares each feature's distribution in the log,
week by week, with the model's validation rows, by the population stability index

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

over the validation rows' decile bins, ``e_i`` the validation share and ``a_i`` the served share of
bin ``i`` (Siddiqi 2006, *Credit Risk Scorecards*, ch. 8; Yurdakul 2018, "Statistical properties
of population stability index", Western Michigan University dissertation). Empty bins take a
share of 0.0001 so the logarithm stays finite, as Siddiqi's worked examples do. Reading, from the
same source: below 0.1 no significant shift, 0.1 to 0.25 a moderate shift worth a look, above
0.25 a significant shift.

Outcomes (0/1 for the predicted event) are recorded against a prediction's card id when they are
known (`record_outcomes`; ``medweave ml outcomes FILE`` imports them). With outcomes, the rolling
AUROC, calibration intercept and slope and Brier score are computed over the latest window of
predictions with an outcome, with `metrics`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select, update

from medweave.db import read_tx, write_tx
from medweave.diagnostics import metrics
from medweave.diagnostics.registry import ModelRecord
from medweave.diagnostics.tables import ml_predictions
from medweave.errors import InvalidInput, MedweaveError, NotFound

BINS = 10
EMPTY_SHARE = 1e-4
#: Siddiqi 2006: below 0.1 no significant shift; 0.1-0.25 moderate; above 0.25 significant.
PSI_MODERATE, PSI_SIGNIFICANT = 0.1, 0.25
#: Rolling window of predictions with an outcome, and the fewest rows a metric is shown for.
WINDOW, MIN_ROWS = 500, 50
#: Fewest predictions in a week for its PSI: with 10 bins, 30 rows give 3 a bin on average.
MIN_WEEK = 30
WEEK = timedelta(days=7)
MAX_LOG = 100_000


def reference(columns: Mapping[str, Sequence[float]]) -> dict[str, dict[str, list[float]]]:
    """Each feature's decile bin edges over the validation rows and the share of rows in each bin;
    missing values (NaN) get a bin of their own, last. A feature with fewer than two distinct
    values keeps its distinct values as edges."""
    out: dict[str, dict[str, list[float]]] = {}
    for name, values in columns.items():
        array = np.asarray(values, dtype=np.float64)
        present = array[~np.isnan(array)]
        edges = (
            sorted(set(np.quantile(present, np.linspace(0, 1, BINS + 1))[1:-1].tolist()))
            if len(present)
            else []
        )
        out[name] = {"edges": edges, "shares": _shares(array, edges)}
    return out


def _shares(values: np.ndarray[Any, Any], edges: Sequence[float]) -> list[float]:
    """Shares of ``values`` in the bins (-inf, e1], (e1, e2], ..., (ek, inf), then NaN."""
    n = len(values)
    if n == 0:
        return [0.0] * (len(edges) + 2)
    missing = np.isnan(values)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values[~missing], side="left")
    counts = [*np.bincount(index, minlength=len(edges) + 1).tolist(), int(missing.sum())]
    return [c / n for c in counts]


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """The population stability index of two binned distributions (shares summing to 1)."""
    if len(expected) != len(actual):
        raise InvalidInput("PSI needs the same bins on both sides")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        if e == 0 and a == 0:
            continue
        e, a = max(e, EMPTY_SHARE), max(a, EMPTY_SHARE)
        total += (a - e) * math.log(a / e)
    return total


def reading(value: float) -> str:
    if value < PSI_MODERATE:
        return "no significant shift"
    return "moderate shift" if value < PSI_SIGNIFICANT else "significant shift"


def drift(
    ref: Mapping[str, Mapping[str, list[float]]], rows: Iterable[tuple[datetime, Mapping[str, float | None]]]
) -> list[dict[str, Any]]:
    """Weekly PSI of each feature of the logged ``rows`` (time, features) against ``ref``."""
    weeks: dict[datetime, list[Mapping[str, float | None]]] = {}
    for at, features in rows:
        start = (at - timedelta(days=at.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
        weeks.setdefault(start, []).append(features)
    out = []
    for name, bins in ref.items():
        series: list[dict[str, Any]] = []
        for start in sorted(weeks):
            if len(weeks[start]) < MIN_WEEK:
                continue  # too few predictions for a share per decile bin to mean anything
            values = np.array([_number(f.get(name)) for f in weeks[start]], dtype=np.float64)
            value = psi(bins["shares"], _shares(values, bins["edges"]))
            series.append({"week": start.date().isoformat(), "n": len(values), "psi": value})
        latest: float | None = series[-1]["psi"] if series else None
        out.append(
            {
                "feature": name,
                "series": series,
                "latest": latest,
                "reading": reading(latest) if latest is not None else None,
            }
        )
    return out


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def rolling(risk: Sequence[float], outcome: Sequence[int]) -> dict[str, float | None]:
    """AUROC, calibration intercept and slope, and Brier score of the latest `WINDOW` outcomes;
    None where there are fewer than `MIN_ROWS` rows or one outcome class only."""
    r = np.asarray(risk[-WINDOW:], dtype=np.float64)
    y = np.asarray(outcome[-WINDOW:], dtype=np.int64)
    empty: dict[str, float | None] = {"auroc": None, "calibration_intercept": None, "calibration_slope": None,
                                      "brier": None, "n": float(len(y))}  # fmt: skip
    if len(y) < MIN_ROWS or y.min() == y.max():
        return empty
    clipped = np.clip(r, 1e-6, 1 - 1e-6)

    def safely(fn: Any, p: Any) -> float | None:
        try:
            return float(fn(y, p))
        except (ValueError, ArithmeticError, MedweaveError):  # e.g. calibration on separated risks
            return None

    return {
        "auroc": safely(metrics.auroc, r),
        "calibration_intercept": safely(metrics.calibration_intercept, clipped),
        "calibration_slope": safely(metrics.calibration_slope, clipped),
        "brier": safely(metrics.brier, r),
        "n": float(len(y)),
    }


def record_outcomes(
    engine: Engine, outcomes: Sequence[tuple[str, int]], *, at: datetime | None = None
) -> int:
    """Record whether the predicted event happened (1) or not (0) for logged predictions, by
    prediction (card) id; all or nothing: an unknown id or a bad outcome changes no row."""
    bad = [o for _, o in outcomes if o not in (0, 1)]
    if bad:
        raise InvalidInput(f"an outcome is 0 or 1, not {bad[0]!r}")
    when = at or datetime.now(UTC)
    with write_tx(engine) as conn:
        for card_id, outcome in outcomes:
            done = conn.execute(
                update(ml_predictions)
                .where(ml_predictions.c.id == card_id)
                .values(outcome=outcome, outcome_at=when)
            ).rowcount
            if not done:
                raise NotFound(f"no prediction {card_id}; no outcome was recorded")
    return len(outcomes)


def _one_per_patient_day(rows: list[Any]) -> list[Any]:
    """The latest prediction of each patient per day: a chart opened ten times is one patient."""
    latest: dict[tuple[str, Any], Any] = {}
    for row in rows:
        latest[(row.subject, row.at.date())] = row
    return sorted(latest.values(), key=lambda r: r.at)


def summary(engine: Engine, record: ModelRecord) -> dict[str, Any]:
    """What the model page shows: how many predictions, drift per feature, rolling metrics."""
    log = ml_predictions.c
    with read_tx(engine) as conn:
        count = conn.execute(select(func.count()).where(log.model_id == record.id)).scalar() or 0
        rows = conn.execute(
            select(log.at, log.subject, log.features, log.risk, log.outcome)
            .where(log.model_id == record.id)
            .order_by(log.at.desc())
            .limit(MAX_LOG)
        ).all()
    rows = _one_per_patient_day(list(reversed(rows)))
    ref = record.report.get("reference") or {}
    with_outcome = [(r.risk, r.outcome) for r in rows if r.outcome is not None]
    return {
        "predictions": int(count),
        "last": rows[-1].at if rows else None,
        "drift": drift(ref, ((r.at, json.loads(r.features)) for r in rows)) if rows and ref else [],
        "outcomes": len(with_outcome),
        "rolling": rolling([r for r, _ in with_outcome], [o for _, o in with_outcome]),
    }
