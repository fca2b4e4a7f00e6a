"""TURN credentials in coturn's REST-API scheme, against a value computed with openssl:

printf '%s' "1767225600:patient-7" | openssl dgst -sha1 -hmac "coturn-shared-secret" -binary | base64
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from medweave.telehealth.turn import ice_servers, turn_credential

SECRET = b"coturn-shared-secret"
EXPIRES = datetime(2026, 1, 1, tzinfo=UTC)  # 1767225600


def test_the_credential_matches_openssl() -> None:
    assert turn_credential(SECRET, user="patient-7", expires=EXPIRES) == (
        "1767225600:patient-7",
        "mKWPaggHfMxZIpkbPyXqIzc7uzs=",
    )


def test_ice_servers_carry_a_credential_that_expires() -> None:
    now = EXPIRES - timedelta(hours=1)
    servers = ice_servers(
        stun_urls=["stun:127.0.0.1:3478"],
        turn_urls=["turn:127.0.0.1:3478?transport=udp"],
        turn_secret=SECRET,
        user="patient-7",
        now=now,
    )
    assert servers[0] == {"urls": ["stun:127.0.0.1:3478"]}
    assert servers[1]["username"] == "1767225600:patient-7"
    assert servers[1]["credential"] == "mKWPaggHfMxZIpkbPyXqIzc7uzs="
    assert ice_servers(stun_urls=[], turn_urls=[], turn_secret=None, user="u", now=now) == []


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        turn_credential(SECRET, user="a:b", expires=EXPIRES)
    with pytest.raises(ValueError):
        turn_credential(SECRET, user="u", expires=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="secret"):
        ice_servers(stun_urls=[], turn_urls=["turn:x"], turn_secret=None, user="u", now=EXPIRES)
