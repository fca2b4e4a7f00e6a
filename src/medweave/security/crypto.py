"""Envelope encryption for records at rest: AES-256-GCM under per-patient data keys.

Each patient has one 256-bit data key (DEK). Resource bodies in that patient's compartment are
sealed with it; the DEK itself is stored wrapped (AES-256-GCM) by the master key, which never
touches the database. Destroying a wrapped DEK makes every ciphertext under it unreadable
(crypto-shredding). The associated data binds a ciphertext to its resource and version, so a
body cannot be moved to another row undetected. NIST SP 800-38D limits random 96-bit nonces to
2^32 messages per key, far above one patient's record.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medweave.errors import ConfigurationError

NONCE_BYTES = 12
KEY_BYTES = 32
PLAIN = b"\x00"
SEALED = b"\x01"


class DecryptionFailed(ConfigurationError):
    """A ciphertext did not authenticate: wrong key, or tampered storage."""


@dataclass(frozen=True)
class MasterKey:
    key: bytes

    @property
    def key_id(self) -> str:
        """A short public fingerprint; it says which master key wrapped a DEK, never the key."""
        return hashlib.sha256(b"medweave-master-key-id" + self.key).hexdigest()[:16]

    @classmethod
    def from_b64(cls, text: str) -> MasterKey:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except ValueError as exc:
            raise ConfigurationError("master key is not valid base64") from exc
        if len(raw) != KEY_BYTES:
            raise ConfigurationError(f"master key must be {KEY_BYTES} bytes, got {len(raw)}")
        return cls(raw)

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    def to_b64(self) -> str:
        return base64.b64encode(self.key).decode("ascii")

    def wrap(self, dek: bytes, *, patient_id: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.key).encrypt(nonce, dek, _wrap_aad(patient_id))

    def unwrap(self, wrapped: bytes, *, patient_id: str) -> bytes:
        try:
            return AESGCM(self.key).decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _wrap_aad(patient_id)
            )
        except InvalidTag as exc:
            raise DecryptionFailed("a patient data key did not unwrap under the master key") from exc


def _wrap_aad(patient_id: str) -> bytes:
    return b"medweave-dek:" + patient_id.encode()


def derive_key(key: bytes, *, info: bytes) -> bytes:
    """A 32-byte subkey of ``key`` for one purpose (HKDF-SHA256, RFC 5869; ``info`` names it)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def new_data_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def seal(dek: bytes | None, plaintext: bytes, *, aad: bytes) -> bytes:
    """Encrypt with the data key; without one (non-patient resources) store tagged plaintext."""
    if dek is None:
        return PLAIN + plaintext
    nonce = os.urandom(NONCE_BYTES)
    return SEALED + nonce + AESGCM(dek).encrypt(nonce, plaintext, aad)


def is_sealed(blob: bytes) -> bool:
    return blob[:1] == SEALED


def open_sealed(dek: bytes | None, blob: bytes, *, aad: bytes) -> bytes:
    if blob[:1] == PLAIN:
        return blob[1:]
    if dek is None:
        raise DecryptionFailed("sealed body without a data key")
    try:
        return AESGCM(dek).decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], aad)
    except InvalidTag as exc:
        raise DecryptionFailed("a record body did not authenticate") from exc


def load_or_create_master_key(*, inline: str | None, path: Path) -> MasterKey:
    """The master key from settings, else from its file, else a new one written 0600."""
    if inline:
        return MasterKey.from_b64(inline)
    if path.exists():
        return MasterKey.from_b64(path.read_text())
    key = MasterKey.generate()
    write_secret_file(path, key.to_b64())
    return key


def write_secret_file(path: Path, text: str) -> None:
    """Write a secret atomically with mode 0600 (the directory 0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    os.replace(tmp, path)
