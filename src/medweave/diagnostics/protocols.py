"""How a training run splits its rows and reads its held-out predictions (issue 7): the evaluation
protocols, the decision-threshold rule, a survival row's status at the horizon, ROC points, and
JSON-safe values. Pure functions over numpy and scikit-learn's splitters; no I/O.

Protocols (`plan`):

- ``holdout``: one stratified split, 25% of the rows held out (``train_test_split(test_size=0.25,
  stratify=..., random_state=seed)``, scikit-learn's default share and the one scikit-survival's
  guides use); the served model is the one fitted on the other 75%.
- ``cv``: ``RepeatedStratifiedKFold(n_splits=5, n_repeats=2, random_state=seed)``. Five folds
  (Hastie, Tibshirani & Friedman, The Elements of Statistical Learning, 2nd ed. 2009, section
  7.10.1, recommend five or ten), repeated twice so that each row has two held-out predictions
  from different partitions; kept small so that a run on a laptop's CPU stays quick. The served
  model is refitted on every row.
- ``published``: the protocol of the dataset's published baseline (`PUBLISHED`), where one exists.

Classification stratifies on the class, survival on the event indicator (as scikit-survival's
"Evaluating Survival Models" guide does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from medweave.errors import InvalidInput

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]
Split = tuple[Ints, Ints]

PROTOCOLS = ("holdout", "cv", "published")
HOLDOUT_TEST_SIZE = 0.25
CV_FOLDS = 5
CV_REPEATS = 2

#: The alert threshold is the highest held-out risk at which sensitivity is at least this.
SENSITIVITY_TARGET = 0.8
THRESHOLD_RULE = (
    "highest risk at which sensitivity on the held-out rows is at least 0.80 (a prespecified "
    "sensitivity, not an optimum: Leeflang et al. 2008, Clin Chem 54:729-737)"
)
#: Accuracy counts ``p >= 0.5`` as positive: the Bayes classifier for equal misclassification costs
#: (Hastie, Tibshirani & Friedman, The Elements of Statistical Learning, 2nd ed., section 2.4).
ACCURACY_THRESHOLD = 0.5
#: The ROC curve in a report keeps at most this many points.
ROC_POINTS = 101


@dataclass(frozen=True)
class Published:
    """A dataset's published evaluation protocol, as the source ran it."""

    scheme: str  # "repeated_kfold", "holdout" or "shuffle"
    source: str
    splits: int = 1  # folds for repeated_kfold, splits for shuffle
    repeats: int = 1
    test_size: float = HOLDOUT_TEST_SIZE
    random_state: int | None = None  # None: the run's seed (the source published none)
    stratified: bool = False


#: The published protocol of each dataset that has one (the baselines of `baselines`).
PUBLISHED: dict[str, Published] = {
    "wdbc": Published(
        scheme="repeated_kfold",
        source="Street, Wolberg & Mangasarian 1993 (SPIE 1905:861-870), UCI wdbc.names: 'estimated "
        "accuracy 97.5% using repeated 10-fold crossvalidations'",
        splits=10,
        repeats=10,
        stratified=True,
    ),
    "gbsg2": Published(
        scheme="holdout",
        source="scikit-survival user guide, 'Using Random Survival Forests': "
        "train_test_split(test_size=0.25, random_state=20)",
        test_size=0.25,
        random_state=20,
    ),
    "veterans": Published(
        scheme="shuffle",
        source="scikit-survival user guide, 'Introduction to Survival Support Vector Machine': "
        "ShuffleSplit(n_splits=100, test_size=0.5, random_state=0)",
        splits=100,
        test_size=0.5,
        random_state=0,
    ),
}


@dataclass(frozen=True)
class Plan:
    """The splits of one protocol: each is (training rows, held-out rows), as positions."""

    name: str
    description: str
    seed: int
    splits: tuple[Split, ...]
    refit: bool  # True: the served model is refitted on all rows; False: the split's own model
    details: dict[str, Any] = field(default_factory=dict)


