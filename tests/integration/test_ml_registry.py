"""The model registry on SQLite and PostgreSQL: who may propose, approve and retire; the transitions;
the lifecycle history with reasons; and the AuditEvent every transition (and refusal) leaves."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Engine

from medweave.audit import AuditService
from medweave.diagnostics.registry import Artifacts, Registry
from medweave.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from medweave.security.principal import Principal, Role
from medweave.security.scopes import ScopeSet

NONE = ScopeSet.parse("")
SCIENTIST = Principal(kind="user", subject="noor", scopes=NONE, role=Role.DATA_SCIENTIST)
CLINICIAN = Principal(kind="user", subject="grey", scopes=NONE, role=Role.CLINICIAN, practitioner_id="p1")
OTHER_CLINICIAN = Principal(kind="user", subject="yang", scopes=NONE, role=Role.CLINICIAN)
ADMIN = Principal(kind="user", subject="ada", scopes=NONE, role=Role.ADMIN)
OPERATOR = Principal.internal("cli")


def _report(kind: str = "coxnet") -> dict[str, Any]:
    return {
        "dataset": {
            "name": "framingham",
            "title": "Framingham",
            "fingerprint": "ab" * 32,
            "horizon_days": 3652.0,
        },
        "model": {"kind": kind, "task": "survival", "features": ["num_age"]},
        "protocol": {"name": "cv", "description": "5x2 CV"},
        "metrics": {"c_index": {"value": 0.71, "lower": 0.70, "upper": 0.72}},
        "threshold": {"value": 0.085, "rule": "sensitivity 0.8"},
    }


SPEC = {"version": 1, "features": []}
SERVABLE = Artifacts(onnx=b"onnx-bytes", explainer=None, conformal={"alpha": 0.1}, feature_spec=SPEC)
NO_CHART_FEATURES = Artifacts(onnx=b"onnx-bytes", explainer=None, conformal=None, feature_spec=None)
NOT_SERVABLE = Artifacts(onnx=None, explainer=None, conformal=None, feature_spec=None)


@pytest.fixture
def registry(engine: Engine, audit: AuditService) -> Registry:
    return Registry(engine, audit)


def _propose(registry: Registry, who: Principal = SCIENTIST, **kw: Any) -> str:
    record = registry.propose(
        who,
        name=kw.pop("name", "framingham-coxnet"),
        report=kw.pop("report", _report()),
        code_version="medweave test",
        intended_use="a test",
        out_of_scope="everything else",
        artifacts=kw.pop("artifacts", SERVABLE),
    )
    return str(record.id)


def _audited(audit: AuditService, model_id: str) -> list[tuple[str, str, int, str | None]]:
    out = []
    for r in audit.since(0):
        if r.entity_id != model_id:
            continue
        body = json.loads(r.body)
        operation = next((c["code"] for c in body["subtype"] if c["code"].startswith("$")), None)
        out.append((r.entity_type or "", r.user_ref or "", r.outcome, operation))
    return out


def test_a_model_is_proposed_then_approved_by_a_clinician_with_the_reason_kept(
    registry: Registry, audit: AuditService
) -> None:
    model_id = _propose(registry)
    record = registry.get(model_id)
    assert (record.status, record.version, record.servable, record.threshold) == ("proposed", 1, True, 0.085)
    assert record.fingerprint == "ab" * 32 and record.code_version == "medweave test"
    assert registry.artifacts(model_id).onnx == b"onnx-bytes"
    approved = registry.decide(CLINICIAN, model_id, "approve", reason="validated on 2025 data")
    assert (approved.status, approved.decided_by, approved.decision_reason) == (
        "approved", "grey", "validated on 2025 data"
    )  # fmt: skip
    assert [(e.action, e.actor, e.reason) for e in registry.history(model_id)] == [
        ("propose", "noor", None),
        ("approve", "grey", "validated on 2025 data"),
    ]
    assert _audited(audit, model_id) == [
        ("Device", "user:noor", 0, "$propose"),
        ("Device", "Practitioner/p1", 0, "$approve"),
    ]
    assert [r.id for r in registry.models(status="approved")] == [model_id]


def test_versions_count_up_per_name(registry: Registry) -> None:
    first, second = _propose(registry), _propose(registry)
    other = _propose(registry, name="framingham-rsf")
    assert [registry.get(i).version for i in (first, second, other)] == [1, 2, 1]


@pytest.mark.parametrize(
    ("who", "action"),
    [
        (SCIENTIST, "approve"),
        (ADMIN, "approve"),
        (OPERATOR, "approve"),
        (SCIENTIST, "retire"),
        (ADMIN, "retire"),
    ],
)
def test_only_clinicians_decide_and_refusals_are_audited(
    registry: Registry, audit: AuditService, who: Principal, action: str
) -> None:
    model_id = _propose(registry)
    with pytest.raises(PermissionDenied):
        registry.decide(who, model_id, action, reason="because")
    assert registry.get(model_id).status == "proposed"
    assert _audited(audit, model_id)[-1][2:] == (4, f"${action}")


def test_nobody_approves_their_own_model_and_an_operator_may_retire(
    registry: Registry, audit: AuditService
) -> None:
    proposer = Principal(kind="user", subject="grey", scopes=NONE, role=Role.DATA_SCIENTIST)
    model_id = _propose(registry, proposer)
    with pytest.raises(PermissionDenied, match="proposed"):
        registry.decide(CLINICIAN, model_id, "approve", reason="mine")  # same user name, now a clinician
    assert _audited(audit, model_id)[-1][2:] == (4, "$approve")  # the refusal is audited too
    assert registry.decide(OPERATOR, model_id, "retire", reason="out of service").status == "retired"


def test_clinical_leads_narrow_who_approves(engine: Engine, audit: AuditService) -> None:
    registry = Registry(engine, audit, leads=("yang",))
    model_id = _propose(registry)
    with pytest.raises(PermissionDenied, match="clinical lead"):
        registry.decide(CLINICIAN, model_id, "approve", reason="ok")
    assert registry.decide(OTHER_CLINICIAN, model_id, "approve", reason="ok").status == "approved"


def test_transitions_are_one_way_and_unservable_models_are_never_approved(registry: Registry) -> None:
    forest = _propose(registry, report=_report("rsf"), artifacts=NOT_SERVABLE)
    with pytest.raises(Conflict, match="cannot be served"):
        registry.decide(CLINICIAN, forest, "approve", reason="ok")
    tabular = _propose(
        registry, artifacts=NO_CHART_FEATURES
    )  # e.g. WDBC: ONNX, but no chart holds its inputs
    with pytest.raises(Conflict, match="cannot be served"):
        registry.decide(CLINICIAN, tabular, "approve", reason="ok")
    model_id = _propose(registry)
    registry.decide(CLINICIAN, model_id, "retire", reason="superseded")
    with pytest.raises(Conflict):
        registry.decide(CLINICIAN, model_id, "approve", reason="changed my mind")
    with pytest.raises(Conflict):
        registry.decide(CLINICIAN, model_id, "retire", reason="again")
    assert [e.action for e in registry.history(model_id)] == ["propose", "retire"]


@pytest.mark.parametrize("reason", ["", "   ", "x" * 2001])
def test_a_decision_needs_a_reason(registry: Registry, reason: str) -> None:
    model_id = _propose(registry)
    with pytest.raises(InvalidInput):
        registry.decide(CLINICIAN, model_id, "approve", reason=reason)
    assert registry.get(model_id).status == "proposed"


def test_unknown_models_actions_and_proposers(registry: Registry) -> None:
    with pytest.raises(NotFound):
        registry.get("mdl_0000000000000000")
    with pytest.raises(NotFound):
        registry.decide(CLINICIAN, "mdl_0000000000000000", "approve", reason="x")
    with pytest.raises(InvalidInput):
        registry.decide(CLINICIAN, _propose(registry), "promote", reason="x")
    with pytest.raises(PermissionDenied):
        _propose(registry, CLINICIAN)
    with pytest.raises(InvalidInput):
        registry.models(status="deleted")
