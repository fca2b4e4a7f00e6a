"""Tables of the ledger. Only ``ledger.store`` touches them.

- ``ledger_entries``: one row per leaf, ``idx`` = 0, 1, 2... with no gaps. ``kind`` and ``ref``
  say what the leaf commits to (an audit row's ``seq``, or a record version); ``leaf_hash`` is
  RFC 9162's hash of the commitment. ``salt`` is set only for entries that belong to no patient
  (a patient's salt is derived from their data key and dies with it). ``patient_tag`` is an HMAC
  of the patient's id under a key only the log's signing key yields: ``verify`` catches an event
  moved to another patient, even an erased one, and the tag alone names nobody.
- ``ledger_nodes``: the hash of every complete subtree (``level``, ``idx``), written as leaves
  arrive, so any proof costs O(log n) reads.
- ``ledger_checkpoints``: every signed checkpoint (C2SP tlog-checkpoint note), by tree size.
- ``ledger_cosignatures``: witnesses' cosignature lines on our checkpoints.
- ``ledger_witnessed``: per witness, the latest size it cosigned for us (where the next
  add-checkpoint request starts its consistency proof).
- ``witness_logs``: when this instance is a witness for other logs, each log's key and the
  latest checkpoint it cosigned (size and root), moved only by compare-and-swap.
- ``ledger_anchors``: checkpoints anchored on a chain: the digest, chain id, transaction, block.
- ``ledger_head``: the single row that says how far the tree and the audit feed have got; it is
  locked by the sequencer, so one sequencer runs at a time however many processes try.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from medweave.audit.tables import UTCDateTime
from medweave.db import metadata

_ID = BigInteger().with_variant(Integer, "sqlite")

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("idx", _ID, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),
    Column("ref", String(256), nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("salt", LargeBinary(32), nullable=True),
    Column("patient_tag", LargeBinary(32), nullable=True),
    Column("sequenced", UTCDateTime, nullable=False),
    CheckConstraint("idx >= 0", name="ck_ledger_entries_idx"),
    UniqueConstraint("kind", "ref", name="uq_ledger_entries_ref"),
)

ledger_nodes = Table(
    "ledger_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", _ID, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("size", _ID, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("created", UTCDateTime, nullable=False),
)

ledger_cosignatures = Table(
    "ledger_cosignatures",
    metadata,
    Column("size", _ID, primary_key=True, autoincrement=False),
    Column("witness", String(256), primary_key=True),
    Column("line", Text, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)

ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("audit_seq", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="ck_ledger_head_single"),
)

ledger_witnessed = Table(
    "ledger_witnessed",
    metadata,
    Column("witness", String(256), primary_key=True),
    Column("size", BigInteger, nullable=False),
)

witness_logs = Table(
    "witness_logs",
    metadata,
    Column("origin", String(256), primary_key=True),
    Column("vkey", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=True),
    Column("updated", UTCDateTime, nullable=True),
)

ledger_anchors = Table(
    "ledger_anchors",
    metadata,
    Column("size", _ID, primary_key=True, autoincrement=False),
    Column("digest", LargeBinary(32), nullable=False),
    Column("chain_id", BigInteger, nullable=False),
    Column("tx_hash", String(80), nullable=False),
    Column("block", BigInteger, nullable=False),
    Column("created", UTCDateTime, nullable=False),
)
