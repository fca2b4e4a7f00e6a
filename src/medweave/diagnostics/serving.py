"""Approved models at the point of care: CDS Hooks 2.0 services, cards, the prediction log, feedback.

Each approved model that can be served (it has ONNX bytes and a FHIR feature spec) is one CDS
Service on the ``patient-view`` hook, its id the model's registry name; the newest approved
version of a name is the one served. A call reads the patient's data from the request's
prefetch, or, for the prefetch keys the client left out, from our record store as the caller
(whose access is checked and audited there); with neither it is `PreconditionFailed` (HTTP 412,
CDS Hooks 2.0 "Prefetch": a service that cannot get the data it needs answers 412).

The features are extracted by `fhir_features.extract`; when a required one is missing the card
says which and why, and no risk is computed (the service never guesses). Otherwise the model runs
in ONNX Runtime and the card gives the risk, its conformal prediction set, the top contributing
features and a link to the model card. Every prediction is logged for monitoring under a keyed
pseudonym of the patient (HMAC-SHA256), never the patient id.

Specification: https://cds-hooks.hl7.org/2.0/ (discovery, request, card, feedback).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from sqlalchemy import Engine, insert, select

from medweave.db import write_tx
from medweave.diagnostics import conformal, explain, fhir_features, onnx_export
from medweave.diagnostics.registry import ModelRecord, Registry
from medweave.diagnostics.tables import ml_feedback, ml_predictions
from medweave.errors import InvalidInput, MedweaveError, NotFound, PreconditionFailed
from medweave.records.fhir import valid_id

log = logging.getLogger("medweave.cds")
HOOK = "patient-view"
OUTCOMES = ("accepted", "overridden")
#: CDS Hooks 2.0 caps a card's summary at 140 characters.
SUMMARY_MAX = 140
MAX_REASON = 2000
TOP_FEATURES = 5


class Reader(Protocol):
    """Reads the patient's data as the caller, through the record store's access checks."""

    def patient(self, patient_id: str) -> dict[str, Any]: ...

    def search(self, res_type: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]: ...


@dataclass
class _Loaded:
    record: ModelRecord
    model: onnx_export.OnnxRisk
    spec: fhir_features.FeatureSpec
    explainer: dict[str, Any] | None
    sets: conformal.ConformalSets | None


def pseudonym(key: bytes, patient_id: str) -> str:
    """The prediction log's subject: HMAC-SHA256 of the patient id under the deployment's key."""
    return hmac.new(key, patient_id.encode(), hashlib.sha256).hexdigest()[:32]


class Services:
    """The CDS services of one deployment, over its registry."""

    def __init__(self, registry: Registry, *, pseudonym_key: bytes, base_url: str) -> None:
        self.registry = registry
        self.engine: Engine = registry.engine
        self.key = pseudonym_key
        self.base_url = base_url.rstrip("/")
        self._cache: dict[str, _Loaded] = {}
        self._lock = threading.Lock()

    # -- discovery ------------------------------------------------------------------------------

    def served(self) -> dict[str, ModelRecord]:
        """Service id -> the newest approved, servable version of that model name."""
        out: dict[str, ModelRecord] = {}
        for record in self.registry.models(status="approved"):
            if record.name in out or not record.servable:
                continue
            try:
                self._load(record)
            except MedweaveError as exc:  # a model that cannot be loaded is skipped, not fatal
                log.error("approved model %s cannot be served: %s", record.id, exc.message)
                continue
            out[record.name] = record
        return out

    def discovery(self) -> dict[str, Any]:
        services = []
        for service_id, record in self.served().items():
            loaded = self._load(record)
            services.append(
                {
                    "hook": HOOK,
                    "id": service_id,
                    "title": record.report["dataset"]["title"],
                    "description": f"{record.kind} v{record.version} ({record.id}): {record.intended_use}",
                    "prefetch": fhir_features.query_plan(loaded.spec),
                    "usageRequirements": "Authenticate with a CDS Hooks JWT from a registered client. "
                    "Prefetch what you can; missing keys are read from the Medweave FHIR store only "
                    "with fhirAuthorization for it.",
                }
            )
        return {"services": services}

    def _load(self, record: ModelRecord) -> _Loaded:
        with self._lock:
            hit = self._cache.get(record.id)
            if hit is not None:
                return hit
        artifacts = self.registry.artifacts(record.id)
        if artifacts.onnx is None or artifacts.feature_spec is None:
            raise NotFound(f"model {record.id} cannot be served")
        loaded = _Loaded(
            record=record,
            model=onnx_export.OnnxRisk(artifacts.onnx),
            spec=fhir_features.FeatureSpec.from_dict(artifacts.feature_spec),
            explainer=artifacts.explainer,
            sets=conformal.ConformalSets.from_dict(artifacts.conformal) if artifacts.conformal else None,
        )
        with self._lock:
            self._cache[record.id] = loaded
        return loaded

    def service(self, service_id: str) -> _Loaded:
        record = self.served().get(service_id)
        if record is None:
            raise NotFound(f"no CDS service {service_id!r}")
        return self._load(record)

    # -- a call ---------------------------------------------------------------------------------

    def call(
        self,
        service_id: str,
        *,
        patient_id: str,
        prefetch: Mapping[str, Any] | None,
        reader: Reader | None,
        channel: str = "cds-hooks",
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """The CDS response ``{"cards": [...]}`` for one patient-view call."""
        if not valid_id(patient_id):
            raise InvalidInput("context.patientId is not a FHIR id")
        loaded = self.service(service_id)
        when = now or datetime.now(UTC)
        patient, resources = self._gather(loaded.spec, patient_id, prefetch or {}, reader)
        extracted = fhir_features.extract(loaded.spec, patient, resources, as_of=when)
        if extracted.missing:
            return {"cards": [self._missing_card(loaded, extracted)]}
        row = np.array(
            [[np.nan if extracted.values[n] is None else extracted.values[n] for n in loaded.spec.names()]]
        )
        risk = float(loaded.model.risk(row)[0])
        card_id = str(uuid.uuid4())
        card = self._risk_card(loaded, card_id, risk, row[0], extracted)
        self._log(loaded.record, card_id, patient_id, row[0], risk, channel, when)
        return {"cards": [card]}

    def _gather(
        self,
        spec: fhir_features.FeatureSpec,
        patient_id: str,
        prefetch: Mapping[str, Any],
        reader: Reader | None,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        plan = fhir_features.query_plan(spec)
        absent = [key for key in plan if _unusable(prefetch.get(key))]
        if absent and reader is None:
            raise PreconditionFailed(
                "prefetch is missing " + ", ".join(sorted(absent)) + " and no fhirAuthorization was given "
                "to read them from this server"
            )
        patient: dict[str, Any] | None = None
        resources: list[dict[str, Any]] = []
        for key, template in plan.items():
            if key in absent:
                assert reader is not None
                if key == "patient":
                    patient = reader.patient(patient_id)
                else:
                    res_type, params = _parse_template(template, patient_id)
                    resources.extend(reader.search(res_type, params))
                continue
            value = prefetch[key]
            if key == "patient":
                patient = _resource(value, "Patient", key)
            else:
                resources.extend(_entries(value, key))
        if patient is None or patient.get("id") not in (None, patient_id):
            raise InvalidInput("the prefetched Patient is not the patient in context")
        for res in resources:
            subject = res.get("subject")
            reference = subject.get("reference") if isinstance(subject, dict) else None
            if subject is not None and not isinstance(reference, str):
                raise InvalidInput("a prefetched resource has a subject without a reference")
            if reference and reference.split("/")[-1] != patient_id:
                raise InvalidInput("prefetched data belong to another patient than the one in context")
        return patient, resources

    def _base_card(self, loaded: _Loaded) -> dict[str, Any]:
        record = loaded.record
        url = f"{self.base_url}/ml/models/{record.id}"
        return {
            "source": {"label": f"Medweave model {record.name} v{record.version}", "url": url},
            "links": [{"label": "Model card, validation and intended use", "url": url, "type": "absolute"}],
        }

    def _missing_card(self, loaded: _Loaded, extracted: fhir_features.Extracted) -> dict[str, Any]:
        names = ", ".join(m.feature for m in extracted.missing)
        detail = "\n".join(f"- {m.reason}" for m in extracted.missing)
        return {
            "uuid": str(uuid.uuid4()),
            "summary": _cut(f"{loaded.record.report['dataset']['title']}: not assessed, missing {names}"),
            "indicator": "info",
            "detail": "The model was not run, because it does not guess missing values:\n\n" + detail,
            **self._base_card(loaded),
        }

    def _risk_card(
        self,
        loaded: _Loaded,
        card_id: str,
        risk: float,
        row: np.ndarray[Any, Any],
        extracted: fhir_features.Extracted,
    ) -> dict[str, Any]:
        record = loaded.record
        report = record.report
        horizon = report["dataset"].get("horizon_days")
        over = f" within {_years(horizon)}" if horizon else ""
        outcome = report.get("outcome_label") or report["dataset"]["target"].split(";")[0]
        lines = [f"Estimated risk of {outcome}{over}: **{risk:.1%}**."]
        if loaded.sets is not None:
            text = _set_text(loaded.sets, risk, outcome)
            if (report.get("conformal") or {}).get("exact") is False:
                text += " (Approximate: the model was refitted on all rows after cross-validation.)"
            lines.append(text)
        threshold = record.threshold
        if threshold is not None:
            rule = report["threshold"]["rule"]
            side = "at or above" if risk >= threshold else "below"
            lines.append(f"This is {side} the model's alert threshold of {threshold:.1%} ({rule}).")
        if loaded.explainer is not None:
            top = explain.top_features(loaded.explainer, row, k=TOP_FEATURES)
            lines += ["", "Main contributions (SHAP, on the model's scale):", ""]
            features = {f.name: f for f in loaded.spec.features}
            for item in top:
                sign = "raises" if item["contribution"] > 0 else "lowers"
                text = _feature_text(features.get(item["feature"]), item["feature"], item["value"])
                lines.append(f"- {text} {sign} the risk ({item['contribution']:+.3f})")
        metric = "c_index" if record.task == "survival" else "auroc"
        m = report["metrics"].get(metric) or {}
        if m.get("value") is not None:
            ci = f" (95% CI {m['lower']:.3f} to {m['upper']:.3f})" if m.get("lower") is not None else ""
            lines += [
                "",
                f"Validation: {metric.replace('_', '-')} {m['value']:.3f}{ci}, {report['protocol']['name']} "
                f"protocol on {report['dataset']['name']}. Intended use: {record.intended_use}",
            ]
        lines.append("\nA model estimate, not a diagnosis: use it with your clinical judgement.")
        return {
            "uuid": card_id,
            "summary": _cut(f"{risk:.0%} risk of {outcome}{over} ({record.name} v{record.version})"),
            "indicator": "warning" if threshold is not None and risk >= threshold else "info",
            "detail": "\n".join(lines),
            "overrideReasons": [
                {
                    "code": "not-applicable",
                    "system": "https://medweave.org/cds/override",
                    "display": "Not applicable to this patient",
                },
                {
                    "code": "data-wrong",
                    "system": "https://medweave.org/cds/override",
                    "display": "The data it used are wrong",
                },
                {
                    "code": "already-addressed",
                    "system": "https://medweave.org/cds/override",
                    "display": "Already addressed",
                },
            ],
            **self._base_card(loaded),
        }

    def _log(
        self, record: ModelRecord, card_id: str, patient_id: str, row: np.ndarray[Any, Any], risk: float,
        channel: str, when: datetime,
    ) -> None:  # fmt: skip
        features = {
            n: (None if v != v else float(v))
            for n, v in zip(record.report["model"]["features"], row, strict=True)
        }
        with write_tx(self.engine) as conn:
            conn.execute(
                insert(ml_predictions).values(
                    id=card_id,
                    model_id=record.id,
                    subject=pseudonym(self.key, patient_id),
                    at=when,
                    features=json.dumps(features, allow_nan=False),
                    risk=risk,
                    channel=channel,
                )
            )

    # -- feedback -------------------------------------------------------------------------------

    def feedback(
        self, service_id: str, body: Mapping[str, Any], *, caller: str, now: datetime | None = None
    ) -> int:
        """Record CDS Hooks 2.0 feedback: ``{"feedback": [{"card", "outcome", "outcomeTimestamp",
        "overrideReason"?}]}``; returns how many were stored. A card this service did not issue is
        `NotFound`; a bad entry is `InvalidInput` and nothing is stored."""
        loaded = self.service(service_id)
        items = body.get("feedback")
        if not isinstance(items, list) or not items:
            raise InvalidInput("feedback must be a non-empty list")
        rows = []
        when = now or datetime.now(UTC)
        for item in items:
            if not isinstance(item, dict):
                raise InvalidInput("each feedback entry must be an object")
            card, outcome = item.get("card"), item.get("outcome")
            if not isinstance(card, str) or outcome not in OUTCOMES:
                raise InvalidInput(
                    "each feedback entry needs a card uuid and an outcome (accepted or overridden)"
                )
            stamp = _timestamp(item.get("outcomeTimestamp"))
            reason = item.get("overrideReason")
            if reason is not None and (not isinstance(reason, dict) or len(json.dumps(reason)) > MAX_REASON):
                raise InvalidInput(f"overrideReason must be an object of at most {MAX_REASON} characters")
            rows.append(
                {
                    "card_id": card,
                    "outcome": outcome,
                    "reason": json.dumps(reason) if reason is not None else None,
                    "caller": caller[:200],
                    "outcome_at": stamp,
                    "at": when,
                }
            )
        with write_tx(self.engine) as conn:
            issued = {
                r[0]: r[1]
                for r in conn.execute(
                    select(ml_predictions.c.id, ml_predictions.c.model_id).where(
                        ml_predictions.c.id.in_([r["card_id"] for r in rows]),
                        ml_predictions.c.model_id.in_(self._versions(loaded.record.name)),
                    )
                )
            }
            unknown = [r["card_id"] for r in rows if r["card_id"] not in issued]
            if unknown:
                raise NotFound(f"no card {unknown[0]} was issued by this service")
            conn.execute(insert(ml_feedback), [{**r, "model_id": issued[r["card_id"]]} for r in rows])
        return len(rows)

    def _versions(self, name: str) -> list[str]:
        """Every model id registered under a service's name (a card may outlive its version)."""
        return [r.id for r in self.registry.models() if r.name == name]


