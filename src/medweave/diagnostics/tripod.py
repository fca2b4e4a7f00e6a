"""The TRIPOD+AI checklist for a registered model (issue 7), answered from one registry record. Pure.

`tripod_ai` gives one row per item of TRIPOD+AI (Collins et al., BMJ 2024;385:e078378): 27 items,
52 rows counting lettered sub-items (3a, 3b, 3c, ...), wording in ``data/tripod_ai.json``. An
item the record cannot answer is "not reported" and names who must complete it; an item that
cannot apply to this run (no clusters, no model updating) is "not applicable" and says why.
"""

from __future__ import annotations

from typing import Any

from medweave.diagnostics.card_facts import (
    GMLP,
    IMBALANCE,
    KINDS,
    NOT_RECORDED,
    PIPELINES,
    Run,
    as_dict,
    as_number,
    as_text,
    checklist,
    data_limits,
    decision,
    fairness,
    fmt_n,
    limitations,
    output,
    plain,
    read,
    todo,
)

# ---- TRIPOD+AI -----------------------------------------------------------------------------------


def _tripod_answers(run: Run) -> dict[str, tuple[str, str]]:
    """Item -> (status, text) where the record answers; a "not reported" entry adds a known fact."""
    yes, na, no = "reported", "not applicable", "not reported"
    kind, params, design = run.kind, as_dict(run.model.get("params")), run.design
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
    if as_text(run.record.get("intended_use")):
        found["3b"] = (
            yes,
            f"Intended use: {run.get('intended_use')} Out of scope: {run.get('out_of_scope')}",
        )
    if design:
        found["4"] = (yes, f"Development and internal validation of a prediction model ({design}).")
        how = " ".join(filter(None, (as_text(run.protocol.get(k)) for k in ("aggregation", "final_model"))))
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
        horizon = f", within {fmt_n(run.horizon)} days" if run.survival else ""
        found["8a"] = (yes, f"Outcome: {target}{horizon}, as defined by the source data.")
    if run.features:
        more = len(run.features) - 30
        shown = ", ".join(run.features[:30]) + (f" and {more} more" if more > 0 else "")
        total = fmt_n(run.dataset.get("features"))
        found["9a"] = (
            yes,
            f"{len(run.features)} predictors of the {total} in the dataset as loaded: {shown}.",
        )
    if (held := as_number(run.protocol.get("held_out_rows"))) is not None:
        found["21"] = (
            no,
            f"{fmt_n(held)} rows were held out for evaluation; events per analysis are not recorded.",
        )
    if as_number(run.dataset.get("rows")) is not None:
        found["10"] = (no, f"The dataset has {fmt_n(run.dataset.get('rows'))} rows.")
    if kind and design:
        settings = plain(params, NOT_RECORDED)
        tuning = as_text(run.protocol.get("tuning")) or NOT_RECORDED
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
        found["13"] = (yes, f"Class imbalance: {plain({k: params[k] for k in used}, NOT_RECORDED)}.")
    elif kind:
        found["13"] = (na, "No class-imbalance method is recorded in the model's parameters.")
    if run.subgroups:
        found["14"] = (yes, fairness(run))
    if as_text(run.record.get("code_version")):
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
