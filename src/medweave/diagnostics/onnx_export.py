"""Serving a fitted model through ONNX Runtime (issue 7): export, and the risk read back.

`to_onnx` writes a `FittedModel` as one ONNX graph with one input ``x`` (float64, ``[n, f]``, the
features in `FittedModel.features` order, NaN for a missing value) and one output ``risk``
(float64, ``[n]``): the same number `FittedModel.risk` gives, to 1e-6 or better. `OnnxRisk`
runs such a graph in an ONNX Runtime session.

Every graph is written here with ``onnx.helper``, in double precision from input to output:

- ``logistic``: NaN -> training median (``IsNaN``, ``Where``), ``(x - mean) / scale``, the dot
  product with the coefficients plus the intercept, ``Sigmoid``.
- ``lightgbm``: the boosted trees as one ``ai.onnx.ml`` ``TreeEnsemble`` (opset 5: double
  thresholds and leaf values; onnxmltools writes the float32 ``TreeEnsembleClassifier``, whose
  rounded thresholds send a row lying between a threshold and its float32 neighbour down the other
  branch), then ``Sigmoid``. LightGBM routes a missing value by each split's missing type: ``NaN``
  takes the split's default side, ``None`` reads NaN as 0; both are written per split as the side
  a NaN takes. Categorical splits are not exported.
- ``coxnet``: impute and scale as for logistic, the linear predictor ``lp = x.beta - offset``
  (scikit-survival centres by the training mean through ``offset_``, and predicts with the last,
  smallest alpha of the path), then ``risk = 1 - S0(h) ** exp(lp)``, ``S0(h) = exp(-H0(h))`` the
  Breslow baseline survival at the horizon, read from the fitted model and baked in as a constant.
- ``rsf`` is refused (`NotServable`).

The bytes depend only on the model: no names, dates or versions that change between runs.
onnx is imported inside the functions that build graphs, so importing this module needs only numpy
and onnxruntime.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import onnxruntime

from medweave.diagnostics.estimators import FittedModel, task_of
from medweave.errors import InvalidInput

if TYPE_CHECKING:
    import onnx

INPUT = "x"
OUTPUT = "risk"
#: Opsets and IR version written into every graph, pinned so that the bytes do not move with the
#: installed onnx: ai.onnx 21 and ai.onnx.ml 5 (``TreeEnsemble``) arrived together in onnx 1.16.
OPSET = 21
ML_OPSET = 5
IR_VERSION = 10
#: LightGBM's ``kZeroThreshold`` (1e-35f): with missing type ``Zero`` a value within it is missing.
_ZERO = float(np.float32(1e-35))
#: What LightGBM's ``dump_model`` writes for an infinite threshold (``Common::AvoidInf``).
_HUGE = 1e300


class NotServable(InvalidInput):
    """A model that has no ONNX form here; the message says why."""


def to_onnx(model: FittedModel) -> bytes:
    """The serialised ONNX model of ``model``, checked by ``onnx.checker``; same model, same bytes."""
    task_of(model.kind)
    if model.kind == "rsf":
        raise NotServable(
            "a random survival forest is not exported to ONNX: its risk averages per-leaf survival "
            "curves, which no converter writes; serve coxnet, logistic or lightgbm"
        )
    graph = _Graph(len(model.features))
    if model.kind == "logistic":
        _logistic(graph, model.estimator)
    elif model.kind == "lightgbm":
        _lightgbm(graph, model.estimator)
    else:
        _coxnet(graph, model.estimator, model.horizon)
    return graph.serialise(model)


class OnnxRisk:
    """An exported model in an ONNX Runtime session; single-threaded unless ``threads`` says
    otherwise, as one row at a time is fastest on one thread."""

    def __init__(self, onnx_bytes: bytes, *, threads: int = 1) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: ORT's notices go to stderr, not to a logger
        try:
            self._session = onnxruntime.InferenceSession(
                onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own untyped errors for a bad model
            raise InvalidInput(f"not a loadable ONNX model: {exc}") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != INPUT or len(inputs[0].shape) != 2:
            raise InvalidInput(f"an ONNX risk model has one input {INPUT!r} of shape [n, features]")
        meta = self._session.get_modelmeta().custom_metadata_map
        self.kind: str | None = meta.get("medweave.kind")
        self.features: tuple[str, ...] | None = (
            tuple(json.loads(meta["medweave.features"])) if "medweave.features" in meta else None
        )
        width = inputs[0].shape[1]
        if not isinstance(width, int):
            raise InvalidInput("an ONNX risk model must fix its number of feature columns")
        self._width = width

    @property
    def n_features(self) -> int:
        return self._width

    def risk(self, x: Any) -> npt.NDArray[np.float64]:
        """The risk of each row of ``x``: an ``(n, f)`` array in feature order, or a frame holding
        the model's feature columns (read by name)."""
        if hasattr(x, "columns") and self.features is not None:
            missing = [f for f in self.features if f not in x.columns]
            if missing:
                raise InvalidInput(f"missing feature columns: {', '.join(missing[:5])}")
            x = x.loc[:, list(self.features)].to_numpy(dtype="float64", na_value=np.nan)
        try:
            rows = np.ascontiguousarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"features must be numbers: {exc}") from exc
        if rows.ndim != 2 or rows.shape[1] != self._width:
            raise InvalidInput(f"expected {self._width} feature columns, got shape {rows.shape}")
        if np.isinf(rows).any():
            raise InvalidInput("feature values must be finite, or NaN where missing")
        if rows.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        (out,) = self._session.run([OUTPUT], {INPUT: rows})
        return np.asarray(out, dtype=np.float64)


