"""Crypto-shredding is the operator's alone: anyone else is refused and nothing is erased."""

from __future__ import annotations

import pytest

from medweave.errors import PermissionDenied
from medweave.records.service import RecordService
from medweave.security.principal import Principal, Role
from medweave.security.scopes import ScopeSet


def test_only_the_operator_may_erase_a_patient(records: RecordService) -> None:
    operator = Principal.internal("test")
    pid = records.create(principal=operator, res_type="Patient", data={"resourceType": "Patient"}).res_id
    client = Principal(kind="client", subject="integration", scopes=ScopeSet.parse("system/*.cruds"))
    admin = Principal(kind="user", subject="u", scopes=ScopeSet.parse("user/*.cruds"), role=Role.ADMIN)
    for caller in (client, admin):
        with pytest.raises(PermissionDenied):
            records.erase_patient(principal=caller, patient_id=pid)
    assert records.read(principal=operator, res_type="Patient", res_id=pid).body is not None
    assert records.erase_patient(principal=operator, patient_id=pid) == 1
