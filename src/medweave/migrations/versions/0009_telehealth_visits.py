"""telehealth: visit state on each booking, one-time invitations, published availability

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("telehealth_bookings") as batch:
        batch.add_column(sa.Column("patient_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("modality", sa.String(length=16), nullable=False, server_default="video"))
        batch.add_column(
            sa.Column("visit_state", sa.String(length=16), nullable=False, server_default="scheduled")
        )
        batch.add_column(sa.Column("checked_in_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("encounter_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_telehealth_bookings_patient", "telehealth_bookings", ["patient_id", "start"])
    op.create_table(
        "telehealth_invites",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("appointment_id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=80), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_table(
        "telehealth_availability",
        sa.Column("practitioner_id", sa.String(length=64), nullable=False),
        sa.Column("schedule_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("practitioner_id"),
    )


def downgrade() -> None:
    op.drop_table("telehealth_availability")
    op.drop_table("telehealth_invites")
    op.drop_index("ix_telehealth_bookings_patient", table_name="telehealth_bookings")
    with op.batch_alter_table("telehealth_bookings") as batch:
        for name in (
            "reminded_at",
            "encounter_id",
            "ended_at",
            "admitted_at",
            "checked_in_at",
            "visit_state",
            "modality",
            "patient_id",
        ):
            batch.drop_column(name)