def _holdout(n: int, strata: npt.NDArray[Any] | None, test_size: float, seed: int) -> Split:
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(n), test_size=test_size, stratify=strata, random_state=seed)
    return np.asarray(train, dtype=np.int64), np.asarray(test, dtype=np.int64)


def _repeated_kfold(strata: npt.NDArray[Any], folds: int, repeats: int, seed: int) -> tuple[Split, ...]:
    from sklearn.model_selection import RepeatedStratifiedKFold

    cv = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    return tuple(
        (np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
        for a, b in cv.split(np.zeros((len(strata), 1)), strata)
    )


def _shuffle(n: int, splits: int, test_size: float, seed: int) -> tuple[Split, ...]:
    from sklearn.model_selection import ShuffleSplit

    cv = ShuffleSplit(n_splits=splits, test_size=test_size, random_state=seed)
    return tuple(
        (np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)) for a, b in cv.split(np.zeros((n, 1)))
    )


def check(protocol: str | None, *, dataset: str) -> str:
    """The protocol's name (None: the default for ``dataset``); InvalidInput as `plan` raises it."""
    name = protocol if protocol is not None else ("published" if dataset in PUBLISHED else "cv")
    if name not in PROTOCOLS:
        raise InvalidInput(f"unknown protocol {name!r}; one of: {', '.join(PROTOCOLS)}")
    if name == "published" and dataset not in PUBLISHED:
        raise InvalidInput(
            f"dataset {dataset!r} has no published protocol; those that do: {', '.join(PUBLISHED)} "
            "(use holdout or cv)"
        )
    return name


def plan(protocol: str | None, *, dataset: str, strata: npt.NDArray[Any], seed: int) -> Plan:
    """The splits of ``protocol`` for ``dataset`` (None: its published protocol if it has one, else
    ``cv``); ``strata`` is the class or event indicator of each row. InvalidInput for an unknown
    protocol, or ``published`` on a dataset without one."""
    name = check(protocol, dataset=dataset)
    n = len(strata)
    on = "the event indicator" if strata.dtype == np.bool_ else "the class"
    if name == "holdout":
        split = _holdout(n, strata, HOLDOUT_TEST_SIZE, seed)
        return Plan(
            name=name,
            description=f"stratified 25% holdout on {on}: train_test_split(test_size=0.25, stratify="
            f"{'event' if strata.dtype == np.bool_ else 'class'}, random_state={seed}); fitted on "
            f"{len(split[0])} rows, evaluated on {len(split[1])}",
            seed=seed,
            splits=(split,),
            refit=False,
            details={"test_size": HOLDOUT_TEST_SIZE, "stratified_on": on},
        )
    if name == "cv":
        return Plan(
            name=name,
            description=f"repeated stratified k-fold on {on}: RepeatedStratifiedKFold(n_splits={CV_FOLDS}, "
            f"n_repeats={CV_REPEATS}, random_state={seed}); out-of-fold predictions",
            seed=seed,
            splits=_repeated_kfold(strata, CV_FOLDS, CV_REPEATS, seed),
            refit=True,
            details={"folds": CV_FOLDS, "repeats": CV_REPEATS, "stratified_on": on},
        )
    return _published(PUBLISHED[dataset], strata, seed)


def _published(p: Published, strata: npt.NDArray[Any], seed: int) -> Plan:
    n = len(strata)
    state = seed if p.random_state is None else p.random_state
    details: dict[str, Any] = {"source": p.source, "scheme": p.scheme}
    if p.scheme == "repeated_kfold":
        splits = _repeated_kfold(strata, p.splits, p.repeats, state)
        what = (
            f"{p.repeats} x stratified {p.splits}-fold CV: RepeatedStratifiedKFold(n_splits={p.splits}, "
            f"n_repeats={p.repeats}, random_state={state}); out-of-fold predictions"
        )
        details |= {"folds": p.splits, "repeats": p.repeats}
    elif p.scheme == "holdout":
        splits = (_holdout(n, strata if p.stratified else None, p.test_size, state),)
        what = (
            f"{p.test_size:.0%} holdout, not stratified: train_test_split(test_size={p.test_size}, "
            f"random_state={state}); fitted on {len(splits[0][0])} rows, evaluated on {len(splits[0][1])}"
        )
        details |= {"test_size": p.test_size}
    else:
        splits = _shuffle(n, p.splits, p.test_size, state)
        what = (
            f"{p.splits} random {1 - p.test_size:.0%}/{p.test_size:.0%} splits: ShuffleSplit(n_splits="
            f"{p.splits}, test_size={p.test_size}, random_state={state})"
        )
        details |= {"splits": p.splits, "test_size": p.test_size}
    return Plan(
        name="published",
        description=f"{what} (source: {p.source})",
        seed=state,
        splits=splits,
        refit=p.scheme != "holdout",
        details=details,
    )


