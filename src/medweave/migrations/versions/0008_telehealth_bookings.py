"""telehealth: practitioners' booking calendars (a lock row each) and the bookings index

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "telehealth_calendars",
        sa.Column("practitioner_id", sa.String(length=64), nullable=False),
        sa.Column("bookings", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("practitioner_id"),
    )
    op.create_table(
        "telehealth_bookings",
        sa.Column("appointment_id", sa.String(length=64), nullable=False),
        sa.Column("practitioner_id", sa.String(length=64), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("appointment_id"),
    )
    op.create_index("ix_telehealth_bookings_when", "telehealth_bookings", ["practitioner_id", "start"])
    op.create_index(
        "uq_telehealth_bookings_live",
        "telehealth_bookings",
        ["practitioner_id", "start"],
        unique=True,
        sqlite_where=sa.text("status = 'booked'"),
        postgresql_where=sa.text("status = 'booked'"),
    )


def downgrade() -> None:
    op.drop_index("uq_telehealth_bookings_live", table_name="telehealth_bookings")
    op.drop_index("ix_telehealth_bookings_when", table_name="telehealth_bookings")
    op.drop_table("telehealth_bookings")
    op.drop_table("telehealth_calendars")
