"""Tables of the model registry and of serving. Only ``diagnostics.registry`` and
``diagnostics.serving`` touch them.

``ml_models`` holds each trained model: what it was trained on (dataset and SHA-256 fingerprint),
the code version, the evaluation report (metrics with CIs, threshold, curves, subgroups,
conformal coverage, explanations) as JSON, its lifecycle status, and what serving needs: the
ONNX bytes, the explainer and conformal specs, and the FHIR feature spec. Models are small
(kilobytes to a few megabytes) and must be the same for every app and worker process, so they
live in the database rather than in a node's data folder.

``ml_model_events`` is the append-only lifecycle history (propose, approve, retire, with who and
why); every transition is also an AuditEvent, which the ledger commits to.

``ml_predictions`` logs every prediction served, for monitoring: the subject is a keyed
pseudonym of the patient (HMAC), never the id; the features are the model's numeric inputs.

``ml_feedback`` records what the clinician did with each CDS card (accepted or overridden).
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from medweave.audit.tables import UTCDateTime
from medweave.db import metadata

ml_models = Table(
    "ml_models",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("task", String(32), nullable=False),
    Column("dataset", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("code_version", String(120), nullable=False),
    Column("status", String(16), nullable=False),  # proposed, approved, retired
    Column("intended_use", Text, nullable=False),
    Column("out_of_scope", Text, nullable=False),
    Column("threshold", Float, nullable=True),
    Column("horizon_days", Float, nullable=True),
    Column("report", Text, nullable=False),
    Column("onnx", LargeBinary, nullable=True),
    Column("onnx_sha256", String(64), nullable=True),
    Column("explainer", Text, nullable=True),
    Column("conformal", Text, nullable=True),
    Column("feature_spec", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("decided_by", String(80), nullable=True),
    Column("decision_reason", Text, nullable=True),
    UniqueConstraint("name", "version", name="uq_ml_models_name_version"),
    Index("ix_ml_models_status", "status", "name"),
)

ml_model_events = Table(
    "ml_model_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("actor", String(80), nullable=False),
    Column("reason", Text, nullable=True),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_ml_model_events_model", "model_id", "id"),
)

ml_predictions = Table(
    "ml_predictions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("model_id", String(64), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("features", Text, nullable=False),
    Column("risk", Float, nullable=False),
    Column("channel", String(16), nullable=False),  # cds-hooks or chart
    Column("outcome", Integer, nullable=True),
    Column("outcome_at", UTCDateTime, nullable=True),
    Index("ix_ml_predictions_model", "model_id", "at"),
    Index("ix_ml_predictions_subject", "subject", "model_id"),
)

ml_feedback = Table(
    "ml_feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("card_id", String(64), nullable=False),
    Column("model_id", String(64), nullable=True),
    Column("outcome", String(16), nullable=False),  # accepted or overridden
    Column("reason", Text, nullable=True),
    Column("caller", String(200), nullable=False),
    Column("outcome_at", UTCDateTime, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_ml_feedback_card", "card_id"),
)
