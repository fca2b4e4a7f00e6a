"""Issue 7, serving: an exported model's ONNX Runtime risk agrees with the native model to 1e-6."""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt
import pytest

pytest.importorskip("onnx")
pytest.importorskip("lightgbm")
pytest.importorskip("sksurv")

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from medweave.diagnostics import datasets, estimators
from medweave.diagnostics.onnx_export import INPUT, OUTPUT, NotServable, OnnxRisk, to_onnx
from medweave.errors import InvalidInput

TOLERANCE = 1e-6
#: A fitted model, its ONNX Runtime session, and the rows it was fitted on as an array.
Case = tuple[estimators.FittedModel, OnnxRisk, npt.NDArray[np.float64]]
CASES = [
    ("logistic", "wdbc"),
    ("lightgbm", "wdbc"),
    ("logistic", "nhanes"),
    ("lightgbm", "nhanes"),
    ("coxnet", "gbsg2"),
    ("coxnet", "framingham"),
]


@cache
def _data(name: str) -> datasets.Dataset:
    return datasets.load(name)


@cache
def _fitted(kind: str, name: str) -> Case:
    """The model fitted on every row (parity is about arithmetic, not generalisation), its ONNX
    session, and the rows as an array."""
    data = _data(name)
    model = estimators.fit(kind, data.features, data.target, horizon=estimators.HORIZON_DAYS.get(name))
    rows = data.features.to_numpy(dtype="float64", na_value=np.nan)
    return model, OnnxRisk(to_onnx(model)), rows