# ---- reading held-out predictions ---------------------------------------------------------------


def horizon_status(event: Bools, time: Floats, horizon: float) -> tuple[Bools, Bools]:
    """(outcome, known) of each survival row at ``horizon``: the outcome is an event at or before
    it; the status is known for such an event and for anyone followed to the horizon (an event
    later, or censored at or after it), and unknown for a row censored before the horizon."""
    event = np.asarray(event, dtype=np.bool_)
    time = np.asarray(time, dtype=np.float64)
    outcome = event & (time <= horizon)
    return outcome, outcome | (time >= horizon)


def sensitivity_threshold(y: npt.ArrayLike, p: npt.ArrayLike, target: float = SENSITIVITY_TARGET) -> float:
    """The highest risk t such that alerting on ``p >= t`` flags at least ``target`` of the cases
    (the ``ceil(target * cases)``-th highest risk among cases). ValueError without a case.

    A prespecified sensitivity rather than an optimum (Youden's J, the best net benefit) chosen on
    the same rows, whose sensitivity and specificity are biased upwards (Leeflang, Moons, Reitsma &
    Zwinderman 2008, "Bias in sensitivity and specificity caused by data-driven selection of
    optimal cutoff values", Clin Chem 54:729-737). 0.8 is our declared target: an alert that
    misses at most one case in five."""
    outcomes = np.asarray(y, dtype=np.bool_)
    cases = np.sort(np.asarray(p, dtype=np.float64)[outcomes])[::-1]
    if not len(cases):
        raise ValueError("the threshold rule needs at least one case")
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target must lie in (0, 1], got {target!r}")
    k = max(1, math.ceil(target * len(cases) - 1e-9))  # 1e-9: 0.8 * 35 is 28.000000000000004
    return float(cases[k - 1])


def roc_points(y: npt.ArrayLike, p: npt.ArrayLike, *, max_points: int = ROC_POINTS) -> tuple[Floats, Floats]:
    """(fpr, tpr) of alerting on ``p >= t`` at every distinct t, from (0, 0) to (1, 1), as
    scikit-learn's ``roc_curve(drop_intermediate=False)`` with its leading (0, 0); thinned to at
    most ``max_points`` evenly spaced points (both ends kept) for a report. Needs both classes."""
    outcomes = np.asarray(y, dtype=np.bool_)
    probs = np.asarray(p, dtype=np.float64)
    positives, negatives = int(outcomes.sum()), int((~outcomes).sum())
    if not positives or not negatives:
        raise ValueError("an ROC curve needs both outcome classes")
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    order = np.argsort(-probs, kind="stable")
    last = np.r_[np.flatnonzero(np.diff(probs[order])), len(probs) - 1]  # end of each tied block
    tp = np.cumsum(outcomes[order])[last]
    fpr = np.r_[0.0, (last + 1 - tp) / negatives]
    tpr = np.r_[0.0, tp / positives]
    if len(fpr) > max_points:
        keep = np.unique(np.round(np.linspace(0, len(fpr) - 1, max_points)).astype(np.int64))
        fpr, tpr = fpr[keep], tpr[keep]
    return fpr, tpr


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python ones and non-finite floats as None, so that
    ``json.dumps(..., allow_nan=False)`` accepts it."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    return value
