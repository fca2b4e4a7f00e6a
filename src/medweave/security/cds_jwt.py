"""Trusting CDS Clients: the signed JWT a CDS Hooks 2.0 client sends as its Bearer token.

What ``verify`` insists on, after https://cds-hooks.hl7.org/2.0/#trusting-cds-clients:

- header: ``alg`` is RS384 or ES384 (the two the spec RECOMMENDS; ``none`` and every HMAC
  algorithm are forbidden by it, and RS256/ES256 are not taken either: a client that follows the
  spec has no need of them); ``kid`` is present and names a key of the issuer's configured JWK
  Set, a key bound to that one algorithm; ``typ`` is ``JWT``; a ``jku``, if sent, must be one the
  issuer's configuration lists. Keys are never fetched, from ``jku`` or anywhere else: the JWK
  Set is agreed out of band and configured (the spec's allowlist of ``iss`` and ``jku``).
- payload: ``iss`` is a configured issuer (read unverified only to pick the keys; the signature
  is then checked); ``aud`` is exactly the URL of the endpoint being invoked, or a list holding
  it; ``exp`` has not passed, ``iat`` is not in the future (both with a leeway) and ``exp`` is at
  most 5 minutes after ``iat``; ``jti`` is a non-empty string not seen before from that issuer
  (a ``ReplayCache`` remembers it until the token could no longer be accepted anyway).
  ``tenant`` and ``sub`` are optional strings (2.0 does not define ``sub``; the subject falls
  back to ``iss``).

The 5-minute lifetime is our rule, not CDS Hooks': 2.0 sets no limit on ``exp``. It is the limit
SMART App Launch puts on the same kind of client-authentication JWT ("This time SHALL be no more
than five minutes in the future"), which the EHRs that call us already meet.

Every refusal is an ``InvalidCdsToken`` (an ``Unauthenticated``, 401) whose ``reason`` is a fixed
phrase: it never quotes the token or a value taken from it. The module does no I/O.
"""

from __future__ import annotations

import heapq
import json
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from medweave.errors import ConfigurationError, Unauthenticated

ALGORITHMS = {"RSA": "RS384", "EC": "ES384"}  # the key type each accepted alg needs
EC_CURVE = "P-384"
MIN_RSA_BITS = 2048
MAX_LIFETIME_S = 300  # exp - iat
MAX_LEEWAY_S = 300
MAX_TOKEN_CHARS = 16_384
MAX_JTI_CHARS = 256
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
CLIENT_FIELDS = frozenset({"iss", "jwks", "name", "jku"})
_URL = re.compile(r"https?://[^\s]+")


