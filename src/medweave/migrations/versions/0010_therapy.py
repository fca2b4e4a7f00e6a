"""therapy: safety alerts and conversation pointers

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "therapy_alerts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("flag_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=80), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notifications", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_therapy_alerts_open", "therapy_alerts", ["acknowledged_at", "created_at"])
    op.create_index("ix_therapy_alerts_patient", "therapy_alerts", ["patient_id", "created_at"])
    op.create_table(
        "therapy_conversations",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("state_id", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("patient_id"),
    )


def downgrade() -> None:
    op.drop_table("therapy_conversations")
    op.drop_index("ix_therapy_alerts_patient", table_name="therapy_alerts")
    op.drop_index("ix_therapy_alerts_open", table_name="therapy_alerts")
    op.drop_table("therapy_alerts")
