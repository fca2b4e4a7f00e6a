"""Issue 7, published baselines: each figure reproduced under its source's own protocol."""

from __future__ import annotations

import pytest

pytest.importorskip("sksurv")

from medweave.diagnostics.baselines import (
    Baseline,
    gbsg2_coxnet,
    gbsg2_random_survival_forest,
    veterans_survival_svm,
    wdbc_logistic_regression,
)


def _check(result: Baseline, tolerance: float) -> None:
    assert result.published.keys() == result.ours.keys()
    for metric, published in result.published.items():
        assert result.ours[metric] == pytest.approx(published, abs=tolerance), (result.name, metric)
    assert result.seconds > 0


def test_gbsg2_random_survival_forest_matches_the_user_guide() -> None:
    # Same data, encoding, split and seeds: the forest is deterministic for a fixed random_state
    # whatever n_jobs, so the guide's 0.67453 (5 decimals) must come back to its rounding.
    _check(gbsg2_random_survival_forest(), tolerance=5e-6)


def test_gbsg2_coxnet_matches_the_user_guide() -> None:
    # Coxnet is deterministic (coordinate descent, no randomness): the guide prints 3 decimals, so
    # the only slack is rounding, half a unit in the third decimal.
    result = gbsg2_coxnet()
    _check(result, tolerance=5e-4)
    assert round(result.ours["c_index"], 3) == 0.688
    assert round(result.ours["ibs"], 3) == 0.189


@pytest.mark.slow
def test_veterans_survival_svm_matches_the_user_guide() -> None:
    # 13 alphas x 100 splits = 1300 fits on 68 rows. Splits and seeds are fixed, so the search is
    # deterministic up to the optimiser's floating point (we get 0.7201). The mean c of the 13
    # alphas spans only 0.713-0.720, so the exact best alpha is asserted too; 0.01 allows for a
    # different BLAS or scikit-learn release moving the optimiser, not for a different protocol.
    result = veterans_survival_svm()
    _check(result, tolerance=0.01)
    assert "alpha=0.00390625" in result.protocol  # 2**-8, the guide's best alpha


def test_wdbc_logistic_regression_accuracy() -> None:
    # A different linear model from the published MSM-T plane, so only about equal, not identical:
    # the fold accuracies have SD 0.018, and the 10x10 mean moves with the split seed (0.9777 to
    # 0.9793 over seeds 0-5; 0.9780 at seed 0), all inside 0.005 of 0.975, though not by much.
    _check(wdbc_logistic_regression(), tolerance=0.005)
