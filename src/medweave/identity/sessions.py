"""Page sessions: an opaque cookie token, an idle timeout, an absolute lifetime, a CSRF token.

The cookie holds 256 random bits (``secrets``); the database holds only their SHA-256, so a
copy of the database opens no session (OWASP Session Management Cheat Sheet, "Session ID
Entropy" and storage). A session ends after 15 minutes without a request and 8 hours after
sign-in, whichever comes first: HIPAA 45 CFR 164.312(a)(2)(iii) asks for automatic logoff after
a period of inactivity, and the OWASP cheat sheet ("Session Expiration") recommends idle
timeouts of 15-30 minutes for high-value applications plus an absolute timeout. Both are
constructor parameters. ``last_seen`` is written at most once a minute, so the idle timer has a
resolution of one minute and a busy page does not write on every request.

CSRF uses the synchronizer token pattern (OWASP CSRF Prevention Cheat Sheet): one random token
per session, put in every form, compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, delete, select, update

from medweave.db import read_tx, write_tx
from medweave.errors import Unauthenticated
from medweave.identity.core import Core, aware, digest, user_from_row
from medweave.identity.model import Session
from medweave.identity.tables import user_sessions, users

TOKEN_BYTES = 32
TOUCH_EVERY = timedelta(minutes=1)
MAX_TOKEN = 256
ADDRESS_MAX = 64


def check_csrf(session: Session, token: str | None) -> bool:
    """True only if ``token`` is the session's CSRF token (compared in constant time)."""
    if not token or len(token) > MAX_TOKEN:
        return False
    return hmac.compare_digest(session.csrf_token.encode(), token.encode())


class Sessions(Core):
    def create_session(
        self, user_id: str, *, mfa: bool, address: str | None = None, now: datetime | None = None
    ) -> tuple[str, str]:
        """A new session: ``(session_token, csrf_token)``. The token goes only into the cookie.

        Create it after each sign-in step that raises privilege (password, then TOTP), ending the
        previous one, so a session id fixed before sign-in never gains rights.
        """
        at = aware(now)
        token, csrf = secrets.token_urlsafe(TOKEN_BYTES), secrets.token_urlsafe(TOKEN_BYTES)
        with write_tx(self.engine) as conn:
            user = user_from_row(self._user_row(conn, user_id))
            if user.disabled:
                raise Unauthenticated("this account is disabled")
            conn.execute(
                delete(user_sessions).where(user_sessions.c.user_id == user_id, user_sessions.c.expires <= at)
            )
            conn.execute(
                user_sessions.insert().values(
                    token_hash=digest(token),
                    user_id=user_id,
                    csrf_token=csrf,
                    mfa=mfa,
                    address=address[:ADDRESS_MAX] if address else None,
                    created=at,
                    last_seen=at,
                    expires=at + self.absolute_timeout,
                )
            )
        return token, csrf

    def load_session(self, token: str | None, *, now: datetime | None = None) -> Session | None:
        """The live session for a cookie value, sliding its idle timer; None if unknown or expired."""
        if not token or len(token) > MAX_TOKEN:
            return None
        at = aware(now)
        key = digest(token)
        query = (
            select(
                users,
                user_sessions.c.mfa,
                user_sessions.c.csrf_token,
                user_sessions.c.address,
                user_sessions.c.created.label("session_created"),
                user_sessions.c.last_seen,
                user_sessions.c.expires,
            )
            .select_from(user_sessions)
            .join(users, users.c.id == user_sessions.c.user_id)
            .where(user_sessions.c.token_hash == key)
        )
        with read_tx(self.engine) as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        last_seen = row.last_seen
        if row.disabled or at >= row.expires or at >= last_seen + self.idle_timeout:
            with write_tx(self.engine) as conn:
                conn.execute(delete(user_sessions).where(user_sessions.c.token_hash == key))
            return None
        if at - last_seen >= TOUCH_EVERY:
            with write_tx(self.engine) as conn:
                conn.execute(
                    update(user_sessions).where(user_sessions.c.token_hash == key).values(last_seen=at)
                )
            last_seen = at
        return _session(row, key, last_seen)

    def end_session(self, token: str) -> None:
        """Sign out: the token stops working at once, on every process."""
        with write_tx(self.engine) as conn:
            conn.execute(delete(user_sessions).where(user_sessions.c.token_hash == digest(token)))

    def end_all_sessions(self, user_id: str) -> int:
        """Sign the user out everywhere; returns how many sessions ended."""
        with write_tx(self.engine) as conn:
            return conn.execute(delete(user_sessions).where(user_sessions.c.user_id == user_id)).rowcount

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return check_csrf(session, token)


def _session(row: Row[Any], key: str, last_seen: datetime) -> Session:
    return Session(
        id=key,
        user=user_from_row(row),
        mfa=bool(row.mfa),
        csrf_token=row.csrf_token,
        address=row.address,
        created=row.session_created,
        last_seen=last_seen,
        expires=row.expires,
    )
