"""telehealth: at most one visit in the call per practitioner, held by the database

Admitting a patient takes the practitioner's calendar lock; this partial unique index refuses a
second ``in-call`` visit of the same practitioner even on a path that forgot the lock.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

IN_CALL = "visit_state = 'in-call' AND status = 'booked'"


def upgrade() -> None:
    op.create_index(
        "uq_telehealth_bookings_in_call",
        "telehealth_bookings",
        ["practitioner_id"],
        unique=True,
        sqlite_where=sa.text(IN_CALL),
        postgresql_where=sa.text(IN_CALL),
    )


def downgrade() -> None:
    op.drop_index("uq_telehealth_bookings_in_call", table_name="telehealth_bookings")
