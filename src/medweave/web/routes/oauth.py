"""OAuth2 for SMART apps: discovery and the token endpoint (SMART App Launch v2).

- ``/.well-known/smart-configuration`` (also under ``/fhir``): what this server supports
  (https://hl7.org/fhir/smart-app-launch/conformance.html).
- ``POST /oauth/token``: the authorization-code grant with PKCE (RFC 6749 §4.1.3, RFC 7636);
  confidential clients authenticate with HTTP Basic or ``client_secret`` (RFC 6749 §2.3.1).
  Errors follow RFC 6749 §5.2: ``{"error": ..., "error_description": ...}``.

The authorization endpoint (``/oauth/authorize``) is a page: it lives with the other pages.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from medweave.errors import MedweaveError, NotFound, Unauthenticated
from medweave.web.body import read_form

router = APIRouter(tags=["OAuth2"])

ACCESS_TOKEN_TTL = timedelta(hours=1)
_SCOPES_SUPPORTED = [
    "openid", "fhirUser", "launch/patient", "offline_access",
    "patient/*.cruds", "patient/*.rs", "user/*.cruds", "user/*.rs", "system/*.cruds", "system/*.rs",
]  # fmt: skip


def smart_configuration(base_url: str) -> dict[str, Any]:
    base = base_url.rstrip("/")
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "grant_types_supported": ["authorization_code"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": _SCOPES_SUPPORTED,
        "capabilities": [
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "context-standalone-patient",
            "permission-patient",
            "permission-user",
            "permission-v2",
        ],
    }


@router.get("/.well-known/smart-configuration", summary="SMART discovery")
@router.get("/fhir/.well-known/smart-configuration", summary="SMART discovery (FHIR base)")
async def smart_config(request: Request) -> Response:
    return JSONResponse(smart_configuration(request.app.state.settings.base_url))


def _error(error: str, description: str, status: int = 400) -> Response:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="medweave"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote(user), unquote(password)


@router.post("/oauth/token", summary="OAuth2 token endpoint")
async def token(request: Request) -> Response:
    identity = getattr(request.app.state, "identity", None)
    if identity is None:
        return _error("temporarily_unavailable", "no identity store is configured", 503)
    try:
        form = dict(await read_form(request, max_bytes=64 * 1024))
    except MedweaveError as exc:
        return _error("invalid_request", exc.message)
    if form.get("grant_type") != "authorization_code":
        return _error("unsupported_grant_type", "only authorization_code is supported")
    basic = _basic(request)
    client_id = basic[0] if basic else form.get("client_id", "")
    secret = basic[1] if basic else form.get("client_secret")
    missing = [k for k in ("code", "redirect_uri", "code_verifier") if not form.get(k)]
    if not client_id or missing:
        return _error("invalid_request", f"missing {', '.join(missing or ['client_id'])}")
    settings = request.app.state.settings
    auth = request.app.state.authenticator
    try:
        client = await run_in_threadpool(identity.get_client, client_id)
        if not client.public:
            if not secret:
                raise Unauthenticated("this client must authenticate")
            await run_in_threadpool(identity.authenticate_client, client_id, secret)
        grant = await run_in_threadpool(
            lambda: identity.redeem_auth_code(
                client_id=client_id,
                code=form["code"],
                redirect_uri=form["redirect_uri"],
                code_verifier=form["code_verifier"],
            )
        )
        access = await run_in_threadpool(
            lambda: identity.issue_for_grant(
                grant,
                ttl=ACCESS_TOKEN_TTL,
                secret=auth.secret,
                issuer=settings.base_url,
                audience=settings.fhir_base,
            )
        )
    except (Unauthenticated, NotFound):
        return _error("invalid_client", "client authentication failed", 401)
    except MedweaveError as exc:
        code = getattr(exc, "oauth_error", "invalid_grant" if exc.status < 500 else "server_error")
        return _error(code, exc.message, 400 if exc.status < 500 else 500)
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": int(ACCESS_TOKEN_TTL.total_seconds()),
        "scope": grant.scope,
    }
    if grant.patient_id:
        body["patient"] = grant.patient_id
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
