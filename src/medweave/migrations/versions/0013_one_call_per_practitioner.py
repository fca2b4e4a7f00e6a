"""telehealth: at most one visit in the call per practitioner, held by the database

Admitting a patient takes the practitioner's calendar lock; this partial unique index refuses a
second ``in-call`` visit of the same practitioner even on a path that forgot the lock. A database
where the old race already left someone in two calls stops the upgrade with what to do.

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
    # Before this index, two admits at the same moment could put one practitioner in two calls.
    # Which of them is real is the clinic's call, not a migration's: say so and stop.
    doubled = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT practitioner_id FROM telehealth_bookings "
                "WHERE visit_state = 'in-call' AND status = 'booked' "
                "GROUP BY practitioner_id HAVING count(*) > 1"
            )
        )
        .scalars()
        .all()
    )
    if doubled:
        raise RuntimeError(
            f"{len(doubled)} practitioner(s) are in more than one video visit at once; hang up the "
            "extra visits (Today's visits, then Hang up), then run the upgrade again"
        )
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
