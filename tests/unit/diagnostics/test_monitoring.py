"""Monitoring arithmetic: PSI against hand-worked values and its properties, the reference bins,
weekly drift, and rolling metrics once outcomes arrive."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medweave.diagnostics import metrics, monitoring


def test_psi_matches_a_hand_worked_example() -> None:
    # Siddiqi 2006's form: sum (a - e) ln(a / e) over bins.
    expected, actual = [0.25, 0.25, 0.5], [0.2, 0.3, 0.5]
    by_hand = (0.2 - 0.25) * math.log(0.2 / 0.25) + (0.3 - 0.25) * math.log(0.3 / 0.25)
    assert monitoring.psi(expected, actual) == pytest.approx(by_hand, abs=1e-15)
    assert monitoring.psi(expected, expected) == 0.0


def test_an_empty_bin_takes_the_floor_share() -> None:
    value = monitoring.psi([0.5, 0.5], [1.0, 0.0])
    floor = monitoring.EMPTY_SHARE
    assert value == pytest.approx((1.0 - 0.5) * math.log(1.0 / 0.5) + (floor - 0.5) * math.log(floor / 0.5))


@pytest.mark.parametrize(
    ("value", "reading"),
    [(0.0, "no significant shift"), (0.0999, "no significant shift"), (0.1, "moderate shift"),
     (0.2499, "moderate shift"), (0.25, "significant shift"), (3.0, "significant shift")],
)  # fmt: skip
def test_readings_follow_siddiqi(value: float, reading: str) -> None:
    assert monitoring.reading(value) == reading


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0.001, 1.0), min_size=2, max_size=12),
    st.lists(st.floats(0.001, 1.0), min_size=2, max_size=12),
)
def test_psi_is_non_negative_and_symmetric(a: list[float], b: list[float]) -> None:
    n = min(len(a), len(b))
    e = np.array(a[:n]) / sum(a[:n])
    f = np.array(b[:n]) / sum(b[:n])
    assert monitoring.psi(e.tolist(), f.tolist()) >= -1e-12
    assert monitoring.psi(e.tolist(), f.tolist()) == pytest.approx(monitoring.psi(f.tolist(), e.tolist()))


def test_reference_deciles_and_a_missing_bin() -> None:
    values = np.concatenate([np.arange(100, dtype=float), [np.nan] * 10])
    ref = monitoring.reference({"x": values})["x"]
    assert len(ref["edges"]) == 9 and len(ref["shares"]) == 11
    assert sum(ref["shares"]) == pytest.approx(1.0)
    assert ref["shares"][-1] == pytest.approx(10 / 110)  # missing values have their own bin
    same = monitoring._shares(values, ref["edges"])
    assert monitoring.psi(ref["shares"], same) == pytest.approx(0.0)


def test_weekly_drift_sees_a_shifted_population() -> None:
    rng = np.random.default_rng(0)
    ref = monitoring.reference({"sbp": rng.normal(130, 15, 2000)})
    monday = datetime(2026, 11, 2, 9, tzinfo=UTC)
    rows = [
        (monday + timedelta(hours=i % 100), {"sbp": float(v)}) for i, v in enumerate(rng.normal(130, 15, 300))
    ]
    rows += [
        (monday + timedelta(days=7, hours=i % 100), {"sbp": float(v)})
        for i, v in enumerate(rng.normal(150, 15, 300))
    ]
    [sbp] = monitoring.drift(ref, rows)
    first, second = sbp["series"]
    assert (first["week"], second["week"]) == ("2026-11-02", "2026-11-09")
    assert first["psi"] < monitoring.PSI_MODERATE < monitoring.PSI_SIGNIFICANT < second["psi"]
    assert sbp["latest"] == second["psi"] and sbp["reading"] == "significant shift"


def test_rolling_metrics_need_enough_outcomes_of_both_kinds() -> None:
    rng = np.random.default_rng(1)
    risk = rng.uniform(0.05, 0.95, 400)
    outcome = (rng.uniform(size=400) < risk).astype(int)
    rolled = monitoring.rolling(risk.tolist(), outcome.tolist())
    assert rolled["auroc"] == pytest.approx(metrics.auroc(outcome, risk))
    assert rolled["calibration_slope"] == pytest.approx(metrics.calibration_slope(outcome, risk), rel=1e-9)
    assert rolled["n"] == 400
    assert monitoring.rolling(risk[:40].tolist(), outcome[:40].tolist())["auroc"] is None
    assert monitoring.rolling(risk.tolist(), [0] * 400)["auroc"] is None
    more = rng.uniform(0.05, 0.95, 100)
    recent_risk, recent = np.r_[risk, more], np.r_[outcome, (rng.uniform(size=100) < more).astype(int)]
    old_wrong = monitoring.rolling(
        np.r_[np.zeros(100), recent_risk].tolist(), np.r_[np.ones(100, int), recent].tolist()
    )
    assert old_wrong["n"] == monitoring.WINDOW  # only the latest 500: the 100 wrong old ones are out
    assert old_wrong["auroc"] == pytest.approx(metrics.auroc(recent, recent_risk))
