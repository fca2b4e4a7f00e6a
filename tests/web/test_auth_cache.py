"""Bearer tokens resolve through the identity store; its answer is remembered only briefly."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medweave.config import Settings
from medweave.identity import IdentityService
from medweave.records.service import RecordService
from medweave.web.app import create_app
from medweave.web.auth import Authenticator

SECRET = b"medweave-test-token-secret-32-bytes-long!"
PASSWORD = "correct horse battery staple"


def _app(
    records: RecordService, identity: IdentityService, tmp_path: Path, cache_seconds: float
) -> TestClient:
    settings = Settings(data_dir=tmp_path / "data", base_url="http://testserver")
    auth = Authenticator(
        secret=SECRET,
        issuer="http://testserver",
        audience=settings.fhir_base,
        identity=identity,
        cache_seconds=cache_seconds,
    )
    return TestClient(create_app(settings, records=records, authenticator=auth, identity=identity))


def _token(identity: IdentityService, username: str) -> dict[str, str]:
    token = identity.issue_token(
        username=username,
        scopes="user/*.rs",
        ttl=timedelta(hours=1),
        secret=SECRET,
        issuer="http://testserver",
        audience="http://testserver/fhir",
    )
    return {"Authorization": f"Bearer {token}"}


def test_a_disabled_user_is_shut_out_once_the_cache_expires(
    engine: Engine, records: RecordService, tmp_path: Path
) -> None:
    identity = IdentityService(engine=engine, master=records.master)
    user = identity.create_user(username="reader", role="data_scientist", password=PASSWORD)
    client = _app(records, identity, tmp_path, cache_seconds=0.5)
    headers = _token(identity, "reader")
    assert client.get("/fhir/Practitioner", headers=headers).status_code == 200
    identity.disable(user.id)
    time.sleep(0.6)
    assert client.get("/fhir/Practitioner", headers=headers).status_code == 401


def test_without_a_cache_it_is_immediate(engine: Engine, records: RecordService, tmp_path: Path) -> None:
    identity = IdentityService(engine=engine, master=records.master)
    user = identity.create_user(username="reader", role="data_scientist", password=PASSWORD)
    client = _app(records, identity, tmp_path, cache_seconds=0)
    headers = _token(identity, "reader")
    assert client.get("/fhir/Practitioner", headers=headers).status_code == 200
    identity.disable(user.id)
    assert client.get("/fhir/Practitioner", headers=headers).status_code == 401
