"""Bearer access tokens: what verify accepts, everything it refuses, lifetimes and the secret file."""

from __future__ import annotations

import base64
import contextlib
import json
import stat
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from medweave.errors import ConfigurationError, InvalidInput, Unauthenticated
from medweave.security.tokens import (
    Claims,
    InvalidToken,
    issue,
    load_or_create_token_secret,
    parse_ttl,
    verify,
)

SECRET = b"k" * 32
OTHER_SECRET = b"o" * 32
ISSUER = "https://medweave.example"
AUDIENCE = "https://medweave.example/fhir"
NOW = datetime(2026, 3, 14, 9, 0, 0, tzinfo=UTC)


def make(**overrides: Any) -> str:
    args: dict[str, Any] = {
        "secret": SECRET,
        "issuer": ISSUER,
        "subject": "user-42",
        "audience": AUDIENCE,
        "scope": "openid fhirUser patient/Observation.read",
        "kind": "user",
        "ttl": timedelta(hours=1),
        "role": "patient",
        "patient": "pat-7",
        "fhir_user": "Patient/pat-7",
        "now": NOW,
    }
    args.update(overrides)
    return issue(**args)


def check(token: str, **overrides: Any) -> Claims:
    args: dict[str, Any] = {"secret": SECRET, "audience": AUDIENCE, "issuer": ISSUER, "now": NOW}
    args.update(overrides)
    return verify(token, **args)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_round_trip_gives_the_claims() -> None:
    claims = check(make())
    assert claims.issuer == ISSUER
    assert claims.subject == "user-42"
    assert claims.audience == AUDIENCE
    assert claims.issued_at == NOW
    assert claims.expires_at == NOW + timedelta(hours=1)
    assert claims.scope == "fhirUser openid patient/Observation.rs"  # canonical v2
    assert claims.kind == "user"
    assert claims.role == "patient"
    assert claims.patient == "pat-7"
    assert claims.fhir_user == "Patient/pat-7"
    assert claims.scopes.allows("Observation", "read", context="patient")
    assert not claims.scopes.allows("Observation", "create")
    assert not claims.scopes.allows("Condition", "read")


def test_header_and_payload_are_standard() -> None:
    token = make(
        kind="client", subject="lab-sync", role=None, patient=None, fhir_user=None, scope="system/*.rs"
    )
    header, payload, _ = token.split(".")
    assert json.loads(unb64(header)) == {"alg": "HS256", "typ": "at+jwt"}
    body = json.loads(unb64(payload))
    assert set(body) == {"iss", "sub", "aud", "iat", "exp", "jti", "scope", "kind"}
    claims = check(token)
    assert (claims.kind, claims.role, claims.patient, claims.fhir_user) == ("client", None, None, None)


def test_every_token_has_a_fresh_id() -> None:
    assert check(make()).token_id != check(make()).token_id


def test_invalid_token_answers_401() -> None:
    assert issubclass(InvalidToken, Unauthenticated)
    assert InvalidToken("x").status == 401


def test_expired_token_is_refused_after_the_leeway() -> None:
    token = make(ttl=timedelta(minutes=5))
    end = NOW + timedelta(minutes=5)
    check(token, now=end - timedelta(seconds=1), leeway=timedelta(0))
    with pytest.raises(InvalidToken, match="expired"):
        check(token, now=end, leeway=timedelta(0))
    check(token, now=end + timedelta(seconds=9), leeway=timedelta(seconds=10))
    with pytest.raises(InvalidToken, match="expired"):
        check(token, now=end + timedelta(seconds=10), leeway=timedelta(seconds=10))
    with pytest.raises(InvalidToken, match="expired"):
        check(token, now=NOW + timedelta(days=1))


def test_token_from_the_future_is_refused() -> None:
    with pytest.raises(InvalidToken, match="future"):
        check(make(now=NOW + timedelta(minutes=1)))


def test_leeway_is_bounded() -> None:
    with pytest.raises(ValueError, match="leeway"):
        check(make(), leeway=timedelta(seconds=31))


def test_tampered_signature_is_refused() -> None:
    header, payload, signature = make().split(".")
    flipped = bytearray(unb64(signature))
    flipped[0] ^= 1
    with pytest.raises(InvalidToken, match="signature"):
        check(f"{header}.{payload}.{b64(bytes(flipped))}")


@pytest.mark.parametrize(
    "change",
    [
        {"scope": "user/*.cruds"},
        {"sub": "admin"},
        {"patient": "pat-8"},
        {"role": "admin"},
        {"exp": int((NOW + timedelta(days=365)).timestamp())},
    ],
)
def test_tampered_payload_is_refused(change: dict[str, Any]) -> None:
    header, payload, signature = make().split(".")
    body = json.loads(unb64(payload))
    body.update(change)
    forged = b64(json.dumps(body, separators=(",", ":")).encode())
    with pytest.raises(InvalidToken, match="signature"):
        check(f"{header}.{forged}.{signature}")


def test_wrong_audience_is_refused() -> None:
    with pytest.raises(InvalidToken, match="audience"):
        check(make(audience="https://other.example/fhir"))
    with pytest.raises(InvalidToken, match="audience"):
        check(make(), audience="https://medweave.example/fhir/")