class InvalidCdsToken(Unauthenticated):
    """A CDS Client's JWT was refused; ``reason`` says why in a fixed, token-free phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"CDS Hooks JWT rejected: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class CdsClient:
    """A trusted CDS Client: its issuer, its public JWK Set and the ``jku`` URLs it may send."""

    issuer: str
    jwks: dict[str, Any]
    name: str = ""
    jku: tuple[str, ...] = ()
    _keys: dict[str, jwt.PyJWK] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer or self.issuer.strip() != self.issuer:
            raise ConfigurationError("CDS client iss must be a non-empty string without spaces")
        where = f"CDS client {self.issuer!r}"
        if not isinstance(self.name, str):
            raise ConfigurationError(f"{where}: name must be a string")
        for url in self.jku:
            if not isinstance(url, str) or not _URL.fullmatch(url):
                raise ConfigurationError(f"{where}: every jku must be an http(s) URL")
        object.__setattr__(self, "_keys", _parse_jwks(self.jwks, where))


def _parse_jwks(jwks: object, where: str) -> dict[str, jwt.PyJWK]:
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ConfigurationError(f"{where}: jwks must be a JWK Set with a non-empty 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    for n, jwk in enumerate(jwks["keys"], start=1):
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        at = f"{where}, key #{n}"
        if not isinstance(kid, str) or not kid:
            raise ConfigurationError(f"{at}: a key must be an object with a non-empty kid")
        if kid in keys:
            raise ConfigurationError(f"{at}: kid {kid!r} is not unique in the JWK Set")
        keys[kid] = _parse_jwk(jwk, f"{at} ({kid!r})")
    return keys


def _parse_jwk(jwk: dict[str, Any], at: str) -> jwt.PyJWK:
    if PRIVATE_MEMBERS & jwk.keys():
        raise ConfigurationError(f"{at}: holds private key material; configure public keys only")
    kty = jwk.get("kty")
    alg = ALGORITHMS.get(kty) if isinstance(kty, str) else None
    if alg is None:
        raise ConfigurationError(f"{at}: kty must be RSA or EC (asymmetric keys only)")
    if jwk.get("alg", alg) != alg:
        raise ConfigurationError(f"{at}: alg must be {alg} for a {kty} key")
    if jwk.get("use", "sig") != "sig":
        raise ConfigurationError(f"{at}: use must be 'sig'")
    ops = jwk.get("key_ops", ["verify"])
    if not isinstance(ops, list) or "verify" not in ops:
        raise ConfigurationError(f"{at}: key_ops must include 'verify'")
    if kty == "EC" and jwk.get("crv") != EC_CURVE:
        raise ConfigurationError(f"{at}: an EC key must be on curve {EC_CURVE} for ES384")
    try:
        key = jwt.PyJWK(jwk, algorithm=alg)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:  # messages may quote the key
        raise ConfigurationError(f"{at}: not a valid {kty} public key") from exc
    if isinstance(key.key, rsa.RSAPublicKey):
        if key.key.key_size < MIN_RSA_BITS:
            raise ConfigurationError(f"{at}: RSA keys must be at least {MIN_RSA_BITS} bits")
    elif not isinstance(key.key, ec.EllipticCurvePublicKey):
        raise ConfigurationError(f"{at}: not a public key")
    return key


def load_clients(text: str) -> dict[str, CdsClient]:
    """Trusted clients from JSON ``[{"iss", "jwks", "name"?, "jku"?}, ...]``, keyed by issuer."""
    try:
        entries = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigurationError(f"CDS clients are not valid JSON: {exc}") from None
    if not isinstance(entries, list):
        raise ConfigurationError("CDS clients must be a JSON list of client objects")
    clients: dict[str, CdsClient] = {}
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise ConfigurationError(f"CDS client #{n} must be an object")
        unknown = sorted(entry.keys() - CLIENT_FIELDS)
        if unknown:
            raise ConfigurationError(f"CDS client #{n} has unknown fields: {', '.join(unknown)}")
        if "iss" not in entry or "jwks" not in entry:
            raise ConfigurationError(f"CDS client #{n} needs both 'iss' and 'jwks'")
        jku = entry.get("jku", [])
        jku = [jku] if isinstance(jku, str) else jku
        if not isinstance(jku, list):
            raise ConfigurationError(f"CDS client #{n}: jku must be a URL or a list of URLs")
        client = CdsClient(entry["iss"], entry["jwks"], entry.get("name", ""), tuple(jku))
        if client.issuer in clients:
            raise ConfigurationError(f"CDS client #{n}: iss {client.issuer!r} is listed twice")
        clients[client.issuer] = client
    return clients


@dataclass(frozen=True)
class CdsCaller:
    """Who called, once their JWT has verified."""

    issuer: str
    subject: str
    tenant: str | None
    jti: str
    expires_at: datetime


class ReplayCache:
    """Thread-safe memory of the ``jti`` values seen per issuer, each kept until its expiry.

    In-process only: several workers behind one endpoint need a shared store instead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[tuple[str, str], float] = {}
        self._queue: list[tuple[float, str, str]] = []

    def seen(self, iss: str, jti: str, exp: datetime, *, now: datetime | None = None) -> bool:
        """True if (iss, jti) is already remembered; otherwise remember it until ``exp``."""
        at, until = _aware(now).timestamp(), exp.timestamp()
        with self._lock:
            while self._queue and self._queue[0][0] <= at:
                t, i, j = heapq.heappop(self._queue)
                if self._until.get((i, j)) == t:
                    del self._until[(i, j)]
            if (iss, jti) in self._until:
                return True
            self._until[(iss, jti)] = until
            heapq.heappush(self._queue, (until, iss, jti))
            return False

    def __len__(self) -> int:
        with self._lock:
            return len(self._until)


