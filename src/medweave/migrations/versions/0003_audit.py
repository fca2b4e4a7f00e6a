"""audit: the append-only, gapless audit trail and its head counter

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False
        ),
        sa.Column("recorded", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interaction", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=1), nullable=False),
        sa.Column("outcome", sa.SmallInteger(), nullable=False),
        sa.Column("user_ref", sa.String(length=200), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("entity_type", sa.String(length=64), nullable=True),
        sa.Column("entity_id", sa.String(length=64), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.CheckConstraint("seq > 0", name="ck_audit_log_seq"),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_audit_log_patient_seq", "audit_log", ["patient_id", "seq"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_audit_head_single"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(sa.table("audit_head", sa.column("id"), sa.column("last_seq")), [{"id": 1, "last_seq": 0}])


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_index("ix_audit_log_patient_seq", table_name="audit_log")
    op.drop_table("audit_log")
