"""Password hashing (argon2id) and the password policy.

Hashing follows the OWASP Password Storage Cheat Sheet
(https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html): argon2id with
at least 19 MiB of memory, 2 iterations and 1 degree of parallelism. Those are the parameters
below, written out rather than taken from the library's defaults, so an upgrade of argon2-cffi
never changes them silently; raising them later makes ``needs_rehash`` true for old hashes, and
the login path re-hashes on the next successful sign-in.

The policy follows NIST SP 800-63B §5.1.1.2 (Memorized Secret Verifiers; §3.1.1.2 in revision 4):
a minimum length (ours is 12), a generous maximum, any printable character or space allowed,
Unicode normalised (NFKC) before hashing, no composition rules, and a check against commonly
used and context-specific values.

No I/O: the clock is not even read.
"""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import Iterable
from functools import cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from medweave.errors import InvalidInput

TIME_COST = 2  # iterations
MEMORY_COST_KIB = 19 * 1024  # 19 MiB
PARALLELISM = 1
HASH_LEN = 32
SALT_LEN = 16

MIN_LENGTH = 12
MAX_LENGTH = 1024

# The most common passwords of 12+ characters in public breach corpora; a long list belongs in a
# data file, this one only stops the obvious.
# fmt: off
COMMON = frozenset({
    "password1234", "password12345", "password123456", "passwordpassword", "123456789012",
    "1234567890123", "12345678901234", "qwertyuiopasdfgh", "qwertyuiop123", "qwerty123456",
    "1q2w3e4r5t6y", "1qaz2wsx3edc", "iloveyou1234", "letmein12345", "welcome12345", "administrator",
    "changeme1234", "abcdefghijkl", "abc123456789", "000000000000", "trustno1trustno1", "football1234",
    "baseball1234", "monkey123456", "sunshine1234",
})
# fmt: on
_SEQUENCES = ("0123456789" * 3, "abcdefghijklmnopqrstuvwxyz" * 2, "qwertyuiopasdfghjklzxcvbnm" * 2)

_HASHER = PasswordHasher(
    time_cost=TIME_COST,
    memory_cost=MEMORY_COST_KIB,
    parallelism=PARALLELISM,
    hash_len=HASH_LEN,
    salt_len=SALT_LEN,
    type=Type.ID,
)


def normalize(password: str) -> str:
    """NFKC, as NIST SP 800-63B asks, so the same password typed on two keyboards matches."""
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    """The argon2id PHC string (``$argon2id$v=19$m=19456,t=2,p=1$salt$hash``) for a password."""
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"password is longer than {MAX_LENGTH} characters")
    return _HASHER.hash(normalize(password))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True only if the password matches; never raises.

    A missing or malformed hash returns False after the same argon2 work as a real check, so a
    login for an unknown user takes as long as one for a known user with a wrong password.
    """
    if len(password) > MAX_LENGTH:
        return False
    candidate = normalize(password)
    if stored_hash is None:
        _burn(candidate)
        return False
    try:
        return _HASHER.verify(stored_hash, candidate)
    except VerificationError:  # wrong password (VerifyMismatchError) or argon2 refused the input
        return False
    except (InvalidHashError, ValueError, TypeError):  # not an argon2 hash at all
        _burn(candidate)
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with other parameters than today's (or is not a hash at all)."""
    try:
        return _HASHER.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


def check_policy(password: str, *, context: Iterable[str] = ()) -> None:
    """Raise InvalidInput with a reason a person can act on, or return None if acceptable.

    ``context`` holds context-specific words the password must not be, such as the username
    and the user's name (NIST SP 800-63B §5.1.1.2).
    """
    normal = normalize(password)
    if len(normal) < MIN_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_LENGTH} characters")
    if len(normal) > MAX_LENGTH:
        raise InvalidInput(f"password must be at most {MAX_LENGTH} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in normal):
        raise InvalidInput("password must not contain control characters")
    folded = normal.casefold()
    if folded in COMMON or _is_repetitive(folded) or _is_sequential(folded):
        raise InvalidInput("password is too common or too easy to guess; choose another")
    words = {"medweave", *(w.casefold() for w in context if len(w) >= 3)}
    stripped = folded.strip("0123456789!@#$%^&*.-_ ")
    if any(stripped == w or folded == w for w in words):
        raise InvalidInput("password must not be your username, your name or the service name")


def _is_repetitive(text: str) -> bool:
    """One short unit repeated: ``aaaaaaaaaaaa``, ``abababababab``, ``abcabcabcabc``."""
    return any(len(text) % n == 0 and text == text[:n] * (len(text) // n) for n in range(1, 4))


def _is_sequential(text: str) -> bool:
    return any(text in seq or text[::-1] in seq for seq in _SEQUENCES)


@cache
def _dummy_hash() -> str:
    return _HASHER.hash("medweave-timing-equaliser")


def _burn(candidate: str) -> None:
    with contextlib.suppress(VerificationError):
        _HASHER.verify(_dummy_hash(), candidate)
