"""The model card of Mitchell et al., "Model Cards for Model Reporting", FAT* 2019
(doi:10.1145/3287560.3287596), for a registered model (issue 7), filled in from one registry
record and nothing else. Pure.

`model_card` gives the nine sections as JSON (without NaN) and `model_card_markdown` the same as
Markdown. The other two documents of a model are in ``tripod`` (TRIPOD+AI) and ``chai`` (CHAI
Applied Model Card, HTI-1); what all three say is read in ``card_facts``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from medweave.diagnostics.card_facts import (
    KINDS,
    NOT_COMPUTABLE,
    NOT_RECORDED,
    as_count,
    as_dict,
    as_rows,
    as_text,
    data_limits,
    decision,
    fairness,
    fmt_n,
    json_safe,
    limitations,
    output,
    plain,
    read,
    recommendations,
    todo,
)

# ---- Mitchell et al. model card -----------------------------------------------------------------


def model_card(record: dict[str, Any]) -> dict[str, Any]:
    """The nine sections of Mitchell et al. (2019); JSON-able, without NaN."""
    run, r = read(record), record
    text = ("id", "name", "status", "developer", "created_at", "proposed_by", "decided_by", "decided_at",
            "decision_reason", "code_version", "onnx_sha256")  # fmt: skip
    details = {k: as_text(r.get(k)) for k in text} | {
        "version": fmt_n(r.get("version")),
        "decision": decision(run),
        "model_type": KINDS.get(run.kind or "", run.kind),
        "task": "survival" if run.survival else run.data("task") or as_text(r.get("task")),
        "parameters": json_safe(as_dict(run.model.get("params"))),
        "data_fingerprint": run.fingerprint,
        "servable": r.get("servable") is True,
    }
    data = {k: run.data(k) for k in ("name", "source", "license", "target")} | {
        "title": run.title,
        "rows": as_count(run.dataset.get("rows")),
        "features": as_count(run.dataset.get("features")),
        "horizon_days": as_count(run.horizon),
        "fingerprint": run.fingerprint,
        "preprocessing": run.pipeline,
        "protocol": run.design,
    }
    explanation = as_dict(run.report.get("explanation"))
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
            "decision_threshold": json_safe(run.threshold) | {"output": output(run)},
        },
        "evaluation_data": data,
        "training_data": data | {"note": "Training and evaluation rows are partitions of the same dataset."},
        "quantitative_analyses": {
            "subgroups": json_safe(run.subgroups),
            "disparities": json_safe(run.disparities),
            "conformal": json_safe(as_dict(run.report.get("conformal"))),
            "explanation_method": as_text(explanation.get("method")),
            "global_importance": json_safe(as_rows(explanation.get("global"))[:10]),
        },
        "ethical_considerations": [fairness(run), data_limits(run)],
        "caveats_and_recommendations": limitations(run) + recommendations(run),
    }


def _cell(value: Any, missing: str = NOT_RECORDED) -> str:
    """``value`` as the text of one Markdown table cell: one line, pipes escaped."""
    return plain(value, missing).replace("\\", "\\\\").replace("|", "\\|")


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
