"""The identity service: one object for accounts, sign-in, sessions, break-glass, OAuth and tokens.

Each concern is a mixin in its own module over the shared state of ``core.Core``:

    IdentityService
    +-- Principals   principals.py  principal_for_session/claims, issue_token, issue_for_grant
    |   +-- UserAdmin  users.py     create_user, set_password, set_role, disable, TOTP enrolment
    |   +-- OAuth      oauth.py     register_client, create_auth_code, redeem_auth_code
    +-- Logins       login.py       authenticate, complete_totp (lockout and throttling)
    +-- Sessions     sessions.py    create_session, load_session, end_session, check_csrf
    +-- BreakGlass   breakglass.py  start/end_break_glass, active_grants, pending_reviews, review

The service records nothing in the audit trail itself: each method returns what the caller needs
to write the AuditEvent (a LoginResult, a Grant).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete

from medweave.db import write_tx
from medweave.identity.breakglass import BreakGlass
from medweave.identity.core import aware
from medweave.identity.login import Logins
from medweave.identity.principals import Principals
from medweave.identity.sessions import Sessions
from medweave.identity.tables import login_throttle, oauth_codes, user_sessions


class IdentityService(Principals, Logins, Sessions, BreakGlass):
    """``IdentityService(engine=..., master=..., idle_timeout=..., absolute_timeout=..., lockout=...)``."""

    def prune(self, *, now: datetime | None = None) -> int:
        """Delete expired sessions and codes, and throttle rows idle for longer than the hard lock.

        Housekeeping for a periodic job; correctness never depends on it.
        """
        at = aware(now)
        stale = at - max(self.lockout.user_hard_lock, timedelta(days=1))
        with write_tx(self.engine) as conn:
            n = conn.execute(delete(user_sessions).where(user_sessions.c.expires <= at)).rowcount
            n += conn.execute(delete(oauth_codes).where(oauth_codes.c.expires <= at)).rowcount
            n += conn.execute(
                delete(login_throttle).where(
                    and_(
                        login_throttle.c.updated < stale,
                        (login_throttle.c.locked_until.is_(None)) | (login_throttle.c.locked_until <= at),
                    )
                )
            ).rowcount
        return n
