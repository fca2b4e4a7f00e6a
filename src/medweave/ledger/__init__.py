"""The tamper-evident ledger: a Merkle transparency log (RFC 9162) over every AuditEvent and
every record version, with C2SP signed checkpoints, cosigning witnesses and optional anchoring.

Pure modules (no I/O): ``hashing``, ``proof``, ``verify``, ``compact``, ``tiles``, ``note``,
``checkpoint``, ``receipt``, ``witness_protocol``. Only ``store`` touches SQL.
"""
