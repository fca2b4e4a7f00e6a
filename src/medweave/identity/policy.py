"""Sign-in throttling and lockout, usernames and break-glass limits: the rules, with no I/O.

Lockout (per typed username, whether or not such a user exists):
- 5 consecutive failures lock the name for 15 minutes; the next 5 lock it again, and so on.
  OWASP Authentication Cheat Sheet ("Login Throttling" / account lockout: a threshold, an
  observation window and a lockout duration) and NIST SP 800-63B §5.2.2 (rate limiting).
- 100 consecutive failures without a success lock the name for 30 days or until an admin unlocks
  it: NIST SP 800-63B §5.2.2 bounds consecutive failures on one account at 100. The 5-per-15-min
  rule alone allows at most 480 guesses a day, far fewer than a password of our policy can bear.
- A success clears the count; failures of the second factor count like failures of the password,
  so a stolen password does not buy unlimited TOTP guesses.

Throttling (per client address, across all names, against password spraying): 20 failures within
a 15-minute window refuse that address for 15 minutes. Counters live in the database, so the
limits hold across processes and machines.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from medweave.errors import InvalidInput


@dataclass(frozen=True)
class LockoutPolicy:
    user_failures: int = 5
    user_lock: timedelta = timedelta(minutes=15)
    user_hard_limit: int = 100
    user_hard_lock: timedelta = timedelta(days=30)
    address_failures: int = 20
    address_window: timedelta = timedelta(minutes=15)
    address_lock: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class ThrottleState:
    consecutive: int = 0
    window_start: datetime | None = None
    window_failures: int = 0
    locked_until: datetime | None = None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


def after_user_failure(state: ThrottleState, now: datetime, policy: LockoutPolicy) -> ThrottleState:
    """One more consecutive failure for a username; locks on every ``user_failures``-th."""
    n = state.consecutive + 1
    if n >= policy.user_hard_limit:
        return replace(state, consecutive=n, locked_until=now + policy.user_hard_lock)
    if n % policy.user_failures == 0:
        return replace(state, consecutive=n, locked_until=now + policy.user_lock)
    return replace(state, consecutive=n)


def after_address_failure(state: ThrottleState, now: datetime, policy: LockoutPolicy) -> ThrottleState:
    """One more failure from an address, counted in a fixed window that opens at the first one."""
    start, count = state.window_start, state.window_failures
    if start is None or now >= start + policy.address_window:
        start, count = now, 0
    count += 1
    locked = now + policy.address_lock if count >= policy.address_failures else state.locked_until
    return replace(state, window_start=start, window_failures=count, locked_until=locked)


# -- usernames ------------------------------------------------------------------------------------

USERNAME_MAX = 64
_USERNAME = re.compile(r"[\w.@+-]{3,64}")


def username_key(username: str) -> str:
    """The form usernames are compared in: NFKC, case-folded, trimmed (``Alice`` is ``alice``)."""
    return unicodedata.normalize("NFKC", username).strip().casefold()


def check_username(username: str) -> str:
    """The username as stored (NFKC, trimmed), or InvalidInput."""
    name = unicodedata.normalize("NFKC", username).strip()
    if _USERNAME.fullmatch(name) is None or len(name.casefold()) > USERNAME_MAX:
        raise InvalidInput(
            "username must be 3-64 letters, digits or . _ @ + - (no spaces)", expression=["username"]
        )
    return name


# -- break-glass ----------------------------------------------------------------------------------

REASON_MIN = 10
REASON_MAX = 1000
GRANT_MAX_MINUTES = 240  # four hours; a longer need is a care relationship, not an emergency


def check_reason(reason: str) -> str:
    text = " ".join(reason.split())
    if len(text) < REASON_MIN:
        raise InvalidInput(
            f"break-glass needs a reason of at least {REASON_MIN} characters", expression=["reason"]
        )
    if len(text) > REASON_MAX:
        raise InvalidInput(
            f"break-glass reason must be at most {REASON_MAX} characters", expression=["reason"]
        )
    return text


def check_minutes(minutes: int) -> timedelta:
    if not 1 <= minutes <= GRANT_MAX_MINUTES:
        raise InvalidInput(f"break-glass lasts 1 to {GRANT_MAX_MINUTES} minutes", expression=["minutes"])
    return timedelta(minutes=minutes)
