"""Envelope encryption: round trips, tamper detection, binding to the row, key files."""

from __future__ import annotations

import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medweave.errors import ConfigurationError
from medweave.security.crypto import (
    DecryptionFailed,
    MasterKey,
    is_sealed,
    load_or_create_master_key,
    new_data_key,
    open_sealed,
    seal,
)


@given(st.binary(max_size=2048), st.text(max_size=40))
def test_seal_round_trip(plaintext: bytes, aad: str) -> None:
    dek = new_data_key()
    blob = seal(dek, plaintext, aad=aad.encode())
    assert is_sealed(blob)
    assert plaintext == open_sealed(dek, blob, aad=aad.encode())
    if len(plaintext) >= 8:
        assert plaintext not in blob


def test_ciphertext_is_bound_to_its_row() -> None:
    dek = new_data_key()
    blob = seal(dek, b'{"resourceType":"Patient"}', aad=b"Patient/a/1")
    with pytest.raises(DecryptionFailed):
        open_sealed(dek, blob, aad=b"Patient/b/1")


def test_tampered_ciphertext_is_refused() -> None:
    dek = new_data_key()
    blob = bytearray(seal(dek, b"hello world", aad=b"x"))
    blob[-1] ^= 1
    with pytest.raises(DecryptionFailed):
        open_sealed(dek, bytes(blob), aad=b"x")


def test_wrong_key_is_refused() -> None:
    blob = seal(new_data_key(), b"hello", aad=b"x")
    with pytest.raises(DecryptionFailed):
        open_sealed(new_data_key(), blob, aad=b"x")


def test_plain_bodies_without_key() -> None:
    blob = seal(None, b"{}", aad=b"x")
    assert not is_sealed(blob)
    assert open_sealed(None, blob, aad=b"x") == b"{}"


def test_wrap_is_bound_to_the_patient() -> None:
    master = MasterKey.generate()
    dek = new_data_key()
    wrapped = master.wrap(dek, patient_id="p1")
    assert master.unwrap(wrapped, patient_id="p1") == dek
    with pytest.raises(DecryptionFailed):
        master.unwrap(wrapped, patient_id="p2")
    with pytest.raises(DecryptionFailed):
        MasterKey.generate().unwrap(wrapped, patient_id="p1")


def test_master_key_file_is_created_private_and_reused(tmp_path) -> None:
    path = tmp_path / "secrets" / "master.key"
    first = load_or_create_master_key(inline=None, path=path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_master_key(inline=None, path=path) == first
    inline = MasterKey.generate()
    assert load_or_create_master_key(inline=inline.to_b64(), path=path) == inline


@pytest.mark.parametrize("text", ["not base64!", "c2hvcnQ="])
def test_bad_master_key_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigurationError):
        MasterKey.from_b64(text)
