"""Sign-in (password, then TOTP for staff, or TOTP enrolment by QR code), sign-out, and ``/``.

Each step that raises privilege starts a new session and ends the old one: the password step a
session fit only for the TOTP pages (staff), the second factor a full one. Final outcomes are
audited (``auditing.login``) before the answer goes out.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from markupsafe import Markup
from starlette.responses import Response

from medweave.identity import LoginResult, Session
from medweave.security import totp
from medweave.security.principal import Role
from medweave.web.pages import auditing, routing
from medweave.web.pages import session as cookies
from medweave.web.pages.render import page
from medweave.web.pages.routing import Current, Form, posted, posted_signin, redirect, second_factor_pending

router = APIRouter(route_class=routing.PageRoute)

MESSAGES = {
    "bad_credentials": "The username or password is not right.",
    "locked": "Too many failed attempts: this account is locked for a while. Try again later, "
    "or ask an administrator to unlock it.",
    "throttled": "Too many failed attempts from this network. Try again in 15 minutes.",
    "bad_totp": "That code is not right, or was used already. Wait for the next code and try again.",
    "disabled": "This account is disabled. Ask an administrator.",
    "missing": "Enter your username and password.",
}
_CODE_MAX = 16


def home_for(role: Role) -> str:
    if role == Role.PATIENT:
        return "/me"
    if role == Role.ADMIN:
        return "/admin/users"
    return "/patients"


def signin_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    nonce, fresh = cookies.signin_nonce(request)
    response = page(
        request,
        "signin.html",
        status=status,
        title="Sign in",
        error=error,
        csrf_token=cookies.signin_token(request, nonce),
    )
    if fresh:
        cookies.set_signin_cookie(response, request, nonce)
    return response


@router.get("/", include_in_schema=False)
def root(current: Current = Depends(routing.signed_in)) -> Response:
    return redirect(home_for(current.user.role))


@router.get("/signin", include_in_schema=False)
def signin_form(request: Request) -> Response:
    session = cookies.load_session(request)
    if session is not None and not session.needs_second_factor:
        return redirect(home_for(session.user.role))
    return signin_page(request)


@router.post("/signin", include_in_schema=False)
def signin_submit(request: Request, form: Form = Depends(posted_signin)) -> Response:
    username, password = form.get("username"), form.fields.get("password", "")
    if not username or not password:
        return signin_page(request, error=MESSAGES["missing"], status=400)
    service = cookies.identity(request)
    result = service.authenticate(
        username=username, password=password, address=cookies.client_address(request)
    )
    if result.ok and result.user is not None:
        return _signed_in(request, result)
    if result.user is not None and result.reason in ("totp_required", "totp_enrolment_required"):
        response = redirect("/signin/totp" if result.reason == "totp_required" else "/signin/enrol")
        cookies.start_session(request, response, result.user.id, mfa=False)
        return response
    auditing.login(request, result.user, success=False, failure=result.failure)
    return signin_page(request, error=MESSAGES.get(result.reason, MESSAGES["bad_credentials"]), status=401)


def _signed_in(request: Request, result: LoginResult) -> Response:
    assert result.user is not None
    back = cookies.return_to(request) if result.mfa or not result.user.is_staff else None
    response = redirect(back or home_for(result.user.role))
    if back:
        cookies.clear_return_to(response, request)
    cookies.start_session(request, response, result.user.id, mfa=result.mfa)
    auditing.login(request, result.user, success=True)
    return response


@router.get("/signin/totp", include_in_schema=False)
def totp_form(request: Request, session: Session = Depends(second_factor_pending)) -> Response:
    if not session.user.totp_enabled:
        return redirect("/signin/enrol")
    return page(request, "totp.html", title="Enter your code", error=None)


@router.post("/signin/totp", include_in_schema=False)
def totp_submit(
    request: Request, form: Form = Depends(posted), session: Session = Depends(second_factor_pending)
) -> Response:
    code = form.get("code")[:_CODE_MAX]
    service = cookies.identity(request)
    result = service.complete_totp(
        user_id=session.user.id, code=code, address=cookies.client_address(request)
    )
    if result.ok:
        return _signed_in(request, result)
    auditing.login(request, session.user, success=False, failure=result.failure)
    if result.reason in ("locked", "throttled", "disabled"):
        response = signin_page(request, error=MESSAGES[result.reason], status=401)
        cookies.end_session(request, response)
        return response
    return page(request, "totp.html", status=401, title="Enter your code", error=MESSAGES["bad_totp"])


@router.get("/signin/enrol", include_in_schema=False)
def enrol_form(request: Request, session: Session = Depends(second_factor_pending)) -> Response:
    if session.user.totp_enabled:
        return redirect("/signin/totp")
    return _enrol_page(request, session, error=None, status=200)


def _enrol_page(request: Request, session: Session, *, error: str | None, status: int) -> Response:
    secret, uri = cookies.identity(request).begin_totp_enrolment(session.user.id)
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    svg = totp.qr_svg(uri, title="QR code to add Medweave to your authenticator app")
    qr = Markup(svg.replace("<svg ", '<svg role="img" ', 1))  # noqa: S704 - segno's own SVG, no user text
    return page(
        request,
        "enrol.html",
        status=status,
        title="Set up your second factor",
        qr=qr,
        secret=grouped,
        error=error,
    )


@router.post("/signin/enrol", include_in_schema=False)
def enrol_submit(
    request: Request, form: Form = Depends(posted), session: Session = Depends(second_factor_pending)
) -> Response:
    code = form.get("code")[:_CODE_MAX]
    if cookies.identity(request).confirm_totp_enrolment(session.user.id, code):
        return _signed_in(request, LoginResult(True, "ok", session.user, mfa=True))
    auditing.login(request, session.user, success=False, failure="bad totp")
    error = "That code did not match. A new key is shown below: add it to your app and enter its code."
    return _enrol_page(request, session, error=error, status=400)


@router.post("/signout", include_in_schema=False)
def signout(request: Request, _form: Form = Depends(posted)) -> Response:
    session = cookies.load_session(request)
    response = redirect("/signin")
    cookies.end_session(request, response)
    if session is not None:
        auditing.login(request, session.user, success=True, logout=True)
    return response
