"""How a page request is handled: who is signed in, the CSRF check, and errors as HTML pages.

``PageRoute`` is the route class of every page: domain errors become HTML pages instead of the
API's OperationOutcome (a record the caller may not see and a missing one give the same "not
found" page), a missing or expired session redirects to sign-in, and nothing unexpected shows a
trace. Dependencies:

- ``signed_in``: a complete sign-in (second factor done for staff), with its ``Principal``;
- ``second_factor_pending``: a staff session between the password and the TOTP step;
- ``posted`` / ``posted_signin``: the form of a POST, refused with 403 before anything else runs
  unless it carries the right CSRF token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from medweave.errors import MedweaveError, NotFound, PermissionDenied, Unauthenticated
from medweave.identity import IdentityService, Session, User, check_csrf
from medweave.records.service import RecordService
from medweave.security.principal import Principal, Role
from medweave.web.body import read_form
from medweave.web.pages import session as cookies
from medweave.web.pages.render import page

log = logging.getLogger("medweave.web.pages")
SIGN_IN = "/signin"


class Redirect(Exception):
    """Answer with a redirect (303 See Other, or ``HX-Redirect`` for an HTMX request)."""

    def __init__(self, location: str):
        super().__init__(location)
        self.location = location


class CsrfRejected(MedweaveError):
    status = 403
    code = "forbidden"


@dataclass(frozen=True)
class Current:
    """The signed-in caller of a page."""

    session: Session
    principal: Principal
    records: RecordService
    identity: IdentityService

    @property
    def user(self) -> User:
        return self.session.user


@dataclass(frozen=True)
class Form:
    fields: Mapping[str, str]

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default).strip()


def redirect(location: str) -> Response:
    return RedirectResponse(location, status_code=303)


def signed_in(request: Request) -> Current:
    session = cookies.load_session(request)
    if session is None:
        raise Redirect(SIGN_IN)
    if session.needs_second_factor:
        raise Redirect("/signin/totp" if session.user.totp_enabled else "/signin/enrol")
    service = cookies.identity(request)
    principal = service.principal_for_session(session)
    request.state.principal = principal
    return Current(session, principal, request.app.state.records, service)


def second_factor_pending(request: Request) -> Session:
    session = cookies.load_session(request)
    if session is None:
        raise Redirect(SIGN_IN)
    if not session.needs_second_factor:
        raise Redirect("/")
    return session


def require_role(current: Current, *roles: Role) -> None:
    """Pages for other roles answer "not found", as a record the caller may not see does."""
    if current.user.role not in roles:
        raise NotFound("no such page")


async def _form(request: Request) -> Form:
    settings = request.app.state.settings
    fields: dict[str, str] = {}
    for name, value in await read_form(request, max_bytes=min(settings.max_body_bytes, 64 * 1024)):
        fields.setdefault(name, value)
    return Form(fields)


def _csrf_value(request: Request, form: Form) -> str | None:
    return form.fields.get(cookies.CSRF_FIELD) or request.headers.get(cookies.CSRF_HEADER)


async def posted(request: Request) -> Form:
    """The form of a POST made within a session, after its CSRF token was checked."""
    form = await _form(request)
    session = await run_in_threadpool(cookies.load_session, request)
    if session is None:
        raise Redirect(SIGN_IN)
    if not check_csrf(session, _csrf_value(request, form)):
        raise CsrfRejected("the form's CSRF token is missing or wrong")
    return form


async def posted_signin(request: Request) -> Form:
    """The sign-in form, checked against the browser's signed sign-in nonce."""
    form = await _form(request)
    if not cookies.check_signin_token(request, _csrf_value(request, form)):
        raise CsrfRejected("the sign-in form's CSRF token is missing or wrong")
    return form


_MESSAGES = {
    400: ("The request could not be used", "Check what you entered and try again."),
    403: ("Not allowed", "You may not do this."),
    404: ("Not found", "There is no record or page here that you can open."),
    409: ("Conflict", "Someone changed this at the same time. Reload the page and try again."),
    410: ("Not found", "There is no record or page here that you can open."),
    500: ("Something went wrong", "The request was not completed. Try again later."),
    503: ("Unavailable", "The service cannot complete this request now. Try again later."),
}


def error_page(request: Request, status: int, *, detail: str | None = None) -> Response:
    shown = 404 if status == 410 else status
    title, text = _MESSAGES.get(shown, _MESSAGES[500] if shown >= 500 else _MESSAGES[400])
    return page(request, "error.html", status=shown, title=title, text=text, detail=detail)


def _answer_error(request: Request, exc: MedweaveError) -> Response:
    if isinstance(exc, Unauthenticated):
        return _redirect_for(request, SIGN_IN)
    if isinstance(exc, CsrfRejected):
        detail = "This form has expired or did not come from this site. Reload the page and try again."
        return error_page(request, 403, detail=detail)
    if isinstance(exc, PermissionDenied):
        return error_page(request, 403)
    if exc.status in (404, 410):
        return error_page(request, 404)  # the same page whether missing, erased or not yours
    if exc.status in (400, 413, 422):  # the user's input: say what was wrong with it
        return error_page(request, exc.status, detail=exc.message)
    return error_page(request, exc.status)


def _redirect_for(request: Request, location: str) -> Response:
    if request.headers.get("hx-request") == "true":
        return Response(status_code=200, headers={"HX-Redirect": location})
    return redirect(location)


class PageRoute(APIRoute):
    """An ``APIRoute`` whose errors are answered as HTML pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except Redirect as moved:
                return _redirect_for(request, moved.location)
            except MedweaveError as exc:
                return _answer_error(request, exc)
            except RequestValidationError:
                return error_page(request, 400)
            except Exception as exc:  # no trace ever reaches a user
                log.error("page %s failed: %s", request.url.path, type(exc).__name__)
                return error_page(request, 500)

        return run
