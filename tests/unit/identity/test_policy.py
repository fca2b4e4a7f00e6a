"""Lockout, throttling, usernames and break-glass limits: the pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from medweave.errors import InvalidInput
from medweave.identity.policy import (
    GRANT_MAX_MINUTES,
    LockoutPolicy,
    ThrottleState,
    after_address_failure,
    after_user_failure,
    check_minutes,
    check_reason,
    check_username,
    username_key,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
P = LockoutPolicy()


def test_five_consecutive_failures_lock_for_fifteen_minutes() -> None:
    state = ThrottleState()
    for _ in range(4):
        state = after_user_failure(state, T0, P)
        assert not state.locked(T0)
    state = after_user_failure(state, T0, P)
    assert state.locked(T0)
    assert state.locked(T0 + timedelta(minutes=14, seconds=59))
    assert not state.locked(T0 + timedelta(minutes=15))


def test_the_next_five_lock_again_and_one_hundred_lock_for_thirty_days() -> None:
    state, at = ThrottleState(), T0
    for i in range(1, 100):
        state = after_user_failure(state, at, P)
        assert state.locked(at) == (i % 5 == 0)
        at += timedelta(minutes=16)
    state = after_user_failure(state, at, P)
    assert state.consecutive == 100
    assert state.locked(at + timedelta(days=29))
    assert not state.locked(at + timedelta(days=30))


def test_address_window_counts_twenty_then_refuses() -> None:
    state = ThrottleState()
    for i in range(19):
        state = after_address_failure(state, T0 + timedelta(seconds=i), P)
    assert not state.locked(T0 + timedelta(seconds=19))
    state = after_address_failure(state, T0 + timedelta(seconds=19), P)
    assert state.locked(T0 + timedelta(seconds=20))


def test_address_window_restarts_after_fifteen_minutes() -> None:
    state = ThrottleState()
    for _ in range(19):
        state = after_address_failure(state, T0, P)
    later = T0 + timedelta(minutes=15)
    state = after_address_failure(state, later, P)
    assert state.window_failures == 1 and state.window_start == later and not state.locked(later)


def test_usernames_compare_case_insensitively() -> None:
    assert username_key("Alice") == username_key("alice") == username_key(" ALICE ")
    assert username_key("ﬁona") == "fiona"  # NFKC folds the ligature
    assert check_username(" Dr.Who ") == "Dr.Who"


@pytest.mark.parametrize("bad", ["ab", "has space", "semi;colon", "x" * 65, ""])
def test_bad_usernames_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        check_username(bad)


def test_break_glass_reason_and_length() -> None:
    assert check_reason("  unconscious   in ED  ") == "unconscious in ED"
    for bad in ("", "urgent", " " * 30):
        with pytest.raises(InvalidInput):
            check_reason(bad)
    assert check_minutes(60) == timedelta(hours=1)
    for minutes in (0, -5, GRANT_MAX_MINUTES + 1):
        with pytest.raises(InvalidInput):
            check_minutes(minutes)
