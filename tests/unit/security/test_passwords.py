"""argon2id hashing with the OWASP parameters, verification that never raises, and the policy."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from argon2 import Type as Argon2Type
from hypothesis import given, settings
from hypothesis import strategies as st

from medweave.errors import InvalidInput
from medweave.security.passwords import (
    MAX_LENGTH,
    check_policy,
    hash_password,
    needs_rehash,
    verify_password,
)

GOOD = "correct horse battery staple"


def test_hash_is_argon2id_with_owasp_parameters() -> None:
    stored = hash_password(GOOD)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert GOOD not in stored
    assert hash_password(GOOD) != stored  # a fresh salt each time
    assert not needs_rehash(stored)


def test_verify_accepts_right_and_refuses_wrong() -> None:
    stored = hash_password(GOOD)
    assert verify_password(stored, GOOD) is True
    assert verify_password(stored, GOOD + " ") is False
    assert verify_password(stored, GOOD.upper()) is False
    assert verify_password(stored, "") is False


def test_unicode_is_normalised_before_hashing() -> None:
    composed = "caf\u00e9 au lait tous les jours"
    decomposed = "cafe\u0301 au lait tous les jours"
    assert verify_password(hash_password(composed), decomposed)


@pytest.mark.parametrize(
    "garbage",
    [None, "", "not a hash", "$argon2id$", "$argon2id$v=19$m=19456,t=2,p=1$AAAA$BBBB", "$2b$12$abcdefghijk"],
)
def test_verify_never_raises_on_garbage_hashes(garbage: str | None) -> None:
    assert verify_password(garbage, GOOD) is False


def test_verify_refuses_overlong_password_without_hashing_it() -> None:
    stored = hash_password(GOOD)
    assert verify_password(stored, "x" * (MAX_LENGTH + 1)) is False
    with pytest.raises(InvalidInput):
        hash_password("x" * (MAX_LENGTH + 1))


def test_weaker_or_foreign_hashes_need_rehash_but_still_verify() -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Argon2Type.ID).hash(GOOD)
    assert needs_rehash(old)
    assert verify_password(old, GOOD)
    argon2i = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Argon2Type.I).hash(GOOD)
    assert needs_rehash(argon2i)
    assert needs_rehash("not a hash")


@settings(max_examples=10, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_round_trip_any_text(password: str) -> None:
    stored = hash_password(password)
    assert verify_password(stored, password)
    assert not verify_password(stored, password + "x")


@pytest.mark.parametrize(
    "password",
    [
        "Tr0ub4dor&3x!q",
        "correct horse battery staple",
        "ab" * 5 + "cde",
        "\u00e9t\u00e9 \u00e0 la plage 2024",
        "x" * 11 + "y",
    ],
)
def test_policy_accepts_long_varied_passwords(password: str) -> None:
    check_policy(password, context=["alice"])


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-pw-11", "at least 12"),
        ("x" * (MAX_LENGTH + 1), "at most"),
        ("Password1234", "too common"),
        ("aaaaaaaaaaaa", "too common"),
        ("abababababab", "too common"),
        ("123456789012", "too common"),
        ("zyxwvutsrqpo", "too common"),
        ("qwertyuiopas", "too common"),
        ("alice.nguyen1", "username"),
        ("ALICE.NGUYEN!!", "username"),
        ("medweave2024!", "service name"),
        ("tab\there is bad", "control characters"),
    ],
)
def test_policy_refuses_with_a_reason(password: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        check_policy(password, context=["alice.nguyen", "al"])


def test_policy_counts_characters_not_bytes() -> None:
    emoji = "".join(chr(0x1F600 + i) for i in range(12))  # 12 characters, 48 bytes in UTF-8
    check_policy(emoji)
    with pytest.raises(InvalidInput, match="at least 12"):
        check_policy(emoji[:11])


def test_unknown_user_and_garbage_hash_cost_a_real_argon2_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from medweave.security import passwords

    burned: list[str] = []
    real = passwords._burn

    def recording_burn(candidate: str) -> None:
        burned.append(candidate)
        real(candidate)

    monkeypatch.setattr(passwords, "_burn", recording_burn)
    stored = hash_password(GOOD)
    assert not verify_password(stored, "wrong password here")
    assert burned == []  # a mismatch already did the argon2 work
    assert not verify_password(None, "wrong password here")
    assert not verify_password("garbage", "wrong password here")
    assert burned == ["wrong password here", "wrong password here"]
