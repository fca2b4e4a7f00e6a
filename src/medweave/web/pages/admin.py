"""Admin pages: users and roles, and the review queue of break-glass access.

Admins manage accounts here but read no clinical data: these pages touch only the identity store.
Each account created and each review (and each refused one) is an AuditEvent (``auditing``).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from medweave.errors import Conflict, InvalidInput, PermissionDenied
from medweave.security.principal import Role
from medweave.web.pages import auditing, routing
from medweave.web.pages.render import page
from medweave.web.pages.routing import Current, Form, posted, redirect, require_role

router = APIRouter(route_class=routing.PageRoute, prefix="/admin")
ROLES = [(r.value, r.value.replace("_", " ").capitalize()) for r in Role]


def _users_page(
    request: Request,
    current: Current,
    *,
    error: str | None = None,
    done: str | None = None,
    status: int = 200,
) -> Response:
    users = current.identity.list_users()
    return page(
        request,
        "admin_users.html",
        status=status,
        title="Users",
        users=users,
        roles=ROLES,
        error=error,
        done=done,
    )


@router.get("/users", include_in_schema=False)
def users(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    require_role(current, Role.ADMIN)
    created = request.query_params.get("created", "")[:64]
    return _users_page(request, current, done=f"Created user {created}." if created else None)


@router.post("/users", include_in_schema=False)
def create_user(
    request: Request, form: Form = Depends(posted), current: Current = Depends(routing.signed_in)
) -> Response:
    require_role(current, Role.ADMIN)
    try:
        user = current.identity.create_user(
            username=form.get("username"),
            role=form.get("role"),
            password=form.fields.get("password", ""),
            patient_id=form.get("patient_id") or None,
            practitioner_id=form.get("practitioner_id") or None,
        )
    except (InvalidInput, Conflict) as exc:
        failure = "username taken" if isinstance(exc, Conflict) else "invalid account details"
        auditing.security_change(
            request, current.user, target="user:(new)", roles=True, action="C", failure=failure
        )
        return _users_page(request, current, error=exc.message, status=400)
    auditing.security_change(request, current.user, target=f"user:{user.id}", roles=True, action="C")
    return redirect(f"/admin/users?created={quote(user.username)}")


def _reviews_page(
    request: Request, current: Current, *, error: str | None = None, status: int = 200
) -> Response:
    grants = current.identity.pending_reviews()
    return page(
        request, "admin_reviews.html", status=status, title="Break-glass reviews", grants=grants, error=error
    )


@router.get("/reviews", include_in_schema=False)
def reviews(request: Request, current: Current = Depends(routing.signed_in)) -> Response:
    require_role(current, Role.ADMIN)
    return _reviews_page(request, current)


@router.post("/reviews/{grant_id}", include_in_schema=False)
def review(
    request: Request,
    grant_id: str,
    form: Form = Depends(posted),
    current: Current = Depends(routing.signed_in),
) -> Response:
    require_role(current, Role.ADMIN)
    target = f"grant:{grant_id[:64]}"
    try:
        grant = current.identity.review(grant_id[:64], reviewer_id=current.user.id, note=form.get("note"))
    except (InvalidInput, Conflict, PermissionDenied) as exc:
        auditing.security_change(request, current.user, target=target, roles=False, failure="review refused")
        return _reviews_page(request, current, error=exc.message, status=400)
    auditing.security_change(request, current.user, target=target, roles=False, patient_id=grant.patient_id)
    return redirect("/admin/reviews")
