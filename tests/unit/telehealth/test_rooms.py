"""Room tokens: what is issued verifies, anything altered, expired or for another room does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medweave.telehealth import rooms

KEY = b"k" * 32
NOW = datetime(2027, 1, 4, 9, tzinfo=UTC)


def token(**overrides: object) -> str:
    fields: dict[str, object] = {
        "room": "a1",
        "who": "user:7",
        "role": "patient",
        "name": "alice",
        "expires": NOW + timedelta(minutes=5),
    }
    fields.update(overrides)
    return rooms.issue(KEY, **fields)  # type: ignore[arg-type]


def test_a_fresh_token_verifies() -> None:
    found = rooms.verify(KEY, token(), room="a1", now=NOW)
    assert (found.room, found.who, found.role, found.name) == ("a1", "user:7", "patient", "alice")
    assert found.expires == NOW + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("given_token", "room", "now", "reason"),
    [
        (token(), "a2", NOW, "another visit"),
        (token(), "a1", NOW + timedelta(minutes=5), "expired"),
        (
            rooms.issue(
                b"x" * 32, room="a1", who="u", role="guest", name="g", expires=NOW + timedelta(hours=1)
            ),
            "a1",
            NOW,
            "signature",
        ),
        (None, "a1", NOW, "not a room token"),
        ("a.b.c", "a1", NOW, "not a room token"),
        ("!!!.???", "a1", NOW, "not a room token"),
        ("x" * 5000, "a1", NOW, "not a room token"),
    ],
)
def test_refused(given_token: object, room: str, now: datetime, reason: str) -> None:
    with pytest.raises(rooms.RoomTokenRefused, match=reason):
        rooms.verify(KEY, given_token, room=room, now=now)


@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_altered_byte_is_refused(position: int, flip: int) -> None:
    original = token()
    i = position % len(original)
    altered = original[:i] + chr((ord(original[i]) ^ flip) % 128 or 65) + original[i + 1 :]
    if altered == original:
        return
    with pytest.raises(rooms.RoomTokenRefused):
        rooms.verify(KEY, altered, room="a1", now=NOW)


def test_only_known_roles_and_aware_expiry() -> None:
    with pytest.raises(ValueError):
        token(role="admin")
    with pytest.raises(ValueError):
        token(expires=datetime(2027, 1, 4, 9))


def test_invitations_keep_only_a_digest() -> None:
    secret = rooms.new_invite_secret()
    assert len(secret) >= 43 and rooms.invite_digest(secret) != secret
    assert len(rooms.invite_digest(secret)) == 64 and rooms.new_invite_secret() != secret
