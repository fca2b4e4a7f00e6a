"""OAuth2 clients and authorization codes for SMART apps (RFC 6749 §4.1 with PKCE, RFC 7636).

Codes are 256 random bits, stored as SHA-256, live 60 seconds and redeem once: redemption marks
the code used in its own committed transaction before any check, so a second attempt fails even
if the first one failed (RFC 6749 §4.1.2: "The client MUST NOT use the authorization code more
than once"). Any mismatch (client, redirect URI, verifier, expiry) is ``invalid_grant``
(RFC 6749 §5.2). Access tokens are stateless JWTs, so a replayed code cannot revoke those already
issued from it; their lifetime is short for that reason.

A confidential client must also authenticate at the token endpoint: call ``authenticate_client``
before ``redeem_auth_code``.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.exc import IntegrityError

from medweave.db import read_tx, write_tx
from medweave.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from medweave.identity.core import Core, aware, digest, user_from_row
from medweave.identity.model import Client, CodeGrant, RegisteredClient
from medweave.identity.pkce import check_challenge, check_redirect_uri, verifier_matches
from medweave.identity.scoping import grant_for_user
from medweave.identity.tables import oauth_clients, oauth_codes
from medweave.security.scopes import ScopeSet

CODE_LIFETIME = timedelta(seconds=60)
SECRET_MIN = 32
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,99}")


class InvalidGrant(InvalidInput):
    """The token endpoint's ``invalid_grant`` (RFC 6749 §5.2): a bad, used or expired code."""

    oauth_error = "invalid_grant"


