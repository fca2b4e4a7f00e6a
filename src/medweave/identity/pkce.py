"""PKCE (RFC 7636) and redirect URI rules for the authorization-code flow. Pure: no I/O.

Only ``S256`` is accepted: RFC 7636 §4.2 allows ``plain`` only when S256 cannot be computed, and
the OAuth 2.0 Security Best Current Practice (RFC 9700 §2.1.1) says to use S256. Redirect URIs
are matched exactly (RFC 9700 §2.1; RFC 6749 §3.1.2), must carry no fragment (RFC 6749 §3.1.2),
and are https, a loopback http address, or a private-use scheme with a dot in it for native apps
(RFC 8252 §7.1, §7.3).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import urlsplit

from medweave.errors import InvalidInput

METHOD = "S256"
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 §4.1
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # BASE64URL(SHA-256) without padding
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_URI = 2000


def s256(verifier: str) -> str:
    """``BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_challenge(challenge: str, method: str) -> None:
    if method != METHOD:
        raise InvalidInput("code_challenge_method must be S256", expression=["code_challenge_method"])
    if _CHALLENGE.fullmatch(challenge) is None:
        raise InvalidInput("code_challenge must be 43 base64url characters", expression=["code_challenge"])


def verifier_matches(verifier: str, challenge: str) -> bool:
    """True if the verifier is well formed (RFC 7636 §4.1) and hashes to the challenge."""
    if _VERIFIER.fullmatch(verifier) is None:
        return False
    return hmac.compare_digest(s256(verifier), challenge)


def check_redirect_uri(uri: str) -> str:
    if len(uri) > MAX_URI or any(ch.isspace() for ch in uri):
        raise InvalidInput("redirect URI is too long or contains spaces", expression=["redirect_uris"])
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise InvalidInput(f"redirect URI {uri!r} is not a URI", expression=["redirect_uris"]) from exc
    if parts.fragment or "#" in uri:
        raise InvalidInput("redirect URI must not contain a fragment", expression=["redirect_uris"])
    scheme = parts.scheme.lower()
    ok = (
        (scheme == "https" and bool(parts.hostname))
        or (scheme == "http" and parts.hostname in _LOOPBACK)
        or (scheme not in ("http", "https", "") and "." in scheme)
    )
    if not ok:
        raise InvalidInput(
            f"redirect URI {uri!r} must be https, http on a loopback address, or a private-use scheme "
            "such as com.example.app:/callback",
            expression=["redirect_uris"],
        )
    return uri