# --- graph building ------------------------------------------------------------------------------


class _Graph:
    """Nodes and constants appended in order; each name is a step number, so the bytes repeat."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[onnx.TensorProto] = []
        self.ml = False

    def constant(self, value: Any, dtype: Any = np.float64) -> str:
        from onnx import numpy_helper

        name = f"c{len(self.constants)}"
        self.constants.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name=name))
        return name

    def node(self, op: str, *inputs: str, domain: str = "", **attributes: Any) -> str:
        from onnx import helper

        name = f"n{len(self.nodes)}_{op}"
        self.nodes.append(helper.make_node(op, list(inputs), [name], name=name, domain=domain, **attributes))
        return name

    def serialise(self, model: FittedModel) -> bytes:
        import onnx
        from onnx import TensorProto, helper

        last = self.nodes[-1]
        last.output[0] = OUTPUT
        graph = helper.make_graph(
            self.nodes,
            f"medweave_{model.kind}",
            [helper.make_tensor_value_info(INPUT, TensorProto.DOUBLE, [None, self.width])],
            [helper.make_tensor_value_info(OUTPUT, TensorProto.DOUBLE, [None])],
            initializer=self.constants,
        )
        opsets = [helper.make_opsetid("", OPSET)]
        if self.ml:
            opsets.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
        proto = helper.make_model(graph, opset_imports=opsets, producer_name="medweave")
        proto.ir_version = IR_VERSION
        meta = {
            "medweave.kind": model.kind,
            "medweave.features": json.dumps(list(model.features)),
            "medweave.horizon": "" if model.horizon is None else repr(float(model.horizon)),
        }
        helper.set_model_props(proto, meta)
        onnx.checker.check_model(proto, full_check=True)
        return proto.SerializeToString(deterministic=True)


def _steps(estimator: Any, last: str) -> tuple[list[Any], Any]:
    """The preprocessing steps of a Pipeline and its final estimator, whose class must be ``last``."""
    steps = [step for _, step in getattr(estimator, "steps", [("model", estimator)])]
    final = steps[-1]
    if type(final).__name__ != last:
        raise NotServable(f"expected a {last}, got {type(final).__name__}")
    return steps[:-1], final


def _preprocess(graph: _Graph, steps: list[Any]) -> str:
    """Median imputation and standardisation, as the Pipeline does them, on the input ``x``."""
    current = INPUT
    for step in steps:
        kind = type(step).__name__
        if kind == "SimpleImputer":
            marker = step.missing_values
            if not (isinstance(marker, float) and np.isnan(marker)) or step.add_indicator:
                raise NotServable("only an imputer of NaN without indicator columns is exported")
            fill = graph.constant(np.asarray(step.statistics_, dtype=np.float64))
            current = graph.node("Where", graph.node("IsNaN", current), fill, current)
        elif kind == "StandardScaler":
            if step.mean_ is not None:
                current = graph.node("Sub", current, graph.constant(step.mean_))
            if step.scale_ is not None:
                current = graph.node("Div", current, graph.constant(step.scale_))
        else:
            raise NotServable(f"a pipeline step {kind} has no ONNX form here")
    return current


def _logistic(graph: _Graph, estimator: Any) -> None:
    steps, final = _steps(estimator, "LogisticRegression")
    if len(final.classes_) != 2:
        raise NotServable("only a binary logistic regression is exported")
    rows = _preprocess(graph, steps)
    # scikit-learn: predict_proba[:, 1] = expit(x @ coef_[0] + intercept_[0]) for two classes.
    score = graph.node("MatMul", rows, graph.constant(final.coef_[0]))
    graph.node("Sigmoid", graph.node("Add", score, graph.constant(final.intercept_[0])))


def _coxnet(graph: _Graph, estimator: Any, horizon: float | None) -> None:
    from sksurv.functions import StepFunction

    steps, final = _steps(estimator, "CoxnetSurvivalAnalysis")
    if horizon is None:
        raise InvalidInput("a survival model needs a horizon to give a risk")
    # FittedModel.risk predicts with alpha=None: the last column of coef_, offset_ and baselines.
    coef = np.asarray(final.coef_[:, -1], dtype=np.float64)
    offset = float(final.offset_[-1])
    # The Breslow cumulative baseline hazard H0, read through the public step functions: for any
    # row, predict_cumulative_hazard_function returns StepFunction(x, y=H0, a=exp(lp)).
    hazard = final.predict_cumulative_hazard_function(np.zeros((1, coef.size)))[0]
    try:
        h0 = float(StepFunction(x=hazard.x, y=hazard.y)(float(horizon)))
    except ValueError as exc:
        raise NotServable(f"horizon {horizon} days is outside the fitted baseline: {exc}") from exc
    # scikit-survival: S(h|x) = S0(h) ** exp(lp), with S0 = exp(-H0) computed in numpy.
    s0 = float(np.exp(-np.asarray([h0]))[0])
    rows = _preprocess(graph, steps)
    lp = graph.node("Sub", graph.node("MatMul", rows, graph.constant(coef)), graph.constant(offset))
    survival = graph.node("Pow", graph.constant(s0), graph.node("Exp", lp))
    graph.node("Sub", graph.constant(1.0), survival)


def _lightgbm(graph: _Graph, estimator: Any) -> None:
    from onnx import helper, numpy_helper

    if type(estimator).__name__ != "LGBMClassifier":
        raise NotServable(f"expected an LGBMClassifier, got {type(estimator).__name__}")
    dump = estimator.booster_.dump_model()  # the iterations Booster.predict uses: best, else all
    objective = str(dump.get("objective", "")).split()
    if not objective or objective[0] != "binary" or dump.get("num_class") != 1:
        raise NotServable(f"only a binary LightGBM objective is exported, not {' '.join(objective)!r}")
    if dump.get("average_output"):
        raise NotServable("a LightGBM random forest (average_output) is not exported")
    if dump.get("num_tree_per_iteration", 1) != 1 or dump.get("max_feature_idx") != graph.width - 1:
        raise NotServable("the LightGBM model does not have one tree per iteration over these features")
    sigmoid = 1.0
    for token in objective[1:]:
        if token.startswith("sigmoid:"):
            sigmoid = float(token.split(":", 1)[1])
    trees = _Trees()
    for info in dump["tree_info"]:
        trees.add(info["tree_structure"])
    ensemble = helper.make_node(
        "TreeEnsemble",
        [INPUT],
        [f"n{len(graph.nodes)}_TreeEnsemble"],
        name=f"n{len(graph.nodes)}_TreeEnsemble",
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function=1,  # SUM: LightGBM adds the trees' leaves (the first holds the init score)
        post_transform=0,  # NONE: the sigmoid follows in double precision
        tree_roots=trees.roots,
        nodes_featureids=trees.features,
        nodes_splits=numpy_helper.from_array(np.asarray(trees.splits, dtype=np.float64)),
        nodes_modes=numpy_helper.from_array(np.zeros(len(trees.splits), dtype=np.uint8)),  # LEQ
        nodes_truenodeids=trees.true_ids,
        nodes_trueleafs=trees.true_leaf,
        nodes_falsenodeids=trees.false_ids,
        nodes_falseleafs=trees.false_leaf,
        nodes_missing_value_tracks_true=trees.nan_true,
        leaf_targetids=[0] * len(trees.leaves),
        leaf_weights=numpy_helper.from_array(np.asarray(trees.leaves, dtype=np.float64)),
    )
    graph.nodes.append(ensemble)
    graph.ml = True
    raw = ensemble.output[0]
    if sigmoid != 1.0:
        raw = graph.node("Mul", raw, graph.constant(sigmoid))
    flat = graph.node("Reshape", raw, graph.constant([-1], dtype=np.int64))
    graph.node("Sigmoid", flat)


class _Trees:
    """LightGBM's dumped trees as the flat ``nodes_*`` and ``leaf_*`` lists of ``TreeEnsemble``."""

    def __init__(self) -> None:
        self.roots: list[int] = []
        self.features: list[int] = []
        self.splits: list[float] = []
        self.true_ids: list[int] = []
        self.true_leaf: list[int] = []
        self.false_ids: list[int] = []
        self.false_leaf: list[int] = []
        self.nan_true: list[int] = []
        self.leaves: list[float] = []

    def add(self, root: dict[str, Any]) -> None:
        self.roots.append(len(self.splits))
        if "leaf_value" in root:  # a tree of one leaf: one node whose two sides reach that leaf
            leaf = self._leaf(root)
            self._node(0, 0.0, (leaf, 1), (leaf, 1), nan_left=False)
            return
        self._split(root)

    def _leaf(self, node: dict[str, Any]) -> int:
        self.leaves.append(float(node["leaf_value"]))
        return len(self.leaves) - 1

    def _node(
        self, feature: int, threshold: float, left: tuple[int, int], right: tuple[int, int], *, nan_left: bool
    ) -> None:
        self.features.append(feature)
        self.splits.append(threshold)
        self.true_ids.append(left[0])
        self.true_leaf.append(left[1])
        self.false_ids.append(right[0])
        self.false_leaf.append(right[1])
        self.nan_true.append(int(nan_left))

    def _split(self, node: dict[str, Any]) -> int:
        """Write ``node`` and, depth first, its children; return its index in ``nodes_*``."""
        if node.get("decision_type") != "<=":
            raise NotServable("a LightGBM model with categorical splits is not exported")
        threshold = float(node["threshold"])
        if abs(threshold) >= _HUGE:  # dump_model writes LightGBM's infinite thresholds as 1e300
            threshold = float(np.copysign(np.inf, threshold))
        missing = node.get("missing_type", "None")
        default_left = bool(node["default_left"])
        if missing == "NaN":
            nan_left = default_left
        elif missing == "None":
            nan_left = threshold >= 0.0  # LightGBM reads NaN as 0.0
        elif missing == "Zero" and (threshold >= _ZERO if default_left else threshold < -_ZERO):
            # NaN and |x| <= 1e-35 are missing and take the default side, which `<=` already
            # gives any value that small; a split where it would not is refused below.
            nan_left = default_left
        else:
            raise NotServable(f"a LightGBM split with missing type {missing} is not exported here")
        index = len(self.splits)
        self._node(int(node["split_feature"]), threshold, (0, 0), (0, 0), nan_left=nan_left)
        for side, ids, flags in (
            ("left_child", self.true_ids, self.true_leaf),
            ("right_child", self.false_ids, self.false_leaf),
        ):
            child = node[side]
            if "leaf_value" in child:
                ids[index], flags[index] = self._leaf(child), 1
            else:
                ids[index], flags[index] = self._split(child), 0
        return index
