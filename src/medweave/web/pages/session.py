"""Page sessions in a cookie, and the CSRF tokens that guard every form.

The cookie holds the opaque session token of ``IdentityService.create_session`` (only its hash is
stored), and is ``HttpOnly``, ``SameSite=Lax`` and, when the public base URL is https, ``Secure``
with the ``__Host-`` prefix (so no subdomain and no plain-http page can set or overwrite it). It has
no ``Max-Age``: the identity service ends the session after its idle and absolute timeouts, and the
browser forgets the cookie when it closes.

CSRF: after sign-in, the synchronizer token of the session (OWASP CSRF Prevention Cheat Sheet)
goes into a hidden ``csrf_token`` field of every form and, for HTMX requests, into the
``X-CSRF-Token`` header (``hx-headers`` on ``<body>``). Before sign-in there is no session, so the
sign-in form uses a signed double-submit token: a random nonce in a cookie and its HMAC under a
server key in the form; a cross-site page can neither read the cookie nor compute the HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from medweave.errors import PermissionDenied
from medweave.identity import IdentityService, Session, check_csrf
from medweave.security.principal import Principal

SESSION_COOKIE = "medweave-session"
SIGNIN_COOKIE = "medweave-signin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_NONCE_MAX = 128


def is_tls(request: HTTPConnection) -> bool:
    """Whether cookies must be ``Secure``: the public base URL is https."""
    return str(request.app.state.settings.base_url).startswith("https://")


def cookie_name(request: HTTPConnection, name: str) -> str:
    return f"__Host-{name}" if is_tls(request) else name


def identity(request: Request) -> IdentityService:
    service: IdentityService = request.app.state.identity
    return service


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


# -- the session cookie ---------------------------------------------------------------------------


def session_token(request: Request) -> str | None:
    return request.cookies.get(cookie_name(request, SESSION_COOKIE))


def load_session(request: Request) -> Session | None:
    """The live session of this request (loaded once per request), or None."""
    if hasattr(request.state, "page_session"):
        cached: Session | None = request.state.page_session
        return cached
    found = identity(request).load_session(session_token(request))
    request.state.page_session = found
    return found


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        cookie_name(request, SESSION_COOKIE),
        token,
        path="/",
        secure=is_tls(request),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        cookie_name(request, SESSION_COOKIE), path="/", secure=is_tls(request), httponly=True, samesite="lax"
    )


def start_session(request: Request, response: Response, user_id: str, *, mfa: bool) -> None:
    """End this browser's current session, if any, and start a new one (no session fixation)."""
    service = identity(request)
    old = session_token(request)
    if old:
        service.end_session(old)
    token, _csrf = service.create_session(user_id, mfa=mfa, address=client_address(request))
    set_session_cookie(response, request, token)


def end_session(request: Request, response: Response) -> None:
    token = session_token(request)
    if token:
        identity(request).end_session(token)
    clear_session_cookie(response, request)


def session_principal(request: Request) -> Principal | None:
    """``app.state.session_principal``: the caller of an API request that carries a page cookie.

    Only a complete sign-in counts. A change (POST, PUT, DELETE) made with the cookie must also
    carry the session's CSRF token in ``X-CSRF-Token``, as a page's HTMX request does.
    """
    session = load_session(request)
    if session is None or session.needs_second_factor:
        return None
    if request.method not in _SAFE_METHODS and not check_csrf(session, request.headers.get(CSRF_HEADER)):
        raise PermissionDenied("a change made with a page session needs the X-CSRF-Token header")
    return identity(request).principal_for_session(session)


# -- the sign-in form's double-submit token -----------------------------------------------------------


def _signin_key(request: Request) -> bytes:
    secret: bytes = request.app.state.authenticator.secret
    return hmac.new(secret, b"medweave-page-signin-csrf", hashlib.sha256).digest()


def signin_nonce(request: Request) -> tuple[str, bool]:
    """The browser's sign-in nonce, and whether it is new (then the cookie must be set)."""
    nonce = request.cookies.get(cookie_name(request, SIGNIN_COOKIE))
    if nonce and len(nonce) <= _NONCE_MAX:
        return nonce, False
    return secrets.token_urlsafe(32), True


def signin_token(request: Request, nonce: str) -> str:
    return hmac.new(_signin_key(request), nonce.encode(), hashlib.sha256).hexdigest()


def set_signin_cookie(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(
        cookie_name(request, SIGNIN_COOKIE),
        nonce,
        path="/",
        secure=is_tls(request),
        httponly=True,
        samesite="lax",
    )


def check_signin_token(request: Request, token: str | None) -> bool:
    nonce = request.cookies.get(cookie_name(request, SIGNIN_COOKIE))
    if not nonce or not token or len(nonce) > _NONCE_MAX or len(token) > _NONCE_MAX:
        return False
    return hmac.compare_digest(signin_token(request, nonce).encode(), token.encode())


RETURN_COOKIE = "medweave_return"
#: Only these local pages may be returned to after signing in (no open redirects).
_RETURNABLE = ("/oauth/authorize?",)


def remember_return(response: Response, request: Request, path: str) -> None:
    """Come back to ``path`` (a local page that needed sign-in) once the user has signed in."""
    if path.startswith(_RETURNABLE) and len(path) <= 4096:
        response.set_cookie(
            cookie_name(request, RETURN_COOKIE),
            path,
            max_age=600,
            httponly=True,
            secure=is_tls(request),
            samesite="lax",
            path="/",
        )


def return_to(request: Request) -> str | None:
    path = request.cookies.get(cookie_name(request, RETURN_COOKIE))
    return path if path and path.startswith(_RETURNABLE) and "//" not in path.split("?", 1)[0] else None


def clear_return_to(response: Response, request: Request) -> None:
    response.delete_cookie(cookie_name(request, RETURN_COOKIE), path="/")