class OAuth(Core):
    def register_client(
        self,
        *,
        name: str,
        redirect_uris: Sequence[str],
        public: bool = True,
        scopes: str,
        secret: str | None = None,
        now: datetime | None = None,
    ) -> RegisteredClient:
        """Register an app (public: PKCE, no secret) or an integration (confidential: a secret).

        A confidential client without ``secret`` gets a generated one, returned here only once.
        """
        if _NAME.fullmatch(name) is None:
            raise InvalidInput("client name must be 2-100 letters, digits or . _ - ", expression=["name"])
        uris = tuple(dict.fromkeys(check_redirect_uri(u) for u in redirect_uris))
        if public and not uris:
            raise InvalidInput(
                "a public client needs at least one redirect URI", expression=["redirect_uris"]
            )
        if public and secret is not None:
            raise InvalidInput("a public client has no secret", expression=["secret"])
        if not public:
            secret = secret or secrets.token_urlsafe(32)
            if len(secret) < SECRET_MIN:
                raise InvalidInput(f"a client secret must be at least {SECRET_MIN} characters")
        allowed = ScopeSet.parse(scopes)
        if not allowed.resources and not allowed.other:
            raise InvalidInput("a client needs at least one scope", expression=["scopes"])
        client_id = str(uuid.uuid4())
        try:
            with write_tx(self.engine) as conn:
                if conn.execute(select(oauth_clients.c.id).where(oauth_clients.c.name == name)).first():
                    raise Conflict(f"a client named {name!r} exists")
                conn.execute(
                    oauth_clients.insert().values(
                        id=client_id,
                        name=name,
                        public=public,
                        secret_hash=digest(secret) if secret else None,
                        redirect_uris=json.dumps(list(uris)),
                        scopes=str(allowed),
                        disabled=False,
                        created=aware(now),
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"a client named {name!r} exists") from exc
        return RegisteredClient(self.get_client(client_id), secret)

    def get_client(self, client_id: str) -> Client:
        with read_tx(self.engine) as conn:
            row = conn.execute(select(oauth_clients).where(oauth_clients.c.id == client_id)).first()
        if row is None:
            raise NotFound(f"no client {client_id}")
        return _client(row)

    def client_by_name(self, name: str) -> Client:
        with read_tx(self.engine) as conn:
            row = conn.execute(select(oauth_clients).where(oauth_clients.c.name == name)).first()
        if row is None:
            raise NotFound(f"no client named {name!r}")
        return _client(row)

    def list_clients(self) -> list[Client]:
        with read_tx(self.engine) as conn:
            return [_client(r) for r in conn.execute(select(oauth_clients).order_by(oauth_clients.c.name))]

    def disable_client(self, client_id: str) -> None:
        with write_tx(self.engine) as conn:
            conn.execute(update(oauth_clients).where(oauth_clients.c.id == client_id).values(disabled=True))

    def authenticate_client(self, client_id: str, secret: str) -> Client:
        """A confidential client by id and secret (constant-time), else Unauthenticated."""
        with read_tx(self.engine) as conn:
            row = conn.execute(select(oauth_clients).where(oauth_clients.c.id == client_id)).first()
        stored = row.secret_hash if row is not None and row.secret_hash else "0" * 64
        ok = hmac.compare_digest(stored, digest(secret)) and row is not None and not row.disabled
        if not ok or row is None:
            raise Unauthenticated("client authentication failed")
        return _client(row)

    def create_auth_code(
        self,
        *,
        client_id: str,
        user_id: str,
        redirect_uri: str,
        scope: str,
        code_challenge: str,
        code_challenge_method: str = "S256",
        patient_id: str | None = None,
        now: datetime | None = None,
    ) -> str:
        """A one-time code for an approved authorization request; granted scopes are narrowed.

        Granted = the request, narrowed to the user's role and to the client's registered scopes.
        A patient user's launch patient is always themselves.
        """
        at = aware(now)
        check_challenge(code_challenge, code_challenge_method)
        client = self.get_client(client_id)
        if client.disabled:
            raise PermissionDenied("this client is disabled")
        if redirect_uri not in client.redirect_uris:
            raise InvalidInput("redirect_uri is not registered for this client", expression=["redirect_uri"])
        with read_tx(self.engine) as conn:
            user = user_from_row(self._user_row(conn, user_id))
        granted, launch = grant_for_user(
            user, ScopeSet.parse(scope), ScopeSet.parse(client.scopes), patient_id
        )
        code = secrets.token_urlsafe(32)
        with write_tx(self.engine) as conn:
            conn.execute(delete(oauth_codes).where(oauth_codes.c.expires < at - timedelta(hours=1)))
            conn.execute(
                oauth_codes.insert().values(
                    code_hash=digest(code),
                    client_id=client_id,
                    user_id=user_id,
                    redirect_uri=redirect_uri,
                    scope=str(granted),
                    patient_id=launch,
                    code_challenge=code_challenge,
                    expires=at + CODE_LIFETIME,
                    used=False,
                )
            )
        return code

    def redeem_auth_code(
        self, *, client_id: str, code: str, redirect_uri: str, code_verifier: str, now: datetime | None = None
    ) -> CodeGrant:
        """What the code grants, once; InvalidGrant for a used, expired, mismatched or unknown code."""
        at = aware(now)
        key = digest(code)
        with write_tx(self.engine) as conn:
            fresh = conn.execute(
                update(oauth_codes)
                .where(oauth_codes.c.code_hash == key, oauth_codes.c.used.is_(False))
                .values(used=True)
            ).rowcount
            row = conn.execute(select(oauth_codes).where(oauth_codes.c.code_hash == key)).first()
            user = user_from_row(self._user_row(conn, row.user_id)) if row is not None else None
            client_row = conn.execute(select(oauth_clients).where(oauth_clients.c.id == client_id)).first()
        # The code is spent (committed) whatever follows.
        if row is None or user is None or client_row is None:
            raise InvalidGrant("authorization code is invalid")
        if fresh != 1:
            raise InvalidGrant("authorization code has already been used")
        if row.client_id != client_id:
            raise InvalidGrant("authorization code was issued to another client")
        if not hmac.compare_digest(row.redirect_uri, redirect_uri):
            raise InvalidGrant("redirect_uri does not match the authorization request")
        if at >= row.expires:
            raise InvalidGrant("authorization code has expired")
        if not verifier_matches(code_verifier, row.code_challenge):
            raise InvalidGrant("code_verifier does not match the code_challenge")
        if user.disabled or client_row.disabled:
            raise InvalidGrant("the user or the client is disabled")
        return CodeGrant(user=user, scope=row.scope, patient_id=row.patient_id, client=_client(client_row))


def _client(row: Row[Any]) -> Client:
    return Client(
        id=row.id,
        name=row.name,
        public=bool(row.public),
        redirect_uris=tuple(json.loads(row.redirect_uris)),
        scopes=row.scopes,
        disabled=bool(row.disabled),
        created=row.created,
    )
