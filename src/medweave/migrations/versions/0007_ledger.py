"""ledger: transparency-log entries, tree nodes, checkpoints, cosignatures, witnesses, anchors; version outbox

Every record version already stored is queued for the ledger, oldest first.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "version_outbox",
        sa.Column("pk", _ID, autoincrement=True, nullable=False),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.execute(
        "INSERT INTO version_outbox (res_type, res_id, version_id) "
        "SELECT res_type, res_id, version_id FROM resource_versions "
        "ORDER BY last_updated, res_type, res_id, version_id"
    )
    op.create_table(
        "ledger_entries",
        sa.Column("idx", _ID, autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=256), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("salt", sa.LargeBinary(length=32), nullable=True),
        sa.Column("patient_tag", sa.LargeBinary(length=32), nullable=True),
        sa.Column("sequenced", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("idx >= 0", name="ck_ledger_entries_idx"),
        sa.PrimaryKeyConstraint("idx"),
        sa.UniqueConstraint("kind", "ref", name="uq_ledger_entries_ref"),
    )
    op.create_table(
        "ledger_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", _ID, autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("size", _ID, autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size"),
    )
    op.create_table(
        "ledger_cosignatures",
        sa.Column("size", _ID, autoincrement=False, nullable=False),
        sa.Column("witness", sa.String(length=256), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("size", "witness"),
    )
    op.create_table(
        "ledger_witnessed",
        sa.Column("witness", sa.String(length=256), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("witness"),
    )
    op.create_table(
        "witness_logs",
        sa.Column("origin", sa.String(length=256), nullable=False),
        sa.Column("vkey", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=True),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("origin"),
    )
    op.create_table(
        "ledger_anchors",
        sa.Column("size", _ID, autoincrement=False, nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=80), nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size"),
    )
    op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_ledger_head_single"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO ledger_head (id, size, audit_seq) VALUES (1, 0, 0)")


def downgrade() -> None:
    for table in (
        "ledger_head",
        "ledger_anchors",
        "witness_logs",
        "ledger_witnessed",
        "ledger_cosignatures",
        "ledger_checkpoints",
        "ledger_nodes",
        "ledger_entries",
        "version_outbox",
    ):
        op.drop_table(table)
