"""Shared fixtures: real SQLite and PostgreSQL databases, a record service and an HTTP client.

PostgreSQL comes from ``MEDWEAVE_TEST_POSTGRES`` (CI sets it); each test gets a schema of its
own, dropped afterwards. In CI (``CI=true``) a skipped test fails the run: a missing component
must never pass silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from medweave.audit import AuditService
from medweave.db import make_engine
from medweave.migrate import upgrade
from medweave.records.service import RecordService
from medweave.security import tokens
from medweave.security.crypto import MasterKey

ROOT = Path(__file__).resolve().parents[1]
FHIR_EXAMPLES = Path(
    os.environ.get("MEDWEAVE_FHIR_EXAMPLES", ROOT / ".cache/npm/node_modules/hl7.fhir.r4.examples")
)
BASE = "http://testserver/fhir"


def postgres_url() -> str | None:
    url = os.environ.get("MEDWEAVE_TEST_POSTGRES")
    if not url:
        return None
    return "postgresql+psycopg://" + url.split("://", 1)[1]


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database: SQLite in a temp dir, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'medweave.db'}")
        upgrade(eng)
        yield eng
        eng.dispose()
        return
    url = postgres_url()
    if url is None:
        pytest.skip("MEDWEAVE_TEST_POSTGRES is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    eng = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    upgrade(eng)
    yield eng
    eng.dispose()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A migrated embedded data folder, named by MEDWEAVE_DATA_DIR, for the CLI's commands."""
    from medweave.config import Settings

    for name in ("MEDWEAVE_MASTER_KEY", "MEDWEAVE_MASTER_KEY_FILE", "MEDWEAVE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("MEDWEAVE_DATA_DIR", str(data))
    engine = make_engine(Settings().effective_database_url)
    upgrade(engine)
    engine.dispose()
    yield data


TOKEN_SECRET = b"medweave-test-token-secret-32-bytes-long!"


@pytest.fixture
def audit(engine: Engine) -> Iterator[AuditService]:
    service = AuditService(engine)
    yield service
    service.close()


@pytest.fixture
def records(engine: Engine, audit: AuditService) -> RecordService:
    return RecordService(engine=engine, master=MasterKey.generate(), base_url=BASE, audit=audit)


def bearer(
    scope: str = "system/*.cruds", *, kind: str = "client", subject: str = "test-suite", **claims: str
) -> dict[str, str]:
    """An Authorization header with a token this suite's app accepts."""
    token = tokens.issue(
        secret=TOKEN_SECRET,
        issuer="http://testserver",
        subject=subject,
        audience=BASE,
        scope=scope,
        kind=kind,
        ttl=timedelta(hours=1),
        **claims,
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def app(records: RecordService, tmp_path: Path) -> object:
    from medweave.config import Settings
    from medweave.web.app import create_app
    from medweave.web.auth import Authenticator

    settings = Settings(data_dir=tmp_path / "data", base_url="http://testserver")
    auth = Authenticator(secret=TOKEN_SECRET, issuer="http://testserver", audience=BASE)
    return create_app(settings, records=records, authenticator=auth)


@pytest.fixture
def client(app: object) -> Iterator[object]:
    """An HTTP client acting as a backend integration with ``system/*.cruds`` (no patient limits)."""
    from fastapi.testclient import TestClient

    with TestClient(app, headers=bearer()) as c:  # type: ignore[arg-type]
        yield c


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if os.environ.get("CI") and skipped:
        terminalreporter.write_line(
            f"CI: {len(skipped)} test(s) skipped for a missing component; failing the run."
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("CI") and reporter is not None and reporter.stats.get("skipped"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def observation(
    patient_id: str, code: str, display: str, value: float, unit: str, when: str
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }
