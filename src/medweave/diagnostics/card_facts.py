"""What the model cards say, read once from a registry record (issue 7). Pure.

`read` turns a registry record into a `Run`: every section defaults to empty and every number is
finite or None, so no card prints NaN or fails on a record that lacks a part. The sentences the
three documents share (`decision`, `output`, `data_limits`, `fairness`, `limitations`,
`recommendations`) are written here once: ``cards`` (Mitchell et al.), ``tripod`` (TRIPOD+AI) and
``chai`` (the CHAI Applied Model Card and HTI-1 source attributes) put them in their own forms.

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
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

NOT_COMPUTABLE = "not computable"
NOT_RECORDED = "not recorded"
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


def demographic(name: str) -> bool:
    words = {w.lower() for w in re.findall(r"[A-Za-z][a-z]*", name)}
    return any(part in name.lower() for part in DEMOGRAPHIC) or bool(words & DEMOGRAPHIC_WORDS)


@cache
def checklist(name: str) -> dict[str, Any]:
    """A file of ``diagnostics/data``: ``tripod_ai.json``, ``hti1_source_attributes.json``, ..."""
    return dict(json.loads(resources.files(__package__).joinpath("data", name).read_text("utf-8")))


def todo(who: str = "the deploying organisation") -> str:
    return f"Not reported by the run; to be completed by {who}."


# ---- reading the record -------------------------------------------------------------------------


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_rows(value: Any) -> list[dict[str, Any]]:
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def as_number(value: Any) -> float | None:
    """A finite real number, else None (None, NaN, infinities, booleans, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def as_text(value: Any) -> str | None:
    if value is None or isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return " ".join(str(value).split()) or None


def fmt(value: Any) -> str:
    x = as_number(value)
    return NOT_COMPUTABLE if x is None else f"{x:.3f}" if abs(x) < 1e4 else f"{x:.4g}"


def fmt_n(value: Any) -> str:
    x = as_number(value)
    return NOT_RECORDED if x is None else str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:g}"


def as_count(value: Any) -> int | float | None:
    x = as_number(value)
    return int(x) if x is not None and x.is_integer() and abs(x) < 1e15 else x


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, recursively (JSON without NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
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
        return f"{self.level * 100:g}% CI {fmt(self.lower)} to {fmt(self.upper)}"

    def text(self) -> str:
        return (
            NOT_COMPUTABLE if self.value is None else f"{fmt(self.value)} ({self.interval or 'no interval'})"
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
        return as_text(self.record.get(key)) or default

    def data(self, key: str) -> str | None:
        return as_text(self.dataset.get(key))

    @property
    def attributes(self) -> list[str]:
        return list(dict.fromkeys(a for a in (as_text(r.get("attribute")) for r in self.subgroups) if a))

    @property
    def pipeline(self) -> str | None:
        if self.kind not in PIPELINES:
            return None
        return f"categorical predictors one-hot encoded (first level as reference); {PIPELINES[self.kind]}"


def read(record: dict[str, Any]) -> Run:
    report = as_dict(record.get("report"))
    dataset, model, protocol = (as_dict(report.get(k)) for k in ("dataset", "model", "protocol"))
    stated = as_number(as_dict(protocol.get("bootstrap")).get("level"))  # training's bootstrap level
    metrics = []
    for key, raw in as_dict(report.get("metrics")).items():
        entry = raw if isinstance(raw, dict) else {"value": raw}
        label, better = METRICS.get(key, (str(key).replace("_", " "), ""))
        value, lower, upper, level = (as_number(entry.get(k)) for k in ("value", "lower", "upper", "level"))
        level = next((x for x in (level, stated) if x is not None and 0 < x < 1), 0.95)
        metrics.append(Metric(str(key), label, value, lower, upper, level, better))
    name, text, seed = (as_text(protocol.get(k)) for k in ("name", "description", "seed"))
    design = f"{name or 'unnamed protocol'}: {text or 'no description'}" if name or text else None
    features = model.get("features")
    task = as_text(dataset.get("task")) or as_text(model.get("task")) or as_text(record.get("task"))
    return Run(
        record=record,
        report=report,
        dataset=dataset,
        model=model,
        protocol=protocol,
        threshold=as_dict(report.get("threshold")),
        metrics=metrics,
        subgroups=as_rows(as_dict(report.get("subgroups")).get("rows")),
        disparities=as_rows(as_dict(report.get("subgroups")).get("disparities")),
        kind=as_text(model.get("kind") or record.get("kind")),
        survival=task == "survival",
        fingerprint=as_text(dataset.get("fingerprint")) or as_text(record.get("fingerprint")) or NOT_RECORDED,
        horizon=as_number(dataset.get("horizon_days", record.get("horizon_days"))),
        features=[s for s in map(as_text, features) if s] if isinstance(features, list) else [],
        title=as_text(dataset.get("title")) or as_text(dataset.get("name")) or "an unnamed dataset",
        design=design and design + (f" (seed {seed})" if seed else ""),
    )


# ---- sentences the three documents share --------------------------------------------------------


def decision(run: Run) -> str:
    status, by = run.get("status", "unknown"), as_text(run.record.get("decided_by"))
    if status == "proposed" or by is None:
        return f"{status}: proposed by {run.get('proposed_by')} on {run.get('created_at')}, not yet decided"
    reason = run.get("decision_reason", "no reason recorded")
    return f"{status} by {by} on {run.get('decided_at', 'an unrecorded date')}: {reason}"


def output(run: Run) -> str:
    target, t = run.data("target") or "the outcome", run.threshold
    if run.survival:
        text = f"the probability of the event ({target}) within {fmt_n(run.horizon)} days, 1 - S(horizon | x)"
    else:
        text = f"the predicted probability of class 1 ({target})"
    if as_number(t.get("value")) is None:
        return text + "; no alert threshold is recorded"
    return (
        f"{text}; an alert is raised at a risk of {fmt(t.get('value'))} or more (rule: "
        f"{as_text(t.get('rule')) or NOT_RECORDED}), which on the evaluation data gave alert rate "
        f"{fmt(t.get('alert_rate'))}, PPV {fmt(t.get('ppv'))}, sensitivity {fmt(t.get('sensitivity'))} "
        f"and specificity {fmt(t.get('specificity'))}"
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
        (g, as_text(d.get("attribute")) or "?")
        for d in run.disparities
        if (g := as_number(d.get("auroc_gap"))) is not None
    ]
    if gaps:
        gap, attribute = max(gaps)
        text += f" Largest AUROC gap between groups: {fmt(gap)} ({attribute})."
    return text


def limitations(run: Run) -> list[str]:
    notes = [data_limits(run)]
    notes.append(f"Validation is internal only ({run.design or 'protocol not recorded'}); no external, "
                 "temporal or local validation is recorded.")  # fmt: skip
    rows = as_number(run.dataset.get("rows"))
    if rows is not None and rows < 1000:
        notes.append(
            f"Small sample ({fmt_n(rows)} rows): intervals are wide and estimates may be optimistic."
        )
    if missing := [m.metric for m in run.metrics if m.value is None]:
        notes.append(f"Not computable on the evaluation data: {', '.join(missing)}.")
    if not run.subgroups:
        notes.append("No subgroup analysis is recorded: performance across sex, age or ethnicity is unknown.")
    if run.survival:
        notes.append(f"Risk is read at {fmt_n(run.horizon)} days only; it says nothing about later events.")
    if run.record.get("servable") is False:
        notes.append("The model has no ONNX export, so it can be neither served nor approved.")
    return notes


def recommendations(run: Run) -> list[str]:
    recs = [GMLP]
    if as_number(run.threshold.get("value")) is not None:
        recs.append("Re-check the alert threshold on local data: alert rate and PPV depend on prevalence.")
    if run.get("status") != "approved":
        recs.append(f"Not approved for clinical use (status {run.get('status', 'unknown')}).")
    return recs


def plain(value: Any, missing: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return fmt(value)
    if isinstance(value, dict):
        value = ", ".join(f"{k}={plain(v, missing)}" for k, v in value.items())
    elif isinstance(value, list):
        value = ", ".join(plain(v, missing) for v in value)
    return as_text(value) or missing