def _unusable(value: Any) -> bool:
    """A prefetch value the client did not (or could not) fill: absent, null, or an
    OperationOutcome in its place (CDS Hooks 2.0 allows one for a failed prefetch)."""
    return not isinstance(value, dict) or value.get("resourceType") == "OperationOutcome"


def _resource(value: Any, res_type: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("resourceType") != res_type:
        raise InvalidInput(f"prefetch {key!r} must be a {res_type} resource")
    return value


def _entries(value: Any, key: str) -> list[dict[str, Any]]:
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        out = []
        entries = value.get("entry") or []
        if not isinstance(entries, list):
            raise InvalidInput(f"prefetch {key!r} has an entry that is not a list")
        for entry in entries:
            res = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(res, dict) or "resourceType" not in res:
                raise InvalidInput(f"prefetch {key!r} has an entry without a resource")
            out.append(res)
        return out
    if isinstance(value, dict) and "resourceType" in value:
        return [value]
    raise InvalidInput(f"prefetch {key!r} must be a Bundle or a resource")


def _parse_template(template: str, patient_id: str) -> tuple[str, list[tuple[str, str]]]:
    """A prefetch template ``Type?a=b&c=d`` with ``{{context.patientId}}`` filled in."""
    from urllib.parse import parse_qsl

    filled = template.replace("{{context.patientId}}", patient_id)
    res_type, _, query = filled.partition("?")
    return res_type, parse_qsl(query, keep_blank_values=True)


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidInput("each feedback entry needs an outcomeTimestamp")
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            raise InvalidInput("outcomeTimestamp needs a time zone")
        return stamp.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(f"outcomeTimestamp {value[:40]!r} is not an ISO 8601 instant") from None


def _feature_text(feature: fhir_features.Feature | None, name: str, value: Any) -> str:
    """A model input as a clinician reads it: "systolic blood pressure 152 mm[Hg]", "sex female"."""
    if value is None or value != value:
        return f"{name} (missing)"
    if feature is None:
        return f"{name} = {value:g}"
    if feature.source == "age":
        return f"age {value:g} years"
    if feature.source == "sex":
        other = "male" if feature.sex_value == "female" else "female"
        return f"sex {feature.sex_value if value >= 0.5 else other}"
    label = next((fhir_features.NAMES[c] for c in feature.codes if c in fhir_features.NAMES), name)
    return f"{label} {value:g} {feature.unit or ''}".rstrip()


def _years(days: float) -> str:
    years = days / 365.25
    return f"{round(years)} years" if years >= 1.5 else f"{round(days)} days"


def _set_text(sets: conformal.ConformalSets, risk: float, outcome: str) -> str:
    absent, present = (bool(v) for v in sets.sets(np.array([risk]))[0])
    level = f"{1 - sets.alpha:.0%}"
    if absent and present:
        return f"{level} conformal prediction set: both outcomes (the model cannot tell at this level)."
    if present:
        return f"{level} conformal prediction set: {outcome}."
    if absent:
        return f"{level} conformal prediction set: no {outcome}."
    return f"{level} conformal prediction set: empty (an unusual case; treat the estimate with care)."


def _cut(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"
