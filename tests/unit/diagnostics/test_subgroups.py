"""Subgroup metrics against a direct per-group computation with scikit-learn, scipy and
scikit-survival; the size floors; the disparities against their definitions."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fairlearn")

from scipy.optimize import brentq
from scipy.special import expit, logit
from sklearn.metrics import brier_score_loss, roc_auc_score
from sksurv.metrics import concordance_index_censored
from sksurv.util import Surv

from medweave.diagnostics.subgroups import MIN_EVENTS, MIN_ROWS, table

THRESHOLD = 0.3


def _cohort(seed: int = 7) -> dict[str, Any]:
    """Groups of every kind: large (a, b), small (c: 25 rows), few events (d), unknown and NaN
    labels, plus an age band; a risk model that is informative, better in group a than b."""
    rng = np.random.default_rng(seed)
    sizes = {"a": 400, "b": 300, "c": 25, "d": 120, "unknown": 40}
    sex = np.concatenate([[g] * k for g, k in sizes.items()]).astype(object)
    n = len(sex)
    sex[rng.choice(n, 10, replace=False)] = np.nan  # read as "unknown"
    rate = {"a": 0.3, "b": 0.4, "c": 0.3, "d": 0.05, "unknown": 0.3}
    base = np.array([rate.get(s, 0.3) if isinstance(s, str) else 0.3 for s in sex])
    outcome = (rng.uniform(size=n) < base).astype(int)
    noise = np.where(sex == "a", 0.8, 1.6)
    risk = expit(logit(base) + (outcome - 0.5) * 2.0 + rng.normal(0, noise, n))
    age = rng.choice(["<40", "40-59", "60+"], n, p=[0.2, 0.5, 0.3])
    known = rng.uniform(size=n) > 0.1
    time = rng.exponential(5.0, n) / (0.5 + risk)
    event = rng.uniform(size=n) < 0.6
    return {
        "groups": pd.DataFrame({"sex": sex, "age_band": age}),
        "outcome": outcome,
        "risk": risk,
        "known": known,
        "survival": Surv.from_arrays(event=event, time=time),
    }


def _intercept(y: np.ndarray, p: np.ndarray) -> float:
    """Calibration-in-the-large solved directly: the a with sum(y - expit(a + logit p)) = 0."""
    offset = logit(np.clip(p, 1e-6, 1 - 1e-6))
    return float(brentq(lambda a: float(np.sum(y - expit(a + offset))), -20, 20, xtol=1e-12))


def _expected(groups: pd.Series, data: dict[str, Any], group: str) -> dict[str, object]:
    labels = groups.fillna("unknown").astype(str).to_numpy()
    rows = labels == group
    kn = rows & data["known"]
    y, p = data["outcome"][kn], data["risk"][kn]
    alert = p >= THRESHOLD
    events, non_events = int(y.sum()), int(len(y) - y.sum())
    two_classes = min(events, non_events) >= MIN_EVENTS
    surv = data["survival"][rows]
    c_ok = rows.sum() >= MIN_ROWS and surv["event"].sum() >= MIN_EVENTS
    tp, fp = int((alert & (y == 1)).sum()), int((alert & (y == 0)).sum())
    return {
        "n": int(rows.sum()),
        "n_known": int(kn.sum()),
        "events": events,
        "auroc": roc_auc_score(y, p) if two_classes else None,
        "brier": brier_score_loss(y, p) if two_classes else None,
        "calibration_intercept": _intercept(y, p) if two_classes else None,
        "alert_rate": float(np.mean(data["risk"][rows] >= THRESHOLD)) if rows.sum() >= MIN_ROWS else None,
        "ppv": tp / (tp + fp) if tp + fp >= MIN_ROWS else None,
        "sensitivity": tp / events if events >= MIN_ROWS else None,
        "specificity": 1 - fp / non_events if non_events >= MIN_ROWS else None,
        "c_index": concordance_index_censored(surv["event"], surv["time"], data["risk"][rows])[0]
        if c_ok
        else None,
    }


def test_each_row_matches_a_direct_computation() -> None:
    data = _cohort()
    result = table(
        data["groups"],
        outcome=data["outcome"],
        risk=data["risk"],
        threshold=THRESHOLD,
        known=data["known"],
        survival=data["survival"],
    )
    json.dumps(result, allow_nan=False)  # JSON-able, no NaN anywhere
    seen = set()
    for row in result["rows"]:
        expected = _expected(data["groups"][row["attribute"]], data, row["group"])
        for name, value in expected.items():
            if value is None:
                assert row[name] is None, (row["group"], name)
            else:
                assert row[name] == pytest.approx(value, abs=1e-9), (row["group"], name)
        assert (row["note"] is None) == all(v is not None for v in expected.values()), row
        seen.add((row["attribute"], row["group"]))
    assert seen == {("sex", g) for g in "a b c d unknown".split()} | {
        ("age_band", g) for g in ["<40", "40-59", "60+"]
    }
    by_group = {r["group"]: r for r in result["rows"] if r["attribute"] == "sex"}
    assert by_group["unknown"]["n"] == 50  # 40 labelled "unknown" plus 10 NaN
    assert by_group["a"]["auroc"] > by_group["b"]["auroc"]  # the less noisy group ranks better
    # the floors bite where they should: c is too small for anything, d has too few events
    assert by_group["c"]["alert_rate"] is None and "under 30" in by_group["c"]["note"]
    assert by_group["d"]["alert_rate"] is not None and by_group["d"]["auroc"] is None
    assert "under 20 of each" in by_group["d"]["note"]


def test_disparities_follow_their_definitions() -> None:
    data = _cohort()
    # with some outcomes unknown: equalized odds must use the known rows, as the rows' rates do
    result = table(
        data["groups"], outcome=data["outcome"], risk=data["risk"], threshold=THRESHOLD, known=data["known"]
    )
    rows = {(r["attribute"], r["group"]): r for r in result["rows"]}
    sex = next(d for d in result["disparities"] if d["attribute"] == "sex")
    # "unknown" and groups whose rates are not reported are left out
    assert sex["compared"]["demographic_parity"] == ["a", "b", "d"]
    assert sex["compared"]["equalized_odds"] == ["a", "b"]
    assert sex["compared"]["auroc"] == ["a", "b"]
    rates = [rows[("sex", g)]["alert_rate"] for g in "abd"]
    assert sex["demographic_parity_difference"] == pytest.approx(max(rates) - min(rates), abs=1e-12)
    a, b = rows[("sex", "a")], rows[("sex", "b")]
    tpr_gap = abs(a["sensitivity"] - b["sensitivity"])
    fpr_gap = abs(a["specificity"] - b["specificity"])  # FPR = 1 - specificity
    assert sex["equalized_odds_difference"] == pytest.approx(max(tpr_gap, fpr_gap), abs=1e-12)
    assert sex["auroc_gap"] == pytest.approx(a["auroc"] - b["auroc"], abs=1e-12)
    assert "c_index" not in a  # no survival given


def test_too_few_groups_give_no_disparity_and_single_class_gives_none() -> None:
    n = 60
    groups = pd.DataFrame({"race_ethnicity": ["white"] * 50 + ["black"] * 10})
    outcome = np.zeros(n, dtype=int)  # one class only
    result = table(groups, outcome=outcome, risk=np.linspace(0, 1, n), threshold=0.3)
    (disparity,) = result["disparities"]
    assert disparity["demographic_parity_difference"] is None  # "black" has 10 rows < 30
    assert disparity["equalized_odds_difference"] is None and disparity["auroc_gap"] is None
    white = result["rows"][1]
    assert white["group"] == "white" and white["auroc"] is None and white["sensitivity"] is None
    # risk i/59 for white rows i = 0..49: rows 18..49 alert, 32 false positives among 50 controls;
    # the denominator is the 50 controls (over 30), not the 18 true negatives
    assert white["specificity"] == pytest.approx(18 / 50)
    json.dumps(result, allow_nan=False)


def test_lower_floors_are_honoured() -> None:
    data = _cohort()
    loose = table(
        data["groups"][["sex"]],
        outcome=data["outcome"],
        risk=data["risk"],
        threshold=THRESHOLD,
        min_rows=10,
        min_events=2,
    )
    c = next(r for r in loose["rows"] if r["group"] == "c")
    assert c["alert_rate"] is not None and c["auroc"] is not None
    labels = data["groups"]["sex"].to_numpy() == "c"
    assert c["auroc"] == pytest.approx(roc_auc_score(data["outcome"][labels], data["risk"][labels]))


def test_bad_inputs_are_refused() -> None:
    groups = pd.DataFrame({"sex": ["a", "b"] * 20})
    with pytest.raises(ValueError, match="40 rows"):
        table(groups, outcome=np.zeros(39), risk=np.zeros(40), threshold=0.5)
    with pytest.raises(ValueError, match="probabilities"):
        table(groups, outcome=np.zeros(40), risk=np.full(40, math.nan), threshold=0.5)
    with pytest.raises(ValueError, match="0/1"):
        table(groups, outcome=np.full(40, 2), risk=np.zeros(40), threshold=0.5)
    # an outcome that is unknown may hold anything
    known = np.r_[np.ones(39, bool), False]
    outcome = np.r_[np.zeros(38), 1, -1]
    table(groups, outcome=outcome, risk=np.zeros(40), threshold=0.5, known=known)
