"""OAuth2 bearer access tokens: JWTs signed with HS256 (RFC 7519, RFC 9068 profile).

The app both issues and checks these tokens, so one shared secret (HMAC-SHA256) is enough; it is
at least 256 bits, as RFC 7518 §3.2 requires for HS256. The header carries ``typ: at+jwt``
(RFC 9068 §2.1) and ``verify`` insists on it, on ``alg: HS256`` only (so ``alg: none`` and
algorithm confusion are refused), on the audience (the FHIR base URL) and issuer, and on every
claim below. Times are checked against an injectable clock with a small leeway (at most 30 s).

Claims: iss, sub (user id or client name), aud, iat, exp, jti, scope (canonical SMART v2),
kind ("user" or "client"), and when known role, patient (the launch patient) and fhirUser.
The only I/O is ``load_or_create_token_secret``, at startup.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from medweave.errors import ConfigurationError, InvalidInput, Unauthenticated
from medweave.security.crypto import write_secret_file
from medweave.security.scopes import ScopeSet

ALGORITHM = "HS256"
TOKEN_TYPE = "at+jwt"  # noqa: S105 (a media type, not a secret)
SECRET_BYTES = 32
KINDS = ("user", "client")
REQUIRED = ("iss", "sub", "aud", "iat", "exp", "jti", "scope", "kind")
DEFAULT_LEEWAY = timedelta(seconds=10)
MAX_LEEWAY = timedelta(seconds=30)
MAX_TTL = timedelta(days=366)

_TTL = re.compile(r"(?P<n>[0-9]{1,9})(?P<unit>[smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class InvalidToken(Unauthenticated):
    """The bearer token was refused: expired, tampered, for another audience, malformed."""


@dataclass(frozen=True)
class Claims:
    """The verified content of an access token."""

    issuer: str
    subject: str
    audience: str
    issued_at: datetime
    expires_at: datetime
    token_id: str
    scope: str
    kind: str
    role: str | None = None
    patient: str | None = None
    fhir_user: str | None = None

    @property
    def scopes(self) -> ScopeSet:
        return ScopeSet.parse(self.scope)


def issue(
    *,
    secret: bytes,
    issuer: str,
    subject: str,
    audience: str,
    scope: str,
    kind: str,
    ttl: timedelta,
    role: str | None = None,
    patient: str | None = None,
    fhir_user: str | None = None,
    now: datetime | None = None,
) -> str:
    """A signed access token. The scope string is validated and stored in canonical v2 form."""
    _check_secret(secret)
    if kind not in KINDS:
        raise InvalidInput(f"token kind must be one of {', '.join(KINDS)}")
    if not timedelta(0) < ttl <= MAX_TTL:
        raise InvalidInput(f"token lifetime must be positive and at most {MAX_TTL.days} days")
    issued = int(_aware(now).timestamp())
    payload: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": issued,
        "exp": issued + int(ttl.total_seconds()),
        "jti": secrets.token_urlsafe(16),
        "scope": str(ScopeSet.parse(scope)),
        "kind": kind,
    }
    optional = {"role": role, "patient": patient, "fhirUser": fhir_user}
    payload.update({k: v for k, v in optional.items() if v is not None})
    return jwt.encode(payload, secret, algorithm=ALGORITHM, headers={"typ": TOKEN_TYPE})


def verify(
    token: str,
    *,
    secret: bytes,
    audience: str,
    issuer: str,
    now: datetime | None = None,
    leeway: timedelta = DEFAULT_LEEWAY,
) -> Claims:
    """The claims of a valid token; InvalidToken (an Unauthenticated, 401) for anything else."""
    _check_secret(secret)
    if not timedelta(0) <= leeway <= MAX_LEEWAY:
        raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY.seconds} seconds")
    try:
        decoded = jwt.decode_complete(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={
                "require": list(REQUIRED),
                "verify_exp": False,  # checked below against the injectable clock
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidAudienceError as exc:
        raise InvalidToken("access token is for another audience") from exc
    except jwt.InvalidIssuerError as exc:
        raise InvalidToken("access token is from another issuer") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"access token lacks the {exc.claim!r} claim") from exc
    except jwt.InvalidTokenError as exc:  # bad signature, alg, encoding
        raise InvalidToken("access token is malformed or its signature does not verify") from exc
    if decoded["header"].get("typ") != TOKEN_TYPE:
        raise InvalidToken(f"token is not an access token (typ must be {TOKEN_TYPE})")
    claims = decoded["payload"]
    _check_times(claims, _aware(now), leeway)
    return _to_claims(claims, audience)


def _check_times(claims: dict[str, Any], now: datetime, leeway: timedelta) -> None:
    iat, exp = claims["iat"], claims["exp"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (iat, exp)):
        raise InvalidToken("access token times must be integers")
    at, slack = now.timestamp(), leeway.total_seconds()
    if exp + slack <= at:
        raise InvalidToken("access token has expired")
    if iat - slack > at:
        raise InvalidToken("access token is issued in the future")


def _to_claims(claims: dict[str, Any], audience: str) -> Claims:
    strings = ("iss", "sub", "jti", "scope", "kind")
    optional = ("role", "patient", "fhirUser")
    if not all(isinstance(claims[k], str) for k in strings) or not all(
        isinstance(claims.get(k), str | None) for k in optional
    ):
        raise InvalidToken("access token claims have the wrong types")
    if claims["kind"] not in KINDS:
        raise InvalidToken("access token kind is unknown")
    try:
        scope = str(ScopeSet.parse(claims["scope"]))
    except InvalidInput as exc:
        raise InvalidToken("access token scope is invalid") from exc
    return Claims(
        issuer=claims["iss"],
        subject=claims["sub"],
        audience=audience,
        issued_at=datetime.fromtimestamp(claims["iat"], UTC),
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        token_id=claims["jti"],
        scope=scope,
        kind=claims["kind"],
        role=claims.get("role"),
        patient=claims.get("patient"),
        fhir_user=claims.get("fhirUser"),
    )


def parse_ttl(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"1h"``, ``"2d"`` or a sum such as ``"1h30m"``; at most 366 days."""
    compact = text.strip().lower()
    parts = list(_TTL.finditer(compact))
    if not parts or "".join(p.group(0) for p in parts) != compact:
        raise InvalidInput(f"lifetime {text!r} is not like 90s, 30m, 1h, 2d or 1h30m")
    try:
        total = sum((timedelta(**{_UNITS[p["unit"]]: int(p["n"])}) for p in parts), timedelta(0))
    except OverflowError:
        total = timedelta.max
    if not timedelta(0) < total <= MAX_TTL:
        raise InvalidInput(f"lifetime {text!r} must be positive and at most {MAX_TTL.days} days")
    return total


def load_or_create_token_secret(*, inline: str | None, path: Path) -> bytes:
    """The signing secret from settings (base64), else from its file, else a new one written 0600."""
    if inline:
        return _decode_secret(inline)
    if path.exists():
        return _decode_secret(path.read_text())
    secret = secrets.token_bytes(SECRET_BYTES)
    write_secret_file(path, base64.b64encode(secret).decode("ascii"))
    return secret


def _decode_secret(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise ConfigurationError("token secret is not valid base64") from exc
    _check_secret(raw)
    return raw


def _check_secret(secret: bytes) -> None:
    if len(secret) < SECRET_BYTES:
        raise ConfigurationError(f"token secret must be at least {SECRET_BYTES} bytes (RFC 7518 §3.2)")


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now
