"""The model registry: every trained model with its provenance, and its lifecycle.

A data scientist (or an operator at the CLI) *proposes* a model: it is stored with the data
fingerprint, the code version, the evaluation report, the threshold, its intended and
out-of-scope use, and what serving needs (ONNX bytes, explainer, conformal quantile, FHIR feature
spec). A clinical lead *approves* it for use at the point of care or *retires* it, with a reason.
Only approved models are served. Each transition is a row in ``ml_model_events`` and an
AuditEvent (BALP update of ``Device/<model id>``, the model as software, with the transition as
the operation), which the ledger commits to.

Who may do what is decided here, in one place (`may_propose`, `may_decide`):

- propose: data scientists, and operators (the CLI's internal principal);
- approve and retire: clinicians, and when ``leads`` is given only those users (their ids, which
  the app resolves from the user names in ``MEDWEAVE_ML_CLINICAL_LEADS``); never the
  person who proposed the same model (four eyes, GMLP principle 7 "focus on the performance of
  the human-AI team"; FDA/Health Canada/MHRA 2021). An operator may retire (to take a model out
  of service quickly) but not approve.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from medweave.audit import Actor, AuditService, rest_event
from medweave.db import read_tx, write_tx
from medweave.diagnostics.tables import ml_model_events, ml_models
from medweave.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from medweave.security.principal import Principal, Role

STATUSES = ("proposed", "approved", "retired")
#: Allowed transitions: a proposed model is approved or retired; an approved one is retired.
TRANSITIONS = {"approve": ("proposed", "approved"), "retire": (("proposed", "approved"), "retired")}
MAX_REASON = 2000


@dataclass(frozen=True)
class ModelRecord:
    """One registered model, without its serving blobs (see `artifacts`)."""

    id: str
    name: str
    version: int
    kind: str
    task: str
    dataset: str
    fingerprint: str
    code_version: str
    status: str
    intended_use: str
    out_of_scope: str
    threshold: float | None
    horizon_days: float | None
    report: dict[str, Any]
    servable: bool
    onnx_sha256: str | None
    created_at: datetime
    created_by: str
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None

    def as_json(self) -> dict[str, Any]:
        """The record as the cards and the CLI read it (times as ISO 8601)."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "kind": self.kind,
            "task": self.task,
            "dataset": self.dataset,
            "fingerprint": self.fingerprint,
            "code_version": self.code_version,
            "intended_use": self.intended_use,
            "out_of_scope": self.out_of_scope,
            "threshold": self.threshold,
            "horizon_days": self.horizon_days,
            "servable": self.servable,
            "onnx_sha256": self.onnx_sha256,
            "created_at": self.created_at.isoformat(),
            "proposed_by": self.created_by,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "decision_reason": self.decision_reason,
            "report": self.report,
        }


@dataclass(frozen=True)
class Artifacts:
    """What serving a model needs; ``onnx`` is None for a model that cannot be served."""

    onnx: bytes | None
    explainer: dict[str, Any] | None
    conformal: dict[str, Any] | None
    feature_spec: dict[str, Any] | None


@dataclass(frozen=True)
class LifecycleEvent:
    action: str
    actor: str
    reason: str | None
    at: datetime


_SUMMARY = [c for c in ml_models.c if c.name not in ("onnx", "explainer", "conformal", "feature_spec")]


def _record(row: Any) -> ModelRecord:
    m = row._mapping
    return ModelRecord(
        id=m["id"],
        name=m["name"],
        version=m["version"],
        kind=m["kind"],
        task=m["task"],
        dataset=m["dataset"],
        fingerprint=m["fingerprint"],
        code_version=m["code_version"],
        status=m["status"],
        intended_use=m["intended_use"],
        out_of_scope=m["out_of_scope"],
        threshold=m["threshold"],
        horizon_days=m["horizon_days"],
        report=json.loads(m["report"]),
        servable=m["onnx_sha256"] is not None,
        onnx_sha256=m["onnx_sha256"],
        created_at=m["created_at"],
        created_by=m["created_by"],
        decided_at=m["decided_at"],
        decided_by=m["decided_by"],
        decision_reason=m["decision_reason"],
    )


