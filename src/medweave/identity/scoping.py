"""Which scopes a user or client may be granted. Pure: no I/O.

A role's ceiling is its ``ROLE_SCOPES`` entry, plus the SMART launch-context scopes, plus, for
staff, the ``patient/`` form of each ``user/`` scope: ``patient/X.rs`` means "X in the launch
patient's compartment, as far as the user may see it", which is never more than ``user/X.rs``
(the access layer still applies care relationships and consent). So a clinician's SMART app that
asks for ``patient/Observation.rs launch/patient`` gets it, and a token can only ever narrow.
"""

from __future__ import annotations

from medweave.errors import InvalidInput, PermissionDenied
from medweave.identity.model import User
from medweave.security.principal import ROLE_SCOPES, STAFF_ROLES, Role
from medweave.security.scopes import Scope, ScopeSet, narrow

LAUNCH_SCOPES = ScopeSet.parse("launch launch/patient")


def role_ceiling(role: Role) -> ScopeSet:
    """The most a token or an app of a user with ``role`` can hold."""
    base = ScopeSet.parse(ROLE_SCOPES[role])
    if role not in STAFF_ROLES:
        return base | LAUNCH_SCOPES
    as_patient = ScopeSet.of(
        Scope("patient", s.resource_type, s.permissions) for s in base.resources if s.context == "user"
    )
    return base | LAUNCH_SCOPES | as_patient


def is_empty(scopes: ScopeSet) -> bool:
    return not scopes.resources and not scopes.other


def grant_for_user(
    user: User, requested: ScopeSet, client_allowed: ScopeSet | None, patient_id: str | None
) -> tuple[ScopeSet, str | None]:
    """The scopes granted and the launch patient: the request narrowed to the role (and client).

    A patient's launch patient is always themselves; ``patient/`` scopes need a launch patient.
    """
    granted = narrow(requested, role_ceiling(user.role))
    if client_allowed is not None:
        granted = narrow(granted, client_allowed)
    if is_empty(granted):
        raise InvalidInput(
            f"none of the requested scopes can be granted to a {user.role.value} (invalid_scope)",
            expression=["scope"],
        )
    launch = patient_id
    if user.role == Role.PATIENT:
        if patient_id is not None and patient_id != user.patient_id:
            raise PermissionDenied("a patient can only launch an app with their own record")
        launch = user.patient_id
    if launch is None and any(s.context == "patient" for s in granted.resources):
        raise InvalidInput("patient/ scopes need a launch patient", expression=["scope"])
    return granted, launch
