"""Fuzz every operation of the app's own OpenAPI description with schemathesis: never a 5xx.

Cases come from ``/openapi.json`` of the ASGI app, in schemathesis's positive mode (data that
fits the description) and negative mode (data that breaks it), and are sent through
schemathesis's ASGI transport. Generation is derandomized, so CI sees the same cases every run.
Any 4xx must be a FHIR OperationOutcome. SQLite only: the HTTP layer is what is fuzzed here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from conftest import BASE, TOKEN_SECRET, bearer
from medweave.config import Settings
from medweave.db import make_engine
from medweave.migrate import upgrade
from medweave.records.service import RecordService
from medweave.security.crypto import MasterKey
from medweave.web.app import create_app
from medweave.web.auth import Authenticator

EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 25}
MIN_CASES = 500


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    engine = make_engine(f"sqlite:///{tmp_path / 'fuzz.db'}")
    upgrade(engine)
    records = RecordService(engine=engine, master=MasterKey.generate(), base_url="http://testserver/fhir")
    auth = Authenticator(secret=TOKEN_SECRET, issuer="http://testserver", audience=BASE)
    yield create_app(
        Settings(data_dir=tmp_path / "data", base_url="http://testserver"),
        records=records,
        authenticator=auth,
    )
    engine.dispose()


def _check(response: Any, path: str = "/fhir") -> str | None:
    """What is wrong with one response, or None.

    FHIR endpoints answer errors with an OperationOutcome; the OAuth2 endpoints with RFC 6749
    section 5.2's ``{"error": ...}``.
    """
    if response.status_code >= 500:
        return f"{response.status_code}: {response.text[:300]}"
    if 400 <= response.status_code < 500:
        try:
            body = json.loads(response.content)
        except ValueError:
            return f"{response.status_code} without a JSON body: {response.content[:200]!r}"
        if path.startswith("/oauth/"):
            if not isinstance(body, dict) or not isinstance(body.get("error"), str):
                return f"{response.status_code} that is not an OAuth2 error: {response.content[:200]!r}"
            return None
        if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
            return f"{response.status_code} that is not an OperationOutcome: {response.content[:200]!r}"
    return None


def _fuzz(
    operation: Any, mode: GenerationMode, examples: int, seen: Counter[int], failures: list[str]
) -> int:
    """Run ``examples`` generated cases of one operation; return how many ran."""
    label = f"{operation.label} [{mode.value}]"
    ran = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    def run(case: Any) -> None:
        nonlocal ran
        ran += 1
        try:
            response = case.call(headers=bearer())
        except Exception as exc:
            failures.append(f"{label}: {type(exc).__name__}: {exc} <- {case.as_curl_command()}")
            return
        seen[response.status_code] += 1
        problem = _check(response, operation.path)
        if problem:
            failures.append(f"{label}: {problem} <- {case.as_curl_command()}")

    try:
        run()
    except Unsatisfiable:
        # An operation without parameters or body (``/metadata``) has nothing to break.
        assert mode is GenerationMode.NEGATIVE and ran == 0, label
    return ran


def test_openapi_operations_never_answer_5xx(app, capsys) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13, [op.label for op in operations]
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    total = sum(
        _fuzz(operation, mode, examples, statuses, failures)
        for operation in operations
        for mode, examples in EXAMPLES.items()
    )
    with capsys.disabled():
        codes = dict(sorted(statuses.items()))
        print(f"\nschemathesis: {total} cases over {len(operations)} operations; statuses {codes}")
        for line in failures[:20]:
            print(f"  FAILED {line}")
    assert total >= MIN_CASES
    assert not failures, "\n".join(failures[:20])
