"""Identity: who may sign in, how, and as whom they act.

Users with roles (``users``), password and TOTP sign-in with lockout and throttling (``login``,
rules in ``policy``), page sessions with CSRF tokens (``sessions``), break-glass grants
(``breakglass``), OAuth2 clients and PKCE authorization codes for SMART apps (``oauth``, rules in
``pkce``, scopes in ``scoping``), and the Principal of each request (``principals``). One facade,
``IdentityService``. Records never import this package; web and cli do.
"""

from medweave.identity.model import (
    Client,
    CodeGrant,
    Grant,
    LoginResult,
    Reason,
    RegisteredClient,
    Session,
    User,
)
from medweave.identity.oauth import InvalidGrant
from medweave.identity.policy import LockoutPolicy
from medweave.identity.service import IdentityService
from medweave.identity.sessions import check_csrf

__all__ = [
    "Client",
    "CodeGrant",
    "Grant",
    "IdentityService",
    "InvalidGrant",
    "LockoutPolicy",
    "LoginResult",
    "Reason",
    "RegisteredClient",
    "Session",
    "User",
    "check_csrf",
]
