"""diagnostics: model registry, lifecycle history, prediction log and CDS feedback

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ml_models",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("code_version", sa.String(length=120), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("intended_use", sa.Text(), nullable=False),
        sa.Column("out_of_scope", sa.Text(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("horizon_days", sa.Float(), nullable=True),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("onnx", sa.LargeBinary(), nullable=True),
        sa.Column("onnx_sha256", sa.String(length=64), nullable=True),
        sa.Column("explainer", sa.Text(), nullable=True),
        sa.Column("conformal", sa.Text(), nullable=True),
        sa.Column("feature_spec", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=80), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_ml_models_name_version"),
    )
    op.create_index("ix_ml_models_status", "ml_models", ["status", "name"])
    op.create_table(
        "ml_model_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ml_model_events_model", "ml_model_events", ["model_id", "id"])
    op.create_table(
        "ml_predictions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("risk", sa.Float(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.Integer(), nullable=True),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ml_predictions_model", "ml_predictions", ["model_id", "at"])
    op.create_index("ix_ml_predictions_subject", "ml_predictions", ["subject", "model_id"])
    op.create_table(
        "ml_feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("card_id", sa.String(length=64), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("caller", sa.String(length=200), nullable=False),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ml_feedback_card", "ml_feedback", ["card_id"])


def downgrade() -> None:
    op.drop_index("ix_ml_feedback_card", table_name="ml_feedback")
    op.drop_table("ml_feedback")
    op.drop_index("ix_ml_predictions_subject", table_name="ml_predictions")
    op.drop_index("ix_ml_predictions_model", table_name="ml_predictions")
    op.drop_table("ml_predictions")
    op.drop_index("ix_ml_model_events_model", table_name="ml_model_events")
    op.drop_table("ml_model_events")
    op.drop_index("ix_ml_models_status", table_name="ml_models")
    op.drop_table("ml_models")
