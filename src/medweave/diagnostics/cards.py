"""Model cards for registered models (issue 7), filled in from one registry record and nothing else.

Pure: besides the record, only the checklists and the CHAI template in ``data/`` are read.

- `model_card` and `model_card_markdown`: the nine sections of Mitchell et al., "Model Cards for
  Model Reporting", FAT* 2019 (doi:10.1145/3287560.3287596).
- `tripod_ai`: one row per item of the TRIPOD+AI checklist (Collins et al., BMJ 2024;385:e078378):
  27 items, 52 rows counting lettered sub-items (3a, 3b, 3c, ...), wording in ``data/tripod_ai.json``.
- `chai_card`: the CHAI Applied Model Card, draft v0.2. CHAI publishes an XML Schema
  (github.com/coalition-for-health-ai/mc-schema, ``v0.2/schema.xsd``), not a JSON schema: under
  ``AppliedModelCard`` every key is that schema's element name in its order; a text element is a
  string, repeated elements a list under their name (``Keywords: {Keyword: [...]}``,
  ``Results: {MetricResult: [...]}``), and ``ValueJson`` holds JSON text as in CHAI's examples
  (``{"kind":"estimate_ci",...}``, ``{"kind":"single",...}``); ``data/chai_card.json`` is the
  tree with a template per text element. Beside it, ``hti1_source_attributes`` answers the 31
  source attributes of a predictive decision support intervention, 45 CFR 170.315(b)(11)(iv)(B)
  (ONC HTI-1), listed in ``data/hti1_source_attributes.json``.

Never claim what the run did not do: what the record lacks (funding, ethics approval, accrual dates,
intended users) is "not reported", naming who must supply it; a metric that could not be computed
(None, NaN) reads "not computable". Every card says the data are public research data, not the
deploying clinic's patients, and that the model needs local validation before clinical use
(FDA/Health Canada/MHRA Good Machine Learning Practice, 2021, principles 3 and 8-10).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any

NOT_COMPUTABLE = "not computable"
NOT_RECORDED = "not recorded"
CHAI_NAMESPACE = "https://mc.chai.org/v0.2/schema.xsd"
GMLP = (
    "Validate the model on the deploying clinic's own patients before any clinical use, give users "
    "this card, and monitor it after deployment (Good Machine Learning Practice, FDA/Health "
    "Canada/MHRA 2021, principles 3, 8, 9 and 10)."
)
#: (label, what is better) of the metrics the evaluation reports; any other shows its key.
METRICS: dict[str, tuple[str, str]] = {
    "auroc": ("AUROC", "higher (0.5 is chance)"),
    "auprc": ("AUPRC", "higher"),
    "average_precision": ("Average precision", "higher"),
    "accuracy": ("Accuracy", "higher"),
    "c_index": ("Harrell's c-index", "higher (0.5 is chance)"),
    "brier": ("Brier score", "lower"),
    "ibs": ("Integrated Brier score", "lower"),
    "calibration_slope": ("Calibration slope", "1 is ideal"),
    "calibration_intercept": ("Calibration intercept", "0 is ideal"),
}
#: Metrics of the calibration and accuracy of the risks (CHAI "safety and reliability").
SAFETY = ("brier", "ibs", "calibration_slope", "calibration_intercept")
KINDS = {
    "logistic": "L2-regularised logistic regression",
    "lightgbm": "LightGBM gradient-boosted trees",
    "coxnet": "elastic-net penalised Cox model (Coxnet) with a Breslow baseline",
    "rsf": "random survival forest",
}
#: What each kind's pipeline does to the predictors (`estimators`), learnt on training rows only.
PIPELINES = {
    "logistic": "missing values imputed by the training median, predictors standardised",
    "lightgbm": "no imputation or rescaling: the trees route missing values themselves",
    "coxnet": "missing values imputed by the training median, predictors standardised",
    "rsf": "missing values imputed by the training median, no rescaling",
}
IMBALANCE = ("class_weight", "is_unbalance", "scale_pos_weight")
#: Parts of a feature's name that suggest a (b)(11)(iv)(A)(5)-(13) variable (race, ethnicity,
#: language, sexual orientation, gender identity, sex, date of birth): anywhere in the name, or
#: (short ones) as a word of it.
DEMOGRAPHIC = ("race", "ethnic", "hispanic", "gender", "language", "orientation", "birth")
DEMOGRAPHIC_WORDS = frozenset(("sex", "age", "dob"))


def _demographic(name: str) -> bool:
    words = {w.lower() for w in re.findall(r"[A-Za-z][a-z]*", name)}
    return any(part in name.lower() for part in DEMOGRAPHIC) or bool(words & DEMOGRAPHIC_WORDS)


@cache
def checklist(name: str) -> dict[str, Any]:
    """A file of ``diagnostics/data``: ``tripod_ai.json``, ``hti1_source_attributes.json``, ..."""
    return dict(json.loads(resources.files(__package__).joinpath("data", name).read_text("utf-8")))


def todo(who: str = "the deploying organisation") -> str:
    return f"Not reported by the run; to be completed by {who}."


# ---- reading the record -------------------------------------------------------------------------


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _rows(value: Any) -> list[dict[str, Any]]:
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def _num(value: Any) -> float | None:
    """A finite real number, else None (None, NaN, infinities, booleans, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return " ".join(str(value).split()) or None


def _f(value: Any) -> str:
    x = _num(value)
    return NOT_COMPUTABLE if x is None else f"{x:.3f}" if abs(x) < 1e4 else f"{x:.4g}"


def _n(value: Any) -> str:
    x = _num(value)
    return NOT_RECORDED if x is None else str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:g}"


