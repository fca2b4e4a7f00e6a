"""What a leaf commits to: canonical, salted, PHI-free bytes for an audit row or a record version.

Pure. The ledger hashes these with RFC 9162's leaf hash. Each is a few ASCII lines: a version
tag, non-identifying facts (sequence number or method, time), and an HMAC-SHA-256 under the
entry's salt over everything else (who, which patient, which resource, the body or the sealed
blob's digest). A patient's salt is derived from their data key (``records.keys.ledger_salts``):
after crypto-shredding the leaf still sits in the tree, but nobody can link it to the person,
not even with a guess of its content. Entries of no patient get a random salt of their own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from medweave.audit.events import AuditRecord, instant, leaf_bytes
from medweave.records.feed import VersionFacts

SALT_BYTES = 32


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def audit_leaf(record: AuditRecord, *, salt: bytes) -> bytes:
    """An audit row's commitment: ``audit.events.leaf_bytes`` with the salt (HMAC of the body)."""
    return leaf_bytes(record, salt=salt)


def version_leaf(facts: VersionFacts, *, salt: bytes) -> bytes:
    """A record version's commitment. The HMAC covers type, id, version, method, deletion, time,
    and the SHA-256 of the stored (sealed) blob, so no key is needed to recompute it."""
    payload = "\n".join(
        [
            facts.res_type,
            facts.res_id,
            str(facts.version_id),
            facts.method,
            "deleted" if facts.deleted else "live",
            instant(facts.last_updated),
            facts.blob_sha256.hex(),
        ]
    ).encode()
    digest = hmac.new(salt, payload, hashlib.sha256).hexdigest()
    lines = ["medweave-version/v1", facts.method, instant(facts.last_updated), f"hmac-sha256:{digest}"]
    return "".join(f"{line}\n" for line in lines).encode("ascii")
