"""The Jinja2 environment and the one function that turns a template into a page response.

Autoescaping is on for every template; the only markup inserted unescaped is SVG built by our own
code (``charts``, ``totp.qr_svg``), wrapped in ``Markup`` where it is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from medweave.identity import Session
from medweave.security.principal import CARE_ROLES, STAFF_ROLES, Role

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
HTMX = "/static/vendor/htmx-2.0.11.min.js"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def navigation(session: Session | None) -> list[tuple[str, str]]:
    """The sections a user may open. Later capabilities add theirs here once they exist."""
    if session is None or session.needs_second_factor:
        return []
    role = session.user.role
    if role == Role.PATIENT:
        return [
            ("/me", "My record"),
            ("/visits", "My visits"),
            ("/therapy", "Support assistant"),
            ("/ledger", "Records ledger"),
        ]
    items: list[tuple[str, str]] = []
    if role != Role.ADMIN:
        items.append(("/patients", "My patients"))
    if role in CARE_ROLES:
        items += [
            ("/clinic/today", "Today's visits"),
            ("/schedule", "My availability"),
            ("/therapy/caseload", "Therapy caseload"),
        ]
    if role == Role.ADMIN:
        items += [
            ("/admin/users", "Users"),
            ("/admin/reviews", "Break-glass reviews"),
            ("/admin/jobs", "Jobs"),
        ]
    if role in (Role.DATA_SCIENTIST, Role.CLINICIAN, Role.ADMIN):
        items.append(("/ml/models", "Models"))
    if role in (Role.LAB_TECHNICIAN, Role.CLINICIAN):
        items.append(("/print", "Print lab"))
    if role in STAFF_ROLES:
        items.append(("/break-glass", "Emergency access"))
    items.append(("/ledger", "Records ledger"))
    return items


def page(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the signed-in user, the CSRF token and the navigation.

    ``context`` may override any of them (the sign-in form passes its own ``csrf_token``).
    """
    session: Session | None = getattr(request.state, "page_session", None)
    signed_in = session is not None and not session.needs_second_factor
    base = {
        "path": request.url.path,
        "user": session.user if signed_in and session else None,
        "csrf_token": session.csrf_token if session else "",
        "nav": navigation(session),
        "htmx": HTMX,
    }
    html = _env.get_template(template).render({**base, **context})
    return HTMLResponse(html, status_code=status)


def fragment(template: str, **context: Any) -> HTMLResponse:
    """A piece of a page for an HTMX swap (no layout)."""
    return HTMLResponse(_env.get_template(template).render(**context))
