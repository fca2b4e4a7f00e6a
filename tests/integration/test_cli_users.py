"""``medweave users`` and ``medweave tokens`` against real SQLite in a temp data dir."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from medweave.cli.tokens import app as tokens_app
from medweave.cli.users import app as users_app
from medweave.cli.users import identity_service
from medweave.config import Settings
from medweave.db import make_engine
from medweave.migrate import upgrade
from medweave.security import tokens

PW = "correct horse battery staple"
SECRET = b"s" * 32


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in (
        "MEDWEAVE_MASTER_KEY",
        "MEDWEAVE_MASTER_KEY_FILE",
        "MEDWEAVE_DATABASE_URL",
        "MEDWEAVE_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEDWEAVE_TOKEN_SECRET", base64.b64encode(SECRET).decode())
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("MEDWEAVE_DATA_DIR", str(data))
    engine = make_engine(Settings().effective_database_url)
    upgrade(engine)
    engine.dispose()
    yield data


def run(app: typer.Typer, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=stdin)


def test_users_create_with_password_stdin_then_sign_in(data_dir: Path) -> None:
    result = run(
        users_app,
        "create",
        "--username",
        "Alice",
        "--role",
        "patient",
        "--patient",
        "p1",
        "--password-stdin",
        stdin=PW + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "created patient Alice (Patient/p1)" in result.output
    assert PW not in result.output
    assert identity_service().authenticate(username="alice", password=PW).ok
    listed = run(users_app, "list")
    assert listed.exit_code == 0 and "Alice" in listed.output and "Patient/p1" in listed.output


def test_users_create_prompts_twice_without_stdin(data_dir: Path) -> None:
    ok = run(users_app, "create", "--username", "drwho", "--role", "clinician", stdin=f"{PW}\n{PW}\n")
    assert ok.exit_code == 0, ok.output
    assert identity_service().authenticate(username="drwho", password=PW).reason == "totp_enrolment_required"


def test_users_errors_are_one_line_with_a_nonzero_exit(data_dir: Path) -> None:
    args = ("create", "--username", "bob", "--role", "patient", "--password-stdin")
    missing = run(users_app, *args, stdin=PW + "\n")
    assert missing.exit_code == 2 and missing.output.strip().count("\n") == 0
    assert missing.output.startswith("error: a patient user must be linked")
    weak = run(
        users_app, "create", "--username", "bob", "--role", "admin", "--password-stdin", stdin="short\n"
    )
    assert weak.exit_code == 2 and "at least 12 characters" in weak.output
    run(users_app, "create", "--username", "bob", "--role", "admin", "--password-stdin", stdin=PW + "\n")
    taken = run(
        users_app, "create", "--username", "BOB", "--role", "admin", "--password-stdin", stdin=PW + "\n"
    )
    assert taken.exit_code == 5 and "taken" in taken.output
    no_arg = run(users_app, "create", "--username", "eve", "--role", "admin", "--password", PW)
    assert no_arg.exit_code == 2  # a password is never accepted as an argument


def test_tokens_issue_for_a_user_prints_only_a_verifiable_token(data_dir: Path) -> None:
    run(
        users_app,
        "create",
        "--username",
        "ana",
        "--role",
        "data_scientist",
        "--password-stdin",
        stdin=PW + "\n",
    )
    result = CliRunner().invoke(
        tokens_app, ["issue", "--username", "ana", "--scopes", "user/*.cruds", "--ttl", "30m"]
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert "\n" not in token
    claims = tokens.verify(
        token, secret=SECRET, audience="http://127.0.0.1:8000/fhir", issuer="http://127.0.0.1:8000"
    )
    assert claims.scope == "user/*.rs" and claims.kind == "user" and claims.role == "data_scientist"
    assert (claims.expires_at - claims.issued_at).total_seconds() == 1800
    assert "granted only" in result.stderr


def test_tokens_issue_for_a_backend_client(data_dir: Path) -> None:
    added = run(
        tokens_app,
        "add-client",
        "--name",
        "lab-feed",
        "--scopes",
        "system/Observation.cruds",
        "--confidential",
    )
    assert added.exit_code == 0 and "client secret (shown once)" in added.output
    result = run(tokens_app, "issue", "--client", "lab-feed", "--scopes", "system/Observation.cruds")
    assert result.exit_code == 0, result.output
    claims = tokens.verify(
        result.output.strip(),
        secret=SECRET,
        audience="http://127.0.0.1:8000/fhir",
        issuer="http://127.0.0.1:8000",
    )
    assert (claims.kind, claims.subject, claims.scope) == ("client", "lab-feed", "system/Observation.cruds")
    both = run(tokens_app, "issue", "--client", "lab-feed", "--username", "x", "--scopes", "system/*.rs")
    assert both.exit_code == 2 and both.output.startswith("error: give exactly one")
    unknown = run(tokens_app, "issue", "--client", "nope", "--scopes", "system/*.rs")
    assert unknown.exit_code == 4 and unknown.output.startswith("error: no client named")
