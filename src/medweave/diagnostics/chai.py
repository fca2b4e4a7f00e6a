"""The CHAI Applied Model Card and the HTI-1 source attributes of a registered model (issue 7),
filled in from one registry record. Pure.

`chai_card` gives the CHAI Applied Model Card, draft v0.2. CHAI publishes an XML Schema
(github.com/coalition-for-health-ai/mc-schema, ``v0.2/schema.xsd``), not a JSON schema: under
``AppliedModelCard`` every key is that schema's element name in its order; a text element is a
string, repeated elements a list under their name (``Keywords: {Keyword: [...]}``,
``Results: {MetricResult: [...]}``), and ``ValueJson`` holds JSON text as in CHAI's examples
(``{"kind":"estimate_ci",...}``, ``{"kind":"single",...}``); ``data/chai_card.json`` is the tree
with a template per text element. Beside it, ``hti1_source_attributes`` answers the 31 source
attributes of a predictive decision support intervention, 45 CFR 170.315(b)(11)(iv)(B) (ONC
HTI-1), listed in ``data/hti1_source_attributes.json``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from medweave.diagnostics.card_facts import (
    GMLP,
    KINDS,
    NOT_RECORDED,
    SAFETY,
    Run,
    as_count,
    as_dict,
    as_number,
    as_text,
    checklist,
    data_limits,
    decision,
    demographic,
    fairness,
    fmt,
    fmt_n,
    limitations,
    output,
    read,
    todo,
)

CHAI_NAMESPACE = "https://mc.chai.org/v0.2/schema.xsd"

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
            "level": as_count(round(level * 100, 6)),
        }
    return {"Label": label, "ValueJson": json.dumps(payload, separators=(",", ":"), allow_nan=False)}


def _key_metric(run: Run, goal: str, results: list[dict[str, str]], interpretation: str) -> dict[str, Any]:
    rows = fmt_n(run.dataset.get("rows"))
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
    t, conformal = run.threshold, as_dict(run.report.get("conformal"))
    for key in ("alert_rate", "ppv", "sensitivity", "specificity"):
        if (x := as_number(t.get(key))) is not None:
            results[False].append(_result(f"{key.replace('_', ' ')} at threshold {fmt(t.get('value'))}", x))
    if (coverage := as_number(conformal.get("coverage"))) is not None:
        results[True].append(_result(f"Conformal coverage (alpha {fmt(conformal.get('alpha'))})", coverage))
    fair = [
        _result(f"{as_text(d.get('attribute')) or '?'}: {k.replace('_', ' ')}", x)
        for d in run.disparities
        for k in ("demographic_parity_difference", "equalized_odds_difference", "auroc_gap")
        if (x := as_number(d.get(k))) is not None
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
    named = [f for f in run.features if demographic(f)]
    counts = "; ".join(
        f"{as_text(r.get('attribute')) or '?'} {as_text(r.get('group')) or '?'} n={fmt_n(r.get('n'))}"
        for r in run.subgroups
    )
    metrics = "; ".join(f"{m.metric} {m.text()}" for m in run.metrics)
    audited = fairness(run) if run.subgroups else None
    names = f"Features whose names suggest one: {', '.join(named) or 'none'} (to be confirmed clinically)."
    status = run.get("status", "unknown")
    stages = {"proposed": "Proposed, not approved for clinical use", "approved": "Approved for local use",
              "retired": "Retired, not in use"}  # fmt: skip
    decided = status != "proposed" and as_text(run.record.get("decided_at"))
    return {
        k: as_text(run.record.get(k)) for k in ("developer", "intended_use", "intended_users", "out_of_scope")
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
        "developer_contact": as_text(run.record.get("developer_contact")),
        "stage": stages.get(status, status),
        "decision": decision(run),
        "release_date": decided or run.get("created_at"),
        "version": fmt_n(run.record.get("version")),
        "model_type": KINDS.get(run.kind or "", run.kind or "a model of unrecorded kind"),
        "fingerprint": run.fingerprint,
        "title": run.title,
        "gmlp": GMLP,
        "limitations": "\n".join(f"- {s}" for s in limitations(run)),
        "fairness": fairness(run),
        "source": run.data("source") or NOT_RECORDED,
        "license": run.data("license") or NOT_RECORDED,
        "feature_count": str(len(run.features)),
        "rows": fmt_n(run.dataset.get("rows")),
        "features": fmt_n(run.dataset.get("features")),
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