def _count(value: Any) -> int | float | None:
    x = _num(value)
    return int(x) if x is not None and x.is_integer() and abs(x) < 1e15 else x


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, recursively (JSON without NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@dataclass(frozen=True)
class Metric:
    key: str
    metric: str
    value: float | None
    lower: float | None
    upper: float | None
    level: float
    better: str

    @property
    def interval(self) -> str | None:
        if self.value is None or self.lower is None or self.upper is None:
            return None
        return f"{self.level * 100:g}% CI {_f(self.lower)} to {_f(self.upper)}"

    def text(self) -> str:
        return (
            NOT_COMPUTABLE if self.value is None else f"{_f(self.value)} ({self.interval or 'no interval'})"
        )


@dataclass(frozen=True)
class Run:
    """The record read once: sections default to empty, numbers are finite or None."""

    record: dict[str, Any]
    report: dict[str, Any]
    dataset: dict[str, Any]
    model: dict[str, Any]
    protocol: dict[str, Any]
    threshold: dict[str, Any]
    metrics: list[Metric]
    subgroups: list[dict[str, Any]]
    disparities: list[dict[str, Any]]
    kind: str | None
    survival: bool
    fingerprint: str
    horizon: float | None
    features: list[str]
    title: str
    design: str | None  # the evaluation protocol: "name: description (seed s)"

    def get(self, key: str, default: str = NOT_RECORDED) -> str:
        return _str(self.record.get(key)) or default

    def data(self, key: str) -> str | None:
        return _str(self.dataset.get(key))

    @property
    def attributes(self) -> list[str]:
        return list(dict.fromkeys(a for a in (_str(r.get("attribute")) for r in self.subgroups) if a))

    @property
    def pipeline(self) -> str | None:
        if self.kind not in PIPELINES:
            return None
        return f"categorical predictors one-hot encoded (first level as reference); {PIPELINES[self.kind]}"


def read(record: dict[str, Any]) -> Run:
    report = _d(record.get("report"))
    dataset, model, protocol = (_d(report.get(k)) for k in ("dataset", "model", "protocol"))
    stated = _num(_d(protocol.get("bootstrap")).get("level"))  # training's bootstrap level
    metrics = []
    for key, raw in _d(report.get("metrics")).items():
        entry = raw if isinstance(raw, dict) else {"value": raw}
        label, better = METRICS.get(key, (str(key).replace("_", " "), ""))
        value, lower, upper, level = (_num(entry.get(k)) for k in ("value", "lower", "upper", "level"))
        level = next((x for x in (level, stated) if x is not None and 0 < x < 1), 0.95)
        metrics.append(Metric(str(key), label, value, lower, upper, level, better))
    name, text, seed = (_str(protocol.get(k)) for k in ("name", "description", "seed"))
    design = f"{name or 'unnamed protocol'}: {text or 'no description'}" if name or text else None
    features = model.get("features")
    task = _str(dataset.get("task")) or _str(model.get("task")) or _str(record.get("task"))
    return Run(
        record=record,
        report=report,
        dataset=dataset,
        model=model,
        protocol=protocol,
        threshold=_d(report.get("threshold")),
        metrics=metrics,
        subgroups=_rows(_d(report.get("subgroups")).get("rows")),
        disparities=_rows(_d(report.get("subgroups")).get("disparities")),
        kind=_str(model.get("kind") or record.get("kind")),
        survival=task == "survival",
        fingerprint=_str(dataset.get("fingerprint")) or _str(record.get("fingerprint")) or NOT_RECORDED,
        horizon=_num(dataset.get("horizon_days", record.get("horizon_days"))),
        features=[s for s in map(_str, features) if s] if isinstance(features, list) else [],
        title=_str(dataset.get("title")) or _str(dataset.get("name")) or "an unnamed dataset",
        design=design and design + (f" (seed {seed})" if seed else ""),
    )


# ---- sentences the three documents share --------------------------------------------------------


def decision(run: Run) -> str:
    status, by = run.get("status", "unknown"), _str(run.record.get("decided_by"))
    if status == "proposed" or by is None:
        return f"{status}: proposed by {run.get('proposed_by')} on {run.get('created_at')}, not yet decided"
    reason = run.get("decision_reason", "no reason recorded")
    return f"{status} by {by} on {run.get('decided_at', 'an unrecorded date')}: {reason}"


def output(run: Run) -> str:
    target, t = run.data("target") or "the outcome", run.threshold
    if run.survival:
        text = f"the probability of the event ({target}) within {_n(run.horizon)} days, 1 - S(horizon | x)"
    else:
        text = f"the predicted probability of class 1 ({target})"
    if _num(t.get("value")) is None:
        return text + "; no alert threshold is recorded"
    return (
        f"{text}; an alert is raised at a risk of {_f(t.get('value'))} or more (rule: "
        f"{_str(t.get('rule')) or NOT_RECORDED}), which on the evaluation data gave alert rate "
        f"{_f(t.get('alert_rate'))}, PPV {_f(t.get('ppv'))}, sensitivity {_f(t.get('sensitivity'))} "
        f"and specificity {_f(t.get('specificity'))}"
    )


def data_limits(run: Run) -> str:
    text = (
        f"The model was developed and evaluated on {run.title} ({run.data('source') or 'source not recorded'}"
        f"; licence: {run.data('license') or NOT_RECORDED}): public research data, not the deploying "
        "clinic's patients, so population, era, measurements and outcome definition may differ and the "
        "performance reported here need not hold locally."
    )
    blob = " ".join(run.data(k) or "" for k in ("title", "source", "license")).lower()
    if "teaching" in blob or "textbook" in blob:
        text += " They are teaching data, not the full research data, and represent no clinic."
    return text


def fairness(run: Run) -> str:
    if not run.subgroups:
        return "No subgroup (fairness) analysis is recorded for this run."
    text = f"Performance was audited across {', '.join(run.attributes) or 'unnamed attributes'}; "
    text += "no bias mitigation is recorded."
    gaps = [
        (g, _str(d.get("attribute")) or "?")
        for d in run.disparities
        if (g := _num(d.get("auroc_gap"))) is not None
    ]
    if gaps:
        gap, attribute = max(gaps)
        text += f" Largest AUROC gap between groups: {_f(gap)} ({attribute})."
    return text


def limitations(run: Run) -> list[str]:
    notes = [data_limits(run)]
    notes.append(f"Validation is internal only ({run.design or 'protocol not recorded'}); no external, "
                 "temporal or local validation is recorded.")  # fmt: skip
    rows = _num(run.dataset.get("rows"))
    if rows is not None and rows < 1000:
        notes.append(f"Small sample ({_n(rows)} rows): intervals are wide and estimates may be optimistic.")
    if missing := [m.metric for m in run.metrics if m.value is None]:
        notes.append(f"Not computable on the evaluation data: {', '.join(missing)}.")
    if not run.subgroups:
        notes.append("No subgroup analysis is recorded: performance across sex, age or ethnicity is unknown.")
    if run.survival:
        notes.append(f"Risk is read at {_n(run.horizon)} days only; it says nothing about later events.")
    if run.record.get("servable") is False:
        notes.append("The model has no ONNX export, so it can be neither served nor approved.")
    return notes


def recommendations(run: Run) -> list[str]:
    recs = [GMLP]
    if _num(run.threshold.get("value")) is not None:
        recs.append("Re-check the alert threshold on local data: alert rate and PPV depend on prevalence.")
    if run.get("status") != "approved":
        recs.append(f"Not approved for clinical use (status {run.get('status', 'unknown')}).")
    return recs


# ---- Mitchell et al. model card -----------------------------------------------------------------


def model_card(record: dict[str, Any]) -> dict[str, Any]:
    """The nine sections of Mitchell et al. (2019); JSON-able, without NaN."""
    run, r = read(record), record
    text = ("id", "name", "status", "developer", "created_at", "proposed_by", "decided_by", "decided_at",
            "decision_reason", "code_version", "onnx_sha256")  # fmt: skip
    details = {k: _str(r.get(k)) for k in text} | {
        "version": _n(r.get("version")),
        "decision": decision(run),
        "model_type": KINDS.get(run.kind or "", run.kind),
        "task": "survival" if run.survival else run.data("task") or _str(r.get("task")),
        "parameters": _finite(_d(run.model.get("params"))),
        "data_fingerprint": run.fingerprint,
        "servable": r.get("servable") is True,
    }
    data = {k: run.data(k) for k in ("name", "source", "license", "target")} | {
        "title": run.title,
        "rows": _count(run.dataset.get("rows")),
        "features": _count(run.dataset.get("features")),
        "horizon_days": _count(run.horizon),
        "fingerprint": run.fingerprint,
        "preprocessing": run.pipeline,
        "protocol": run.design,
    }
    explanation = _d(run.report.get("explanation"))
    return {
        "model_details": details,
        "intended_use": {
            "primary_uses": run.get("intended_use"),
            "primary_users": run.get("intended_users", todo("the clinical lead")),
            "out_of_scope": run.get("out_of_scope"),
        },
        "factors": {"relevant_factors": run.attributes, "evaluation_factors": fairness(run)},
        "metrics": {
            "performance_measures": [asdict(m) | {"text": m.text()} for m in run.metrics],
            "decision_threshold": _finite(run.threshold) | {"output": output(run)},
        },
        "evaluation_data": data,
        "training_data": data | {"note": "Training and evaluation rows are partitions of the same dataset."},
        "quantitative_analyses": {
            "subgroups": _finite(run.subgroups),
            "disparities": _finite(run.disparities),
            "conformal": _finite(_d(run.report.get("conformal"))),
            "explanation_method": _str(explanation.get("method")),
            "global_importance": _finite(_rows(explanation.get("global"))[:10]),
        },
        "ethical_considerations": [fairness(run), data_limits(run)],
        "caveats_and_recommendations": limitations(run) + recommendations(run),
    }


def _plain(value: Any, missing: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _f(value)
    if isinstance(value, dict):
        value = ", ".join(f"{k}={_plain(v, missing)}" for k, v in value.items())
    elif isinstance(value, list):
        value = ", ".join(_plain(v, missing) for v in value)
    return _str(value) or missing


def _cell(value: Any, missing: str = NOT_RECORDED) -> str:
    """``value`` as the text of one Markdown table cell: one line, pipes escaped."""
    return _plain(value, missing).replace("\\", "\\\\").replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def _is_table(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _section(title: str, body: Any) -> list[str]:
    """A list of sentences as bullets; a dict as a field table, each list of rows as its own table."""
    lines = [f"## {title}", ""]
    if isinstance(body, list):
        return lines + [f"- {_cell(s)}" for s in body] + [""]
    fields = [[k.replace("_", " ").capitalize(), _cell(v)] for k, v in body.items() if not _is_table(v)]
    lines += _table(["Field", "Value"], fields) if fields else []
    for key, rows in body.items():
        if _is_table(rows):
            columns = [c for c in dict.fromkeys(k for row in rows for k in row) if c not in ("key", "text")]
            cells = [[_cell(row.get(c), NOT_COMPUTABLE) for c in columns] for row in rows]
            lines += [f"### {key.replace('_', ' ').capitalize()}", ""]
            lines += _table([c.replace("_", " ") for c in columns], cells) if rows else ["Nothing.", ""]
    return lines


def model_card_markdown(record: dict[str, Any]) -> str:
    """`model_card` as Markdown: a heading per section, pipe tables with escaped cells, lists."""
    card = model_card(record)
    details = card["model_details"]
    lines = [f"# Model card: {_cell(details['name'])} (version {details['version']})", ""]
    for key, body in card.items():
        lines += _section(key.replace("_", " ").capitalize(), body)
    return "\n".join(lines)


# ---- TRIPOD+AI -----------------------------------------------------------------------------------


def _tripod_answers(run: Run) -> dict[str, tuple[str, str]]:
    """Item -> (status, text) where the record answers; a "not reported" entry adds a known fact."""
    yes, na, no = "reported", "not applicable", "not reported"
    kind, params, design = run.kind, _d(run.model.get("params")), run.design
    target, model = run.data("target"), KINDS.get(run.kind or "", run.kind or "")
    found: dict[str, tuple[str, str]] = {
        "12d": (na, "Not examined: the record holds no cluster (centre) identifiers."),
        "12f": (na, "No model updating: this run develops a model."),
        "23b": (na, "Not examined: the record holds no cluster (centre) identifiers."),
        "24": (na, "No model updating: this run develops a model."),
        "26": (yes, " ".join(limitations(run))),
        "27c": (yes, GMLP),
        "22": (no, f"No exportable model object is recorded. Status: {decision(run)}."),
    }
    if kind and target:
        found["1"] = (yes, f"{run.get('name')}: development and internal validation of a prediction model "
                      f"({model}) of {target} in {run.title}.")  # fmt: skip
    if _str(run.record.get("intended_use")):
        found["3b"] = (
            yes,
            f"Intended use: {run.get('intended_use')} Out of scope: {run.get('out_of_scope')}",
        )
    if design:
        found["4"] = (yes, f"Development and internal validation of a prediction model ({design}).")
        how = " ".join(filter(None, (_str(run.protocol.get(k)) for k in ("aggregation", "final_model"))))
        found["12a"] = (yes, f"{design}. {how}".strip())
        found["16"] = (yes, "Development and evaluation rows are partitions of one dataset: same setting, "
                       "eligibility, outcome and predictors.")  # fmt: skip
        found["18c"] = (yes, f"The evaluation protocol ({design}) is part of {run.get('code_version')}.")
    if run.data("source"):
        found["5a"] = (yes, f"{data_limits(run)} Data fingerprint {run.fingerprint}.")
        found["18e"] = (yes, f"Public data: {run.data('source')}; licence: {run.data('license') or '?'}.")
    if run.pipeline and kind:
        found["7"] = (yes, f"The same pipeline for every row and group: {run.pipeline}.")
        found["11"] = (yes, f"Missing predictor values: {PIPELINES[kind]}.")
        found["12b"] = (yes, run.pipeline + ".")
        found["27a"] = (yes, f"Missing predictor values are handled as in training: {PIPELINES[kind]}.")
    if target:
        horizon = f", within {_n(run.horizon)} days" if run.survival else ""
        found["8a"] = (yes, f"Outcome: {target}{horizon}, as defined by the source data.")
    if run.features:
        more = len(run.features) - 30
        shown = ", ".join(run.features[:30]) + (f" and {more} more" if more > 0 else "")
        found["9a"] = (yes, f"{len(run.features)} predictors of the {_n(run.dataset.get('features'))} in the "
                       f"dataset as loaded: {shown}.")  # fmt: skip
    if (held := _num(run.protocol.get("held_out_rows"))) is not None:
        found["21"] = (
            no,
            f"{_n(held)} rows were held out for evaluation; events per analysis are not recorded.",
        )
    if _num(run.dataset.get("rows")) is not None:
        found["10"] = (no, f"The dataset has {_n(run.dataset.get('rows'))} rows.")
    if kind and design:
        settings = _plain(params, NOT_RECORDED)
        tuning = _str(run.protocol.get("tuning")) or NOT_RECORDED
        found["12c"] = (
            yes,
            f"{model}; hyper-parameters {settings}; tuning: {tuning}; internal validation: {design}.",
        )
    if run.metrics:
        plots = ", ".join(
            p.replace("_", " ") for p in ("reliability", "roc", "decision_curve") if run.report.get(p)
        )
        measures = ", ".join(m.metric for m in run.metrics)
        found["12e"] = (yes, f"Measures: {measures}. Plots: {plots or 'none recorded'}.")
    if kind:
        onnx = f" Served as ONNX (sha256 {run.get('onnx_sha256')})." if run.record.get("servable") else ""
        found["12g"] = (yes, f"Predictions are the fitted {model} pipeline's output, {output(run)}.{onnx}")
        found["15"] = (yes, f"The output is {output(run)}.")
    used = [k for k in IMBALANCE if params.get(k) not in (None, False)]
    if run.survival:
        found["13"] = (na, "A survival model: class-imbalance methods do not apply.")
    elif used:
        found["13"] = (yes, f"Class imbalance: {_plain({k: params[k] for k in used}, NOT_RECORDED)}.")
    elif kind:
        found["13"] = (na, "No class-imbalance method is recorded in the model's parameters.")
    if run.subgroups:
        found["14"] = (yes, fairness(run))
    if _str(run.record.get("code_version")):
        found["18f"] = (yes, f"{run.get('code_version')} (Medweave, open source under Apache-2.0).")
    if run.record.get("servable"):
        found["22"] = (yes, f"The fitted model is stored in the registry as {run.get('id')} (ONNX, sha256 "
                       f"{run.get('onnx_sha256')}). Status: {decision(run)}.")  # fmt: skip
    if any(m.interval for m in run.metrics):
        groups = f" Subgroups: {', '.join(run.attributes)}." if run.subgroups else " No subgroup estimates."
        found["23a"] = (yes, "; ".join(f"{m.metric} {m.text()}" for m in run.metrics) + "." + groups)
    return found


def tripod_ai(record: dict[str, Any]) -> list[dict[str, str]]:
    """One row per TRIPOD+AI item: item, section, topic, requirement, status, text."""
    found = _tripod_answers(read(record))
    rows = []
    for item in checklist("tripod_ai.json")["items"]:
        status, text = found.get(item["item"], ("not reported", ""))
        if status == "not reported":
            text = f"{todo(item.get('who', 'the data scientist who proposed the model'))} {text}".strip()
        keys = ("item", "section", "topic", "requirement")
        rows.append({k: item[k] for k in keys} | {"status": status, "text": text})
    return rows


# ---- CHAI Applied Model Card and HTI-1 source attributes ----------------------------------------


def _result(label: str, value: float | None, lower: float | None = None, upper: float | None = None,
            level: float = 0.95) -> dict[str, str]:  # fmt: skip
    """A ``MetricResult``; ``ValueJson`` as in CHAI's examples: an estimate with its CI, or one value."""
    # No value (nothing could be computed): the kind alone, never a made-up number.
    payload: dict[str, Any] = {"kind": "single"} if value is None else {"kind": "single", "value": value}
    if lower is not None and upper is not None:
        payload = {
            "kind": "estimate_ci",
            "estimate": value,
            "lower": lower,
            "upper": upper,
            "level": _count(round(level * 100, 6)),
        }
    return {"Label": label, "ValueJson": json.dumps(payload, separators=(",", ":"), allow_nan=False)}


def _key_metric(run: Run, goal: str, results: list[dict[str, str]], interpretation: str) -> dict[str, Any]:
    rows = _n(run.dataset.get("rows"))
    return {
        "MetricGoal": goal,
        "Results": {"MetricResult": results or [_result("No result could be computed", None)]},
        "Interpretation": interpretation,
        "TestType": f"Internal validation: {run.design or 'protocol not recorded'}.",
        "TestingDataDescription": f"Held-out rows of {run.title} ({rows} rows in all).",
        "ValidationProcessAndJustification": limitations(run)[1],
    }


def _key_metrics(run: Run) -> dict[str, Any]:
    """The three ``KeyMetrics``: discrimination and operating point, fairness, calibration."""
    results: dict[bool, list[dict[str, str]]] = {False: [], True: []}
    said: dict[bool, list[str]] = {False: [], True: []}
    for m in run.metrics:
        said[m.key in SAFETY].append(f"{m.metric} {m.text()}, {m.better or 'see its definition'}")
        if m.value is not None:
            results[m.key in SAFETY].append(_result(m.metric, m.value, m.lower, m.upper, m.level))
    t, conformal = run.threshold, _d(run.report.get("conformal"))
    for key in ("alert_rate", "ppv", "sensitivity", "specificity"):
        if (x := _num(t.get(key))) is not None:
            results[False].append(_result(f"{key.replace('_', ' ')} at threshold {_f(t.get('value'))}", x))
    if (coverage := _num(conformal.get("coverage"))) is not None:
        results[True].append(_result(f"Conformal coverage (alpha {_f(conformal.get('alpha'))})", coverage))
    fair = [
        _result(f"{_str(d.get('attribute')) or '?'}: {k.replace('_', ' ')}", x)
        for d in run.disparities
        for k in ("demographic_parity_difference", "equalized_odds_difference", "auroc_gap")
        if (x := _num(d.get(k))) is not None
    ]
    useful = f"{'; '.join(said[False]) or 'No metric recorded'}. Output: {output(run)}."
    safe = "; ".join(said[True]) or "No metric recorded."
    return {
        "UsefulnessUsabilityEfficacy": _key_metric(
            run, "Discrimination and alerting.", results[False], useful
        ),
        "FairnessEquity": _key_metric(
            run, "Performance gaps between sociodemographic groups.", fair, fairness(run)
        ),
        "SafetyReliability": _key_metric(run, "Calibration and accuracy of the risks.", results[True], safe),
    }


def _facts(run: Run) -> dict[str, str | None]:
    """What the record says, keyed by HTI-1 attribute (``data/hti1_source_attributes.json``) and by
    the other fields the CHAI template names; None where the run cannot know."""
    named = [f for f in run.features if _demographic(f)]
    counts = "; ".join(
        f"{_str(r.get('attribute')) or '?'} {_str(r.get('group')) or '?'} n={_n(r.get('n'))}"
        for r in run.subgroups
    )
    metrics = "; ".join(f"{m.metric} {m.text()}" for m in run.metrics)
    audited = fairness(run) if run.subgroups else None
    names = f"Features whose names suggest one: {', '.join(named) or 'none'} (to be confirmed clinically)."
    status = run.get("status", "unknown")
    stages = {"proposed": "Proposed, not approved for clinical use", "approved": "Approved for local use",
              "retired": "Retired, not in use"}  # fmt: skip
    decided = status != "proposed" and _str(run.record.get("decided_at"))
    return {
        k: _str(run.record.get(k)) for k in ("developer", "intended_use", "intended_users", "out_of_scope")
    } | {
        "output_value": output(run) if run.kind else None,
        "output_type": "A prediction (a probability); with the alert threshold, also a classification.",
        "risks_limitations": " ".join(limitations(run)),
        "demographic_inputs": names if run.features else None,
        "demographic_representativeness": f"Evaluation rows by group: {counts}." if counts else None,
        "training_relevance": data_limits(run),
        "fairness_approach": audited,
        "bias_management": audited,
        "internal_validity": f"{metrics} ({run.design or 'protocol not recorded'})." if metrics else None,
        "internal_fairness": fairness(run) if run.disparities else None,
        # CHAI fields beyond HTI-1:
        **{k: run.get(k) for k in ("id", "name", "code_version")},
        "developer_contact": _str(run.record.get("developer_contact")),
        "stage": stages.get(status, status),
        "decision": decision(run),
        "release_date": decided or run.get("created_at"),
        "version": _n(run.record.get("version")),
        "model_type": KINDS.get(run.kind or "", run.kind or "a model of unrecorded kind"),
        "fingerprint": run.fingerprint,
        "title": run.title,
        "gmlp": GMLP,
        "limitations": "\n".join(f"- {s}" for s in limitations(run)),
        "fairness": fairness(run),
        "source": run.data("source") or NOT_RECORDED,
        "license": run.data("license") or NOT_RECORDED,
        "feature_count": str(len(run.features)),
        "rows": _n(run.dataset.get("rows")),
        "features": _n(run.dataset.get("features")),
        "target": run.data("target") or NOT_RECORDED,
    }


def _fill(template: Any, values: dict[str, Any]) -> Any:
    """The template tree with its ``{field}``s filled; a lone ``{field}`` takes the value as is."""
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    if re.fullmatch(r"\{\w+\}", template):
        return values[template[1:-1]]
    return template.format_map(values)


def chai_card(record: dict[str, Any]) -> dict[str, Any]:
    """The CHAI Applied Model Card (v0.2 element names) and the 31 HTI-1 source attributes, as JSON."""
    run = read(record)
    facts = _facts(run)
    attributes = checklist("hti1_source_attributes.json")["attributes"]
    values: dict[str, Any] = {a["key"]: todo() for a in attributes} | {
        k: v or todo() for k, v in facts.items()
    }
    values |= {
        "keywords": [k for k in (run.kind, run.data("name"), "clinical prediction model") if k],
        "key_metrics": _key_metrics(run),
        "bibliography": checklist("chai_card.json")["bibliography"],
    }
    answers = [
        {k: a[k] for k in ("key", "paragraph", "category", "attribute")}
        | {
            "status": "reported" if facts.get(a["key"]) else "not reported",
            "value": facts.get(a["key"]) or todo(),
        }
        for a in attributes
    ]
    return {
        "schema": {"name": "CHAI Applied Model Card", "version": "v0.2", "namespace": CHAI_NAMESPACE},
        "AppliedModelCard": _fill(checklist("chai_card.json")["template"], values),
        "hti1_source_attributes": answers,
    }
