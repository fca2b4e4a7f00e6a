"""What a user may be granted: narrowed to the role, the client, and the launch patient."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from medweave.errors import InvalidInput, PermissionDenied
from medweave.identity.model import User
from medweave.identity.scoping import grant_for_user, role_ceiling
from medweave.security.principal import Role
from medweave.security.scopes import ScopeSet

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def user(role: Role, patient_id: str | None = None) -> User:
    return User("u1", "u", role, patient_id, None, False, False, T0, T0)


def test_staff_ceiling_allows_patient_context_of_their_user_scopes() -> None:
    ceiling = role_ceiling(Role.DATA_SCIENTIST)
    assert ceiling.allows("Observation", "read", context="patient")
    assert not ceiling.allows("Observation", "create", context="patient")
    assert not ceiling.allows("Observation", "read", context="system")


def test_patient_gets_own_record_as_launch_patient() -> None:
    granted, launch = grant_for_user(
        user(Role.PATIENT, "p1"), ScopeSet.parse("patient/Observation.rs"), None, None
    )
    assert str(granted) == "patient/Observation.rs" and launch == "p1"
    with pytest.raises(PermissionDenied):
        grant_for_user(user(Role.PATIENT, "p1"), ScopeSet.parse("patient/Observation.rs"), None, "p2")


def test_narrowed_to_role_and_client() -> None:
    requested = ScopeSet.parse("user/*.cruds system/*.rs openid")
    granted, _ = grant_for_user(
        user(Role.DATA_SCIENTIST), requested, ScopeSet.parse("user/Observation.cruds"), None
    )
    assert str(granted) == "user/Observation.rs"


def test_nothing_grantable_or_no_launch_patient_is_refused() -> None:
    with pytest.raises(InvalidInput):
        grant_for_user(user(Role.PATIENT, "p1"), ScopeSet.parse("system/*.rs"), None, None)
    with pytest.raises(InvalidInput):
        grant_for_user(user(Role.CLINICIAN), ScopeSet.parse("patient/Observation.rs"), None, None)
    granted, launch = grant_for_user(
        user(Role.CLINICIAN), ScopeSet.parse("patient/Observation.rs"), None, "p9"
    )
    assert launch == "p9" and granted.allows("Observation", "read", context="patient")