def verify(
    token: str,
    *,
    audience: str,
    clients: Mapping[str, CdsClient],
    replay: ReplayCache,
    now: datetime | None = None,
    leeway_s: int = 60,
) -> CdsCaller:
    """The verified caller of ``audience`` (the endpoint URL); InvalidCdsToken for anything else."""
    if not 0 <= leeway_s <= MAX_LEEWAY_S:
        raise ValueError(f"leeway_s must be between 0 and {MAX_LEEWAY_S}")
    at = _aware(now)
    if not isinstance(token, str) or not token:
        raise InvalidCdsToken("no token")
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidCdsToken("token is too long")
    try:
        unverified = jwt.decode_complete(token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
        raise InvalidCdsToken("token is not a well-formed JWT") from None
    header, claims = unverified["header"], unverified["payload"]
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS.values():
        raise InvalidCdsToken("alg is not allowed (RS384 or ES384 only)")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ("jwt", "application/jwt"):
        raise InvalidCdsToken("typ header must be JWT")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidCdsToken("kid header is missing")
    client = _client(claims.get("iss"), clients)
    if "jku" in header and header["jku"] not in client.jku:
        raise InvalidCdsToken("jku is not on the issuer's allowlist")
    key = client._keys.get(kid)
    if key is None:
        raise InvalidCdsToken("no key of the issuer matches kid")
    if key.algorithm_name != alg:
        raise InvalidCdsToken("alg does not match the key named by kid")
    claims = _verified_claims(token, key, alg, audience, client.issuer)
    expires_at = _check_times(claims, at, leeway_s)
    caller = _to_caller(claims, expires_at)
    if replay.seen(caller.issuer, caller.jti, expires_at + timedelta(seconds=leeway_s), now=at):
        raise InvalidCdsToken("jti has already been used (replay)")
    return caller


def _client(iss: object, clients: Mapping[str, CdsClient]) -> CdsClient:
    if not isinstance(iss, str) or not iss:
        raise InvalidCdsToken("iss claim is missing or not a string")
    client = clients.get(iss)
    if client is None or client.issuer != iss:
        raise InvalidCdsToken("issuer is not a trusted CDS client")
    return client


def _verified_claims(token: str, key: jwt.PyJWK, alg: str, audience: str, iss: str) -> dict[str, Any]:
    try:
        decoded = jwt.decode_complete(
            token,
            key,
            algorithms=[alg],
            audience=audience,
            issuer=iss,
            options={
                "require": list(REQUIRED_CLAIMS),
                "verify_exp": False,  # checked below against the injectable clock
                "verify_iat": False,
                "verify_nbf": False,
                "verify_sub": False,  # optional here; its type is checked with tenant's
                "enforce_minimum_key_length": True,
            },
        )
    except jwt.InvalidSignatureError:
        raise InvalidCdsToken("signature does not verify") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidCdsToken(f"{exc.claim} claim is missing") from None
    except jwt.InvalidAudienceError:
        raise InvalidCdsToken("aud is not this CDS Service endpoint") from None
    except jwt.exceptions.InvalidJTIError:
        raise InvalidCdsToken("jti must be a string") from None
    except (jwt.PyJWTError, ValueError, TypeError):
        raise InvalidCdsToken("token is not a well-formed JWT") from None
    claims: dict[str, Any] = decoded["payload"]
    return claims


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _check_times(claims: dict[str, Any], now: datetime, leeway_s: int) -> datetime:
    exp, iat = _number(claims["exp"]), _number(claims["iat"])
    nbf = _number(claims["nbf"]) if "nbf" in claims else 0.0
    if exp is None or iat is None or nbf is None:
        raise InvalidCdsToken("exp, iat and nbf must be finite numbers")
    at = now.timestamp()
    if exp + leeway_s <= at:
        raise InvalidCdsToken("token has expired")
    if iat - leeway_s > at:
        raise InvalidCdsToken("token is issued in the future")
    if nbf - leeway_s > at:
        raise InvalidCdsToken("token is not yet valid (nbf)")
    if exp <= iat:
        raise InvalidCdsToken("exp is not after iat")
    if exp - iat > MAX_LIFETIME_S:
        raise InvalidCdsToken("token lifetime exceeds 5 minutes")
    return datetime.fromtimestamp(exp, UTC)


def _to_caller(claims: dict[str, Any], expires_at: datetime) -> CdsCaller:
    jti, sub, tenant = claims["jti"], claims.get("sub"), claims.get("tenant")
    if not jti or len(jti) > MAX_JTI_CHARS:
        raise InvalidCdsToken(f"jti must be 1 to {MAX_JTI_CHARS} characters")
    for name, value in (("sub", sub), ("tenant", tenant)):
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidCdsToken(f"{name} claim must be a non-empty string")
    return CdsCaller(
        issuer=claims["iss"],
        subject=sub or claims["iss"],
        tenant=tenant,
        jti=jti,
        expires_at=expires_at,
    )


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now
