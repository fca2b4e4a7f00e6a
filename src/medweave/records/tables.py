"""Tables of the record store. Only ``store``, ``search`` and ``keys`` touch them.

``resources`` holds the current version of every resource, ``resource_versions`` every version
(history), ``search_index`` one row per indexed value of the current version, and
``patient_keys`` the wrapped per-patient data keys, and ``version_outbox`` the versions the
ledger has not yet committed to (written in the same transaction as the version; the ledger's
sequencer takes them out in the transaction that commits them). Bodies of patient-compartment resources are
AES-256-GCM ciphertext under their patient's key.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from medweave.db import metadata

resources = Table(
    "resources",
    metadata,
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("patient_id", String(64), nullable=True),
    Column("body", LargeBinary, nullable=True),
    Index("ix_resources_patient", "patient_id"),
    Index("ix_resources_type_updated", "res_type", "last_updated"),
)

resource_versions = Table(
    "resource_versions",
    metadata,
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("method", String(8), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("patient_id", String(64), nullable=True),
    Column("body", LargeBinary, nullable=True),
    Index("ix_versions_patient", "patient_id"),
    Index("ix_versions_updated", "last_updated"),
)

search_index = Table(
    "search_index",
    metadata,
    Column("pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("param", String(64), nullable=False),
    Column("patient_id", String(64), nullable=True),
    Column("str_norm", Text, nullable=True),
    Column("str_exact", Text, nullable=True),
    Column("system", Text, nullable=True),
    Column("code", Text, nullable=True),
    Column("lo", BigInteger, nullable=True),
    Column("hi", BigInteger, nullable=True),
    Column("num", Float, nullable=True),
    Column("ref_type", String(64), nullable=True),
    Column("ref_id", String(64), nullable=True),
    Index("ix_search_res", "res_type", "res_id"),
    Index("ix_search_str", "res_type", "param", "str_norm"),
    Index("ix_search_code", "res_type", "param", "code"),
    Index("ix_search_date", "res_type", "param", "lo", "hi"),
    Index("ix_search_ref", "param", "ref_id", "ref_type"),
    Index("ix_search_patient", "patient_id"),
    Index("ix_search_care", "patient_id", "param"),
)

patient_keys = Table(
    "patient_keys",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=True),
    Column("master_key_id", String(32), nullable=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("erased", DateTime(timezone=True), nullable=True),
)

version_outbox = Table(
    "version_outbox",
    metadata,
    Column("pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
)
