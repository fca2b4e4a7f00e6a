"""RFC 6238 TOTP: the test vectors, the ±1 step window, replay refusal and the enrolment QR code."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest

from medweave.security.totp import code_for, new_secret, provisioning_uri, qr_svg, step_at, verify

NOW = datetime(2026, 3, 14, 9, 26, 45, tzinfo=UTC)  # 15 s into its 30 s step
STEP = timedelta(seconds=30)


SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
OTHER = "KRUGKIDROVUWG2ZAMJZG653OEBTG66BA"


@pytest.fixture
def secret() -> str:
    """A fixed secret, so the tests are deterministic; its codes around NOW are all distinct."""
    codes = {reference(SECRET, NOW + k * STEP) for k in range(-3, 4)}
    assert len(codes) == 7
    return SECRET


def reference(secret: str, at: datetime) -> str:
    """What an authenticator app (pyotp's own implementation) shows at ``at``."""
    return pyotp.TOTP(secret).at(at)


@pytest.mark.parametrize(
    ("unix", "expected"),
    [
        (59, "287082"),
        (1111111109, "081804"),
        (1111111111, "050471"),
        (1234567890, "005924"),
        (2000000000, "279037"),
    ],
)
def test_rfc6238_appendix_b_sha1_vectors(unix: int, expected: str) -> None:
    # The RFC's SHA-1 seed is ASCII "12345678901234567890"; its 8-digit codes end in these 6 digits.
    secret = base64.b32encode(b"12345678901234567890").decode()
    at = datetime.fromtimestamp(unix, UTC)
    assert code_for(secret, now=at) == expected
    assert verify(secret, expected, last_used_step=None, now=at) == unix // 30


def test_new_secret_is_160_bits_of_base32_and_fresh() -> None:
    a, b = new_secret(), new_secret()
    assert a != b
    assert len(base64.b32decode(a)) == 20


def test_current_code_is_accepted_and_returns_its_step(secret: str) -> None:
    assert verify(secret, reference(secret, NOW), last_used_step=None, now=NOW) == step_at(NOW)


@pytest.mark.parametrize("offset", [-1, 1])
def test_one_step_either_side_is_accepted(secret: str, offset: int) -> None:
    code = reference(secret, NOW + offset * STEP)
    assert verify(secret, code, last_used_step=None, now=NOW) == step_at(NOW) + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_two_or_more_steps_away_is_refused(secret: str, offset: int) -> None:
    code = reference(secret, NOW + offset * STEP)
    assert verify(secret, code, last_used_step=None, now=NOW) is None


def test_a_code_cannot_be_replayed(secret: str) -> None:
    code = reference(secret, NOW)
    used = verify(secret, code, last_used_step=None, now=NOW)
    assert used is not None
    assert verify(secret, code, last_used_step=used, now=NOW) is None
    assert verify(secret, code, last_used_step=used, now=NOW + timedelta(seconds=10)) is None


def test_an_earlier_step_is_refused_once_a_later_one_was_used(secret: str) -> None:
    later = verify(secret, reference(secret, NOW + STEP), last_used_step=None, now=NOW)
    assert later == step_at(NOW) + 1
    assert verify(secret, reference(secret, NOW), last_used_step=later, now=NOW) is None
    assert (
        verify(secret, reference(secret, NOW + 2 * STEP), last_used_step=later, now=NOW + STEP) == later + 1
    )


def test_next_step_code_is_accepted_after_the_previous_one(secret: str) -> None:
    first = verify(secret, reference(secret, NOW), last_used_step=None, now=NOW)
    assert first is not None
    then = NOW + STEP
    assert verify(secret, reference(secret, then), last_used_step=first, now=then) == first + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5x", "١٢٣٤٥٦", "      "])
def test_malformed_codes_are_refused_not_raised(secret: str, code: str) -> None:
    assert verify(secret, code, last_used_step=None, now=NOW) is None


def test_spaces_in_a_typed_code_are_ignored(secret: str) -> None:
    code = reference(secret, NOW)
    assert verify(secret, f"{code[:3]} {code[3:]}", last_used_step=None, now=NOW) == step_at(NOW)


def test_wrong_secret_is_refused(secret: str) -> None:
    assert reference(OTHER, NOW) != reference(secret, NOW)
    assert verify(OTHER, reference(secret, NOW), last_used_step=None, now=NOW) is None


def test_naive_datetime_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="timezone"):
        verify(secret, "123456", last_used_step=None, now=datetime(2026, 1, 1))


def test_provisioning_uri_names_issuer_account_and_secret(secret: str) -> None:
    uri = provisioning_uri(secret, account="dr.ade@clinic.example")
    parts = urlparse(uri)
    assert parts.scheme == "otpauth"
    assert parts.netloc == "totp"
    assert parts.path == "/Medweave:dr.ade%40clinic.example"
    query = parse_qs(parts.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["Medweave"]
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.at(NOW) == reference(secret, NOW)


def test_qr_svg_is_inline_svg_without_script_and_with_a_title(secret: str) -> None:
    uri = provisioning_uri(secret, account="nurse", issuer="Clinic <&> Co")
    svg = qr_svg(uri)
    assert svg.startswith("<svg")
    assert "<script" not in svg
    assert "style=" not in svg  # a strict CSP without unsafe-inline allows it
    root = ET.fromstring(svg)  # well-formed, escaping included
    assert root.tag.endswith("svg")
    title = root.find("{*}title")
    assert title is not None
    assert title.text == "QR code for your authenticator app"
    assert secret not in svg  # the secret is in the pixels, not in the markup
    assert qr_svg(uri) == svg  # deterministic
    assert qr_svg(provisioning_uri(OTHER, account="nurse")) != svg