def test_wrong_issuer_is_refused() -> None:
    with pytest.raises(InvalidToken, match="issuer"):
        check(make(issuer="https://evil.example"))


def test_token_signed_with_another_secret_is_refused() -> None:
    with pytest.raises(InvalidToken, match="signature"):
        check(make(secret=OTHER_SECRET))


def good_payload() -> dict[str, Any]:
    return json.loads(unb64(make().split(".")[1]))


def test_alg_none_is_refused() -> None:
    unsigned = b64(b'{"alg":"none","typ":"at+jwt"}') + "." + b64(json.dumps(good_payload()).encode()) + "."
    with pytest.raises(InvalidToken):
        check(unsigned)
    with pytest.raises(InvalidToken):
        check(jwt.encode(good_payload(), "", algorithm="none", headers={"typ": "at+jwt"}))


def test_other_hmac_algorithm_with_the_right_secret_is_refused() -> None:
    with warnings.catch_warnings():  # PyJWT warns that 32 bytes is short for HS512: not our concern here
        warnings.simplefilter("ignore")
        token = jwt.encode(good_payload(), SECRET, algorithm="HS512", headers={"typ": "at+jwt"})
    with pytest.raises(InvalidToken):
        check(token)


def test_a_jwt_that_is_not_an_access_token_is_refused() -> None:
    token = jwt.encode(good_payload(), SECRET, algorithm="HS256", headers={"typ": "JWT"})
    with pytest.raises(InvalidToken, match="typ"):
        check(token)


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "iat", "exp", "jti", "scope", "kind"])
def test_missing_claim_is_refused(claim: str) -> None:
    body = good_payload()
    del body[claim]
    token = jwt.encode(body, SECRET, algorithm="HS256", headers={"typ": "at+jwt"})
    with pytest.raises(InvalidToken):
        check(token)


@pytest.mark.parametrize(
    "change",
    [{"kind": "robot"}, {"scope": "admin/*.all"}, {"exp": "tomorrow"}, {"iat": True}, {"role": 7}],
)
def test_signed_but_malformed_claims_are_refused(change: dict[str, Any]) -> None:
    body = good_payload() | change
    token = jwt.encode(body, SECRET, algorithm="HS256", headers={"typ": "at+jwt"})
    with pytest.raises(InvalidToken):
        check(token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x.y.z", "..", "ey.ey.ey"])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        check(garbage)


def test_issue_checks_its_inputs() -> None:
    with pytest.raises(InvalidInput):
        make(scope="patient/Observation.sr")
    with pytest.raises(InvalidInput):
        make(kind="robot")
    with pytest.raises(InvalidInput):
        make(ttl=timedelta(0))
    with pytest.raises(ConfigurationError):
        make(secret=b"short")
    with pytest.raises(ValueError, match="timezone"):
        make(now=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("30m", timedelta(minutes=30)),
        ("3600s", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        (" 1H30m ", timedelta(minutes=90)),
        ("366d", timedelta(days=366)),
    ],
)
def test_parse_ttl(text: str, expected: timedelta) -> None:
    assert parse_ttl(text) == expected


@pytest.mark.parametrize(
    "text", ["", "1", "h", "1w", "-1h", "0s", "1.5h", "1 h", "1h-", "367d", "9" * 9 + "d" * 2]
)
def test_parse_ttl_refuses(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_ttl(text)


units = st.sampled_from([("s", "seconds"), ("m", "minutes"), ("h", "hours"), ("d", "days")])


@given(st.integers(min_value=1, max_value=366), units)
def test_parse_ttl_reads_each_unit(n: int, unit: tuple[str, str]) -> None:
    letter, name = unit
    assert parse_ttl(f"{n}{letter}") == timedelta(**{name: n})


SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=10**9), units), min_size=1, max_size=4))
def test_parse_ttl_sums_parts_or_refuses(parts: list[tuple[int, tuple[str, str]]]) -> None:
    text = "".join(f"{n}{letter}" for n, (letter, _) in parts)
    seconds = sum(n * SECONDS[letter] for n, (letter, _) in parts)
    if any(n >= 10**9 for n, _ in parts) or not 0 < seconds <= 366 * 86400:
        with pytest.raises(InvalidInput):
            parse_ttl(text)
    else:
        assert parse_ttl(text) == timedelta(seconds=seconds)


@given(st.text(max_size=20))
def test_parse_ttl_raises_only_invalid_input(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        parse_ttl(text)


def test_secret_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "token-secret"
    first = load_or_create_token_secret(inline=None, path=path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token_secret(inline=None, path=path) == first
    check(make(secret=first), secret=first)


def test_inline_secret_wins_and_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "token-secret"
    inline = base64.b64encode(OTHER_SECRET).decode()
    assert load_or_create_token_secret(inline=inline, path=path) == OTHER_SECRET
    assert not path.exists()
    with pytest.raises(ConfigurationError, match="base64"):
        load_or_create_token_secret(inline="not base64!", path=path)
    with pytest.raises(ConfigurationError, match="32 bytes"):
        load_or_create_token_secret(inline=base64.b64encode(b"short").decode(), path=path)