def _native(model: estimators.FittedModel, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # Coxnet's exp(lp) overflows to inf for absurd inputs, as ONNX's does; numpy also warns.
    with np.errstate(over="ignore"):
        return model.risk(rows)


def _max_gap(
    case: tuple[estimators.FittedModel, OnnxRisk, npt.NDArray[np.float64]], rows: npt.NDArray[np.float64]
) -> float:
    model, served, _ = case
    ours = served.risk(rows)
    assert ours.shape == (len(rows),) and ours.dtype == np.float64
    return float(np.max(np.abs(ours - _native(model, rows))))


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_parity_on_every_row_with_and_without_injected_gaps(kind: str, name: str) -> None:
    case = _fitted(kind, name)
    _, served, rows = case
    assert served.n_features == rows.shape[1] and served.kind == kind
    assert _max_gap(case, rows) <= TOLERANCE
    gappy = rows.copy()
    gappy[np.random.default_rng(7).random(rows.shape) < 0.3] = np.nan
    assert _max_gap(case, gappy) <= TOLERANCE
    assert _max_gap(case, np.full((2, rows.shape[1]), np.nan)) <= TOLERANCE  # nothing known
    assert _max_gap(case, rows[:1]) <= TOLERANCE  # the point-of-care call: a single row


def _thresholds(model: estimators.FittedModel) -> list[tuple[int, float]]:
    found: list[tuple[int, float]] = []
    stack = [t["tree_structure"] for t in model.estimator.booster_.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            found.append((int(node["split_feature"]), float(node["threshold"])))
            stack += [node["left_child"], node["right_child"]]
    return found


@pytest.mark.parametrize("name", ["wdbc", "nhanes"])
def test_lightgbm_rows_on_and_beside_every_threshold_take_lightgbms_branch(name: str) -> None:
    # A value equal to a split's threshold goes left, its double neighbour above goes right: a
    # float32 threshold (onnxmltools) would send some of these rows down the other branch. The
    # thresholds include LightGBM's infinite ones, which dump_model writes as 1e300.
    case = _fitted("lightgbm", name)
    _, _, rows = case
    base = np.nanmedian(rows, axis=0)
    probes = []
    for feature, threshold in sorted(set(_thresholds(case[0]))):
        for value in (threshold, np.nextafter(threshold, np.inf), np.nextafter(threshold, -np.inf)):
            row = base.copy()
            row[feature] = value
            probes.append(row)
    assert _max_gap(case, np.asarray(probes)) <= TOLERANCE


@st.composite
def _rows(draw: st.DrawFn, kind: str, name: str) -> npt.NDArray[np.float64]:
    model, _, rows = _fitted(kind, name)
    width = rows.shape[1]
    observed = st.sampled_from(sorted({float(v) for v in rows[:200].ravel() if not np.isnan(v)}))
    values = st.one_of(
        st.just(np.nan),
        st.just(0.0),
        observed,
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),  # far outside any training range
    )
    if kind == "lightgbm":
        values = st.one_of(values, st.sampled_from(sorted({t for _, t in _thresholds(model)})))
    count = draw(st.integers(min_value=1, max_value=4))
    return draw(arrays(np.float64, (count, width), elements=values))


@pytest.mark.parametrize(
    ("kind", "name"),
    [("logistic", "wdbc"), ("lightgbm", "wdbc"), ("lightgbm", "nhanes"), ("coxnet", "gbsg2")],
)
def test_parity_holds_for_random_rows_with_gaps_and_extremes(kind: str, name: str) -> None:
    case = _fitted(kind, name)

    # NHANES rows are 246 values wide, slow to draw: fewer of them.
    @settings(max_examples=80 if case[2].shape[1] < 100 else 25, deadline=None)
    @given(rows=_rows(kind, name))
    def check(rows: npt.NDArray[np.float64]) -> None:
        assert _max_gap(case, rows) <= TOLERANCE

    check()


def test_the_graph_is_double_precision_with_one_input_and_one_output() -> None:
    import onnx

    model, _, _ = _fitted("lightgbm", "wdbc")
    proto = onnx.load_from_string(to_onnx(model))
    (x,) = proto.graph.input
    (risk,) = proto.graph.output
    assert (x.name, risk.name) == (INPUT, OUTPUT)
    assert x.type.tensor_type.elem_type == risk.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert [d.dim_value for d in x.type.tensor_type.shape.dim][1] == 30
    assert len(risk.type.tensor_type.shape.dim) == 1
    assert {n.op_type for n in proto.graph.node} >= {"TreeEnsemble", "Sigmoid"}
    assert "Cast" not in {n.op_type for n in proto.graph.node}


@pytest.mark.parametrize(("kind", "name"), [("logistic", "wdbc"), ("lightgbm", "wdbc"), ("coxnet", "gbsg2")])
def test_export_is_deterministic(kind: str, name: str) -> None:
    model, _, _ = _fitted(kind, name)
    first = to_onnx(model)
    assert to_onnx(model) == first
    data = _data(name)
    again = estimators.fit(kind, data.features, data.target, horizon=model.horizon)
    assert to_onnx(again) == first  # a refit on the same data and seed gives the same bytes


def test_a_random_survival_forest_is_refused_with_a_reason() -> None:
    data = _data("gbsg2")
    model = estimators.fit("rsf", data.features, data.target, horizon=1826.0, params={"n_estimators": 3})
    with pytest.raises(NotServable, match="random survival forest"):
        to_onnx(model)
    assert issubclass(NotServable, InvalidInput)


def test_a_horizon_beyond_the_follow_up_is_refused() -> None:
    model, _, _ = _fitted("coxnet", "gbsg2")
    late = estimators.FittedModel(model.kind, model.features, model.estimator, horizon=1e6)
    with pytest.raises(NotServable, match="horizon"):
        to_onnx(late)


def test_lightgbm_zero_as_missing_is_refused_where_zero_cannot_take_the_default_side() -> None:
    data = _data("nhanes")
    model = estimators.fit(
        "lightgbm", data.features, data.target, params={"zero_as_missing": True, "n_estimators": 20}
    )
    with pytest.raises(NotServable, match="missing type Zero"):
        to_onnx(model)


def test_wrong_input_is_invalid_input_not_an_onnxruntime_error() -> None:
    _, served, rows = _fitted("logistic", "wdbc")
    with pytest.raises(InvalidInput, match="expected 30 feature columns, got shape"):
        served.risk(rows[:, :29])
    with pytest.raises(InvalidInput, match="expected 30 feature columns"):
        served.risk(rows[0])  # one row must still be two-dimensional
    with pytest.raises(InvalidInput, match="finite"):
        served.risk(np.where(np.arange(30) == 3, np.inf, rows[0])[None, :])
    with pytest.raises(InvalidInput, match="numbers"):
        served.risk([["a"] * 30])
    with pytest.raises(InvalidInput, match="ONNX model"):
        OnnxRisk(b"not a model")
    assert served.risk(rows[:0]).shape == (0,)


def test_a_frame_is_read_by_column_name() -> None:
    model, served, rows = _fitted("coxnet", "gbsg2")
    frame = _data("gbsg2").features
    shuffled = frame[list(reversed(frame.columns))]
    assert np.max(np.abs(served.risk(shuffled) - served.risk(rows))) == 0.0
    assert served.features == model.features
    with pytest.raises(InvalidInput, match="missing feature columns"):
        served.risk(frame.drop(columns=[frame.columns[0]]))
