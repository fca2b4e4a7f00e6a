"""AuditEvents the pages write themselves: sign-in, sign-out, break-glass and admins' changes.

Record reads and writes are audited by ``RecordService``; the identity service writes nothing,
so the page that signs a user in or opens a break-glass grant records it here, and waits for the
event to be durable before answering.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from medweave.audit import Actor, AuditService, break_glass_event, login_event, security_change_event
from medweave.identity import Grant, User
from medweave.records.service import RecordService
from medweave.web.pages.session import client_address


def user_ref(user: User | None) -> str:
    """The agent of an event: the user's FHIR resource, else ``user:<id>`` (as ``Principal.audit_ref``)."""
    if user is None:
        return "unknown"
    return user.fhir_user or f"user:{user.id}"


def _service(request: Request) -> AuditService | None:
    records: RecordService = request.app.state.records
    return records.trail.audit


def _record(request: Request, user: User | None, event: Callable[[Actor], dict[str, Any]]) -> None:
    """Write ``event(actor)`` for ``user`` at this request's address (nothing without an audit trail)."""
    audit = _service(request)
    if audit is None:
        return
    audit.record(event(Actor(who=user_ref(user), address=client_address(request))))


def login(
    request: Request, user: User | None, *, success: bool, failure: str | None = None, logout: bool = False
) -> None:
    _record(
        request,
        user,
        lambda actor: login_event(actor=actor, success=success, failure=failure, logout=logout),
    )


def break_glass(request: Request, user: User, grant: Grant, *, end: bool = False) -> None:
    _record(
        request,
        user,
        lambda actor: break_glass_event(
            actor=actor, patient_id=grant.patient_id, reason=grant.reason, expires=grant.expires, end=end
        ),
    )


def security_change(
    request: Request,
    user: User,
    *,
    target: str,
    roles: bool,
    action: str = "U",
    patient_id: str | None = None,
    failure: str | None = None,
) -> None:
    """An admin created an account (``roles``) or reviewed a break-glass grant; refused ones too."""
    _record(
        request,
        user,
        lambda actor: security_change_event(
            actor=actor, target=target, roles=roles, action=action, patient_id=patient_id, failure=failure
        ),
    )
