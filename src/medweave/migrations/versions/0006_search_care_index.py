"""search_index: (patient_id, param) for the per-patient care check of every read

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("search_index", schema=None) as batch_op:
        batch_op.create_index("ix_search_care", ["patient_id", "param"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("search_index", schema=None) as batch_op:
        batch_op.drop_index("ix_search_care")
