"""From a session or a verified token to the Principal every access decision reads; issuing tokens."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select

from medweave.db import read_tx
from medweave.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from medweave.identity.breakglass import active_patient_ids
from medweave.identity.core import Core, aware, user_from_row
from medweave.identity.model import CodeGrant, Session, User
from medweave.identity.oauth import OAuth
from medweave.identity.scoping import grant_for_user, is_empty, role_ceiling
from medweave.identity.tables import users
from medweave.identity.users import UserAdmin
from medweave.security import tokens
from medweave.security.principal import ROLE_SCOPES, Principal, Role
from medweave.security.scopes import ScopeSet, narrow


class Principals(UserAdmin, OAuth, Core):
    def principal_for_session(self, session: Session, *, now: datetime | None = None) -> Principal:
        """The caller of a page request: the role's scopes and the live break-glass grants."""
        if session.needs_second_factor:
            raise Unauthenticated("sign-in is not complete: the second factor is required")
        with read_tx(self.engine) as conn:
            grants = active_patient_ids(conn, session.user.id, aware(now))
        return _user_principal(
            session.user, ScopeSet.parse(ROLE_SCOPES[session.user.role]), grants, session.address, None
        )

    def principal_for_claims(
        self, claims: tokens.Claims, *, address: str | None = None, now: datetime | None = None
    ) -> Principal:
        """The caller of an API request from its verified token; the user or client must still be enabled.

        The token's scopes were narrowed when it was issued; they are narrowed again to the user's
        current role (a demoted user's old tokens lose what the new role lacks) or the client's scopes.
        """
        if claims.kind == "client":
            try:
                client = self.client_by_name(claims.subject)
            except NotFound:
                raise Unauthenticated("the token's client is no longer registered") from None
            if client.disabled:
                raise Unauthenticated("the token's client is disabled")
            scopes = narrow(claims.scopes, ScopeSet.parse(client.scopes))
            return Principal(
                kind="client",
                subject=client.name,
                scopes=scopes,
                patient_id=claims.patient,
                address=address,
                client_id=client.id,
            )
        with read_tx(self.engine) as conn:
            row = conn.execute(select(users).where(users.c.id == claims.subject)).first()
            if row is None or row.disabled:
                raise Unauthenticated("the token's user no longer exists or is disabled")
            user = user_from_row(row)
            grants = active_patient_ids(conn, user.id, aware(now))
        launch = claims.patient
        if user.role == Role.PATIENT:
            if launch is not None and launch != user.patient_id:
                raise Unauthenticated("the token's patient is not the user's own record")
            launch = user.patient_id
        return _user_principal(user, narrow(claims.scopes, role_ceiling(user.role)), grants, address, launch)

    def with_break_glass(self, principal: Principal, *, now: datetime | None = None) -> Principal:
        """``principal`` with its user's live break-glass grants (the web ``Enricher`` hook).

        Prefer ``principal_for_claims``, which also refuses disabled users and re-narrows scopes.
        """
        if principal.kind != "user":
            return principal
        with read_tx(self.engine) as conn:
            grants = active_patient_ids(conn, principal.subject, aware(now))
        return replace(principal, break_glass=grants)

    def issue_token(
        self,
        *,
        username: str | None = None,
        client: str | None = None,
        scopes: str,
        ttl: timedelta,
        secret: bytes,
        issuer: str,
        audience: str,
        now: datetime | None = None,
    ) -> str:
        """A bearer token for a script (``username``) or a backend integration (``client``).

        A user token holds the requested scopes narrowed to the user's role; a client token those
        narrowed to the client's registered scopes, which may be ``system/`` (SMART backend
        services), with the client's name as subject and kind ``client``.
        """
        if (username is None) == (client is None):
            raise InvalidInput("give exactly one of a username or a client name")
        requested = ScopeSet.parse(scopes)
        if client is not None:
            found = self.client_by_name(client)
            if found.disabled:
                raise PermissionDenied(f"client {client!r} is disabled")
            granted = narrow(requested, ScopeSet.parse(found.scopes))
            if is_empty(granted):
                raise InvalidInput(f"none of the requested scopes is registered for client {client!r}")
            return tokens.issue(
                secret=secret,
                issuer=issuer,
                subject=found.name,
                audience=audience,
                scope=str(granted),
                kind="client",
                ttl=ttl,
                now=now,
            )
        user = self.get_user_by_username(username or "")
        if user.disabled:
            raise PermissionDenied(f"user {user.username!r} is disabled")
        granted, launch = grant_for_user(user, requested, None, None)
        return self._user_token(
            user, granted, launch, ttl=ttl, secret=secret, issuer=issuer, audience=audience, now=now
        )

    def issue_for_grant(
        self,
        grant: CodeGrant,
        *,
        ttl: timedelta,
        secret: bytes,
        issuer: str,
        audience: str,
        now: datetime | None = None,
    ) -> str:
        """The access token of a redeemed authorization code (the token endpoint's answer)."""
        scopes = ScopeSet.parse(grant.scope)
        return self._user_token(
            grant.user,
            scopes,
            grant.patient_id,
            ttl=ttl,
            secret=secret,
            issuer=issuer,
            audience=audience,
            now=now,
        )

    @staticmethod
    def _user_token(
        user: User,
        scopes: ScopeSet,
        launch: str | None,
        *,
        ttl: timedelta,
        secret: bytes,
        issuer: str,
        audience: str,
        now: datetime | None,
    ) -> str:
        return tokens.issue(
            secret=secret,
            issuer=issuer,
            subject=user.id,
            audience=audience,
            scope=str(scopes),
            kind="user",
            ttl=ttl,
            role=user.role.value,
            patient=launch,
            fhir_user=user.fhir_user,
            now=now,
        )


def _user_principal(
    user: User, scopes: ScopeSet, grants: frozenset[str], address: str | None, launch: str | None
) -> Principal:
    return Principal(
        kind="user",
        subject=user.id,
        scopes=scopes,
        role=user.role,
        patient_id=user.patient_id if user.role == Role.PATIENT else launch,
        practitioner_id=user.practitioner_id,
        break_glass=grants,
        address=address,
    )
