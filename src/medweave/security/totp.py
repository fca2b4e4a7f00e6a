"""Time-based one-time passwords (RFC 6238) for the staff second factor.

Codes are the authenticator-app default: HMAC-SHA1, 6 digits, 30-second steps, secrets of 160
bits (RFC 4226 §4 recommends 160). A code is accepted for the current step and one step either
side (RFC 6238 §5.2 allows a small window for clock drift and typing time), and never for a step
at or before the last one accepted for that user, so a code seen over a shoulder or in a log
cannot be replayed (RFC 6238 §5.2: "the verifier MUST NOT accept the second attempt of the OTP
after the successful validation has been issued for the first OTP"). The caller stores the step
that ``verify`` returns.

The enrolment QR code is drawn here, on the server, as SVG markup: no JavaScript, no network,
and the secret never leaves the page.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

import pyotp
import segno

DIGITS = 6
STEP_SECONDS = 30
WINDOW = 1  # steps accepted either side of now
SECRET_BYTES = 20  # 160 bits, 32 base32 characters


def new_secret() -> str:
    """A fresh random base32 secret (from the OS CSPRNG via ``secrets``)."""
    return pyotp.random_base32(length=SECRET_BYTES * 8 // 5)


def provisioning_uri(secret: str, *, account: str, issuer: str = "Medweave") -> str:
    """The ``otpauth://totp/...`` URI an authenticator app reads from the QR code."""
    return _totp(secret).provisioning_uri(name=account, issuer_name=issuer)


def step_at(now: datetime | None = None) -> int:
    """The RFC 6238 time step (T) for an instant: Unix seconds divided by 30."""
    return int(_aware(now).timestamp()) // STEP_SECONDS


def code_for(secret: str, *, now: datetime | None = None) -> str:
    """The code an authenticator shows at ``now`` (for demo seeding and tests)."""
    return _totp(secret).generate_otp(step_at(now))


def verify(secret: str, code: str, *, last_used_step: int | None, now: datetime | None = None) -> int | None:
    """The time step the code belongs to if it is valid and unused, else None.

    ``last_used_step`` is the step returned by the previous successful ``verify`` for this secret
    (None if there was none); that step and every earlier one are refused.
    """
    candidate = code.replace(" ", "")
    if len(candidate) != DIGITS or not candidate.isascii() or not candidate.isdigit():
        return None
    totp = _totp(secret)
    current = step_at(now)
    for step in range(current - WINDOW, current + WINDOW + 1):
        if last_used_step is not None and step <= last_used_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), candidate):
            return step
    return None


def qr_svg(uri: str, *, title: str = "QR code for your authenticator app") -> str:
    """Inline ``<svg>`` markup of the QR code, ready to place in a page.

    Error correction M, 4 px modules and the 4-module quiet zone the standard asks for. The
    ``<title>`` gives screen readers a name; the page should show the secret as text too.
    """
    code = segno.make(uri, error="m", micro=False)
    return code.svg_inline(scale=4, border=4, title=title, dark="#000", light="#fff")


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now
