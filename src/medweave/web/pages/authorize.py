"""The OAuth2 authorization endpoint for SMART apps: sign in, see what the app asks, allow or deny.

RFC 6749 §4.1.1-4.1.2 with PKCE (RFC 7636, S256 only) and SMART App Launch v2's standalone launch
(``aud`` must be this server's FHIR base). Problems with the client or its redirect URI are shown
here and never redirected (§4.1.2.1: an unverified redirect URI must not be followed); every other
problem goes back to the app as ``error=...&state=...``. The codes and what they grant are made by
the identity service, which narrows the requested scopes to the user's role and the client.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from medweave.errors import MedweaveError, NotFound
from medweave.records import fhir
from medweave.security.principal import Role
from medweave.security.scopes import ScopeSet
from medweave.web.pages import routing
from medweave.web.pages import session as cookies
from medweave.web.pages.render import page
from medweave.web.pages.routing import Current, Form, posted, redirect

router = APIRouter(route_class=routing.PageRoute)
_FIELDS = ("client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method", "aud")


def _back(redirect_uri: str, **params: str) -> Response:
    sep = "&" if "?" in redirect_uri else "?"
    return redirect(redirect_uri + sep + urlencode({k: v for k, v in params.items() if v}))


def _client_or_page(request: Request, client_id: str, redirect_uri: str) -> object:
    identity = cookies.identity(request)
    try:
        client = identity.get_client(client_id)
    except NotFound:
        return routing.error_page(request, 400, detail="This app is not registered with Medweave.")
    if client.disabled or redirect_uri not in client.redirect_uris:
        return routing.error_page(request, 400, detail="This app's return address is not registered.")
    return client


@router.get("/oauth/authorize", include_in_schema=False)
def authorize(request: Request) -> Response:
    q = {k: request.query_params.get(k, "") for k in (*_FIELDS, "response_type")}
    client = _client_or_page(request, q["client_id"], q["redirect_uri"])
    if isinstance(client, Response):
        return client
    state = q["state"]
    if q["response_type"] != "code":
        return _back(q["redirect_uri"], error="unsupported_response_type", state=state)
    if not q["code_challenge"] or q["code_challenge_method"] != "S256":
        return _back(
            q["redirect_uri"], error="invalid_request", error_description="PKCE S256 is required", state=state
        )
    if q["aud"].rstrip("/") != request.app.state.settings.fhir_base.rstrip("/"):
        return _back(
            q["redirect_uri"],
            error="invalid_request",
            error_description="aud is not this server",
            state=state,
        )
    try:
        requested = ScopeSet.parse(q["scope"])
    except MedweaveError:
        return _back(q["redirect_uri"], error="invalid_scope", state=state)
    try:
        current = routing.signed_in(request)
    except routing.Redirect:
        response = redirect(routing.SIGN_IN)
        cookies.remember_return(response, request, f"/oauth/authorize?{request.url.query}")
        return response
    return page(
        request,
        "authorize.html",
        title=f"Allow {client.name}?",  # type: ignore[attr-defined]
        client=client,
        scopes=str(requested).split(),
        fields={k: q[k] for k in _FIELDS},
        pick_patient=current.user.role != Role.PATIENT and requested.has("launch/patient"),
    )


@router.post("/oauth/authorize", include_in_schema=False)
def decide(
    request: Request, form: Form = Depends(posted), current: Current = Depends(routing.signed_in)
) -> Response:
    client = _client_or_page(request, form.get("client_id"), form.get("redirect_uri"))
    if isinstance(client, Response):
        return client
    uri, state = form.get("redirect_uri"), form.get("state")
    if form.get("decision") != "allow":
        return _back(uri, error="access_denied", state=state)
    patient = form.get("patient") or None
    if patient is not None and not fhir.valid_id(patient):
        return _back(
            uri, error="invalid_request", error_description="patient is not a record id", state=state
        )
    try:
        code = current.identity.create_auth_code(
            client_id=form.get("client_id"),
            user_id=current.user.id,
            redirect_uri=uri,
            scope=form.get("scope"),
            code_challenge=form.get("code_challenge"),
            code_challenge_method=form.get("code_challenge_method") or "S256",
            patient_id=patient,
        )
    except MedweaveError as exc:
        return _back(uri, error="invalid_request", error_description=exc.message[:200], state=state)
    return _back(uri, code=code, state=state)