def may_propose(principal: Principal) -> bool:
    return principal.kind == "internal" or principal.role == Role.DATA_SCIENTIST


def may_decide(principal: Principal, action: str, *, leads: Sequence[str] = ()) -> bool:
    """Whether ``principal`` may ``approve`` or ``retire`` models (see the module docstring)."""
    if principal.kind == "internal":
        return action == "retire"
    if principal.role != Role.CLINICIAN:
        return False
    return not leads or principal.subject in leads


def _check_text(value: str, what: str, *, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{what} is required")
    if len(value) > MAX_REASON:
        raise InvalidInput(f"{what} is longer than {MAX_REASON} characters")
    return value


class Registry:
    """The registry's reads and transitions over one database."""

    def __init__(self, engine: Engine, audit: AuditService | None, *, leads: Sequence[str] = ()) -> None:
        self.engine = engine
        self.audit = audit
        self.leads = tuple(leads)

    def _audit(self, principal: Principal, model_id: str, operation: str, status: int) -> None:
        if self.audit is None:
            return
        actor = Actor(who=principal.audit_ref, address=principal.address, client_id=principal.client_id)
        self.audit.record(
            rest_event(
                "create" if operation == "$propose" else "update",
                status=status,
                actor=actor,
                resource_type="Device",
                resource_id=model_id,
                operation=operation,
            )
        )

    def propose(
        self,
        principal: Principal,
        *,
        name: str,
        report: dict[str, Any],
        code_version: str,
        intended_use: str,
        out_of_scope: str,
        artifacts: Artifacts,
        now: datetime | None = None,
    ) -> ModelRecord:
        """Store a trained model as ``proposed``; its version is one more than the name's last."""
        if not may_propose(principal):
            self._audit(principal, "-", "$propose", 403)
            raise PermissionDenied("only data scientists propose models")
        name = _check_text(name, "a model name")
        if len(name) > 120:
            raise InvalidInput("a model name is at most 120 characters")
        intended_use = _check_text(intended_use, "the intended use")
        out_of_scope = _check_text(out_of_scope, "the out-of-scope use")
        when = now or datetime.now(UTC)
        model_id = "mdl_" + secrets.token_hex(8)
        dataset = report["dataset"]
        threshold = (report.get("threshold") or {}).get("value")
        onnx = artifacts.onnx
        for attempt in range(5):
            try:
                with write_tx(self.engine) as conn:
                    last = conn.execute(
                        select(func.max(ml_models.c.version)).where(ml_models.c.name == name)
                    ).scalar()
                    conn.execute(
                        insert(ml_models).values(
                            id=model_id,
                            name=name,
                            version=(last or 0) + 1,
                            kind=report["model"]["kind"],
                            task=report["model"]["task"],
                            dataset=dataset["name"],
                            fingerprint=dataset["fingerprint"],
                            code_version=code_version,
                            status="proposed",
                            intended_use=intended_use,
                            out_of_scope=out_of_scope,
                            threshold=threshold,
                            horizon_days=dataset.get("horizon_days"),
                            report=json.dumps(report, allow_nan=False),
                            onnx=onnx,
                            onnx_sha256=hashlib.sha256(onnx).hexdigest() if onnx is not None else None,
                            explainer=_dump(artifacts.explainer),
                            conformal=_dump(artifacts.conformal),
                            feature_spec=_dump(artifacts.feature_spec),
                            created_at=when,
                            created_by=principal.subject,
                        )
                    )
                    conn.execute(
                        insert(ml_model_events).values(
                            model_id=model_id, action="propose", actor=principal.subject, reason=None, at=when
                        )
                    )
                break
            except IntegrityError:  # another proposal of the same name took this version: renumber
                if attempt == 4:
                    raise Conflict(f"could not number a new version of {name!r}; try again") from None
        self._audit(principal, model_id, "$propose", 201)
        return self.get(model_id)

    def decide(
        self, principal: Principal, model_id: str, action: str, *, reason: str, now: datetime | None = None
    ) -> ModelRecord:
        """``approve`` or ``retire`` a model, with the reason recorded and audited."""
        if action not in TRANSITIONS:
            raise InvalidInput(f"unknown action {action!r}; approve or retire")
        operation = f"${action}"
        if not may_decide(principal, action, leads=self.leads):
            self._audit(principal, model_id, operation, 403)
            who = "a clinical lead" if self.leads else "a clinician"
            raise PermissionDenied(f"only {who} may {action} a model")
        reason = _check_text(reason, "a reason")
        sources, target = TRANSITIONS[action]
        allowed = (sources,) if isinstance(sources, str) else sources
        when = now or datetime.now(UTC)
        try:
            with write_tx(self.engine) as conn:
                row = conn.execute(select(*_SUMMARY).where(ml_models.c.id == model_id)).first()
                if row is None:
                    raise NotFound(f"no model {model_id}")
                current = _record(row)
                if current.status not in allowed:
                    raise Conflict(f"model {model_id} is {current.status}; it cannot be {target} now")
                if action == "approve" and current.created_by == principal.subject:
                    raise PermissionDenied("the person who proposed a model cannot approve it")
                if action == "approve":
                    spec = conn.execute(
                        select(ml_models.c.feature_spec).where(ml_models.c.id == model_id)
                    ).scalar()
                    if not current.servable or spec is None:
                        raise Conflict(
                            f"model {model_id} ({current.kind} on {current.dataset}) cannot be served at the "
                            "point of care (no ONNX export, or no features a chart holds): not approvable"
                        )
                # The status condition makes two concurrent decisions safe on PostgreSQL's READ
                # COMMITTED too: the second finds no row in an allowed status and changes nothing.
                changed = conn.execute(
                    update(ml_models)
                    .where(ml_models.c.id == model_id, ml_models.c.status.in_(allowed))
                    .values(
                        status=target, decided_at=when, decided_by=principal.subject, decision_reason=reason
                    )
                ).rowcount
                if changed != 1:
                    raise Conflict(f"model {model_id} was decided by someone else meanwhile")
                conn.execute(
                    insert(ml_model_events).values(
                        model_id=model_id, action=action, actor=principal.subject, reason=reason, at=when
                    )
                )
        except PermissionDenied:
            self._audit(principal, model_id, operation, 403)
            raise
        self._audit(principal, model_id, operation, 200)
        return self.get(model_id)

    def get(self, model_id: str) -> ModelRecord:
        with read_tx(self.engine) as conn:
            row = conn.execute(select(*_SUMMARY).where(ml_models.c.id == model_id)).first()
        if row is None:
            raise NotFound(f"no model {model_id}")
        return _record(row)

    def artifacts(self, model_id: str) -> Artifacts:
        cols = (ml_models.c.onnx, ml_models.c.explainer, ml_models.c.conformal, ml_models.c.feature_spec)
        with read_tx(self.engine) as conn:
            row = conn.execute(select(*cols).where(ml_models.c.id == model_id)).first()
        if row is None:
            raise NotFound(f"no model {model_id}")
        onnx, explainer, conformal, spec = row
        return Artifacts(
            onnx=bytes(onnx) if onnx is not None else None,
            explainer=_load(explainer),
            conformal=_load(conformal),
            feature_spec=_load(spec),
        )

    def models(self, *, status: str | None = None) -> list[ModelRecord]:
        query = select(*_SUMMARY).order_by(ml_models.c.name, ml_models.c.version.desc())
        if status is not None:
            if status not in STATUSES:
                raise InvalidInput(f"unknown status {status!r}")
            query = query.where(ml_models.c.status == status)
        with read_tx(self.engine) as conn:
            return [_record(r) for r in conn.execute(query)]

    def history(self, model_id: str) -> list[LifecycleEvent]:
        query = (
            select(
                ml_model_events.c.action,
                ml_model_events.c.actor,
                ml_model_events.c.reason,
                ml_model_events.c.at,
            )
            .where(ml_model_events.c.model_id == model_id)
            .order_by(ml_model_events.c.id)
        )
        with read_tx(self.engine) as conn:
            return [LifecycleEvent(*r) for r in conn.execute(query)]


def _dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, allow_nan=False, sort_keys=True)


def _load(text: str | None) -> dict[str, Any] | None:
    return None if text is None else dict(json.loads(text))
