"""Who is calling: a bearer token (API) or a page session (cookie) becomes a ``Principal``.

Tokens are verified here (signature, audience, issuer, lifetime); what the principal may then do
is decided by ``medweave.records.access`` and nowhere else.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from starlette.requests import Request

from medweave.errors import Unauthenticated
from medweave.security import tokens
from medweave.security.principal import Principal, Role

_CACHE_MAX = 10_000
#: Adds what only the identity store knows (active break-glass grants) to a token's principal.
Enricher = Callable[[Principal], Principal]


class Identity(Protocol):
    def principal_for_claims(self, claims: tokens.Claims, *, address: str | None = None) -> Principal: ...


@dataclass
class Authenticator:
    """Verifies bearer tokens. With an identity store, the token's user or client must still be
    enabled and its scopes are narrowed again to the current role (``principal_for_claims``).

    What a token resolves to is remembered for ``cache_seconds`` per token and address, and never
    past the token's own expiry: disabling a user, ending a break-glass grant or changing a role
    reaches live tokens within that time, and a request does not pay for a signature check and a
    database round trip every time (bench/records.py measured them at half the cost of a read).
    A token that fails verification is never remembered.
    """

    secret: bytes
    issuer: str
    audience: str
    enrich: Enricher | None = None
    identity: Identity | None = None
    cache_seconds: float = 10.0
    _cache: dict[tuple[bytes, str | None], tuple[float, Principal]] = field(default_factory=dict, repr=False)

    def from_bearer(self, token: str, *, address: str | None) -> Principal:
        key = (hashlib.sha256(token.encode()).digest(), address)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        claims = tokens.verify(token, secret=self.secret, audience=self.audience, issuer=self.issuer)
        principal = self._resolve(claims, address)
        keep = min(self.cache_seconds, (claims.expires_at - datetime.now(UTC)).total_seconds())
        if keep > 0:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = (now + keep, principal)
        return principal

    def _resolve(self, claims: tokens.Claims, address: str | None) -> Principal:
        if self.identity is not None:
            return self.identity.principal_for_claims(claims, address=address)
        practitioner = None
        if claims.fhir_user and claims.fhir_user.startswith("Practitioner/"):
            practitioner = claims.fhir_user.removeprefix("Practitioner/")
        principal = Principal(
            kind="client" if claims.kind == "client" else "user",
            subject=claims.subject,
            scopes=claims.scopes,
            role=_role(claims.role),
            patient_id=claims.patient,
            practitioner_id=practitioner,
            address=address,
            client_id=claims.subject if claims.kind == "client" else None,
        )
        return self.enrich(principal) if self.enrich and principal.kind == "user" else principal


def authenticate(request: Request) -> Principal:
    """The caller of this request, or 401 (with ``WWW-Authenticate``) when there is none."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    auth: Authenticator = request.app.state.authenticator
    address = request.client.host if request.client else None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    principal: Principal | None
    if scheme.lower() == "bearer" and token.strip():
        principal = auth.from_bearer(token.strip(), address=address)
    else:
        session_principal = getattr(request.app.state, "session_principal", None)
        principal = session_principal(request) if session_principal else None
    if principal is None:
        raise Unauthenticated("sign in, or send an OAuth2 bearer token")
    request.state.principal = principal
    return principal


def _role(value: str | None) -> Role | None:
    try:
        return Role(value) if value else None
    except ValueError:
        return None
