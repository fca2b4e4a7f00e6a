"""Security headers on every response: a strict CSP, nosniff, no referrer, HSTS on TLS, no-store.

A pure ASGI middleware (it only edits the ``http.response.start`` message), so streaming bodies
pass through untouched.

- ``Content-Security-Policy``: scripts, styles and everything else from this origin only, no
  inline script or style (the pages have none), no plugins, no ``<base>``, forms post only here,
  and no framing (``frame-ancestors 'none'``, with ``X-Frame-Options: DENY`` for old browsers).
- ``Strict-Transport-Security`` only when the request came over https or the public base URL is
  https (RFC 6797 §7.2: a host must not send it over plain http).
- ``Cache-Control: no-store`` on every answer that is not a static asset and did not choose its
  own caching: pages and API answers carry PHI, and no shared or browser cache may keep them.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=63072000; includeSubDomains"
STATIC_PREFIX = "/static/"

_ALWAYS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeaders:
    """``app.add_middleware(SecurityHeaders, tls=settings.base_url.startswith("https://"))``."""

    def __init__(self, app: ASGIApp, *, tls: bool = False) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = self.tls or scope.get("scheme") == "https"
        static = str(scope.get("path", "")).startswith(STATIC_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in _ALWAYS:
                    if name not in present:
                        headers.append((name, value))
                if https:
                    headers.append((b"strict-transport-security", HSTS.encode()))
                if not static and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
