"""``medweave users``: create and list accounts, change roles, disable, unlock, reset TOTP."""

from __future__ import annotations

import sys

import typer

from medweave.cli.context import fail, one_line_errors, settings
from medweave.config import Settings
from medweave.db import make_engine
from medweave.identity import IdentityService
from medweave.security.crypto import load_or_create_master_key
from medweave.security.principal import Role

app = typer.Typer(no_args_is_help=True, help="User accounts: create, list, roles, lockout, TOTP.")
ROLES = ", ".join(r.value for r in Role)


def identity_service(cfg: Settings | None = None) -> IdentityService:
    cfg = cfg or settings()
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    return IdentityService(
        engine=make_engine(cfg.effective_database_url),
        master=load_or_create_master_key(inline=cfg.master_key, path=cfg.effective_master_key_file),
    )


def read_password(from_stdin: bool) -> str:
    """From stdin (one line, for scripts), else prompted twice with hidden input. Never an argument."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise fail("no password on standard input", 2)
        return password
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@app.command()
@one_line_errors
def create(
    username: str = typer.Option(..., "--username", help="Login name (case-insensitive, unique)."),
    role: str = typer.Option(..., "--role", help=f"One of: {ROLES}."),
    patient: str | None = typer.Option(None, "--patient", help="Patient id (required for role patient)."),
    practitioner: str | None = typer.Option(None, "--practitioner", help="Practitioner id (staff)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
) -> None:
    """Create a user. Staff enrol TOTP at their first sign-in."""
    service = identity_service()
    password = read_password(password_stdin)
    user = service.create_user(
        username=username, role=role, password=password, patient_id=patient, practitioner_id=practitioner
    )
    link = f" ({user.fhir_user})" if user.fhir_user else ""
    typer.echo(f"created {user.role.value} {user.username}{link}, id {user.id}")


@app.command("list")
@one_line_errors
def list_() -> None:
    """List users: name, role, link, second factor, state."""
    for user in identity_service().list_users():
        state = "disabled" if user.disabled else "active"
        totp = "totp" if user.totp_enabled else "-"
        typer.echo(f"{user.username:<24} {user.role.value:<15} {user.fhir_user or '-':<30} {totp:<5} {state}")


@app.command("set-role")
@one_line_errors
def set_role(username: str = typer.Argument(...), role: str = typer.Argument(..., help=ROLES)) -> None:
    """Change a staff user's role; their sessions end."""
    service = identity_service()
    user = service.set_role(service.get_user_by_username(username).id, role)
    typer.echo(f"{user.username} is now {user.role.value}")


@app.command("set-password")
@one_line_errors
def set_password(
    username: str = typer.Argument(...),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
) -> None:
    """Set a new password; the user's sessions end and their lockout clears."""
    service = identity_service()
    user = service.get_user_by_username(username)
    service.set_password(user.id, password=read_password(password_stdin))
    typer.echo(f"password of {user.username} changed")


@app.command()
@one_line_errors
def disable(username: str = typer.Argument(...)) -> None:
    """Refuse every sign-in, session and token of a user (the account is kept for the audit trail)."""
    service = identity_service()
    service.disable(service.get_user_by_username(username).id)
    typer.echo(f"{username} disabled")


@app.command()
@one_line_errors
def enable(username: str = typer.Argument(...)) -> None:
    """Allow a disabled user to sign in again."""
    service = identity_service()
    service.enable(service.get_user_by_username(username).id)
    typer.echo(f"{username} enabled")


@app.command()
@one_line_errors
def unlock(username: str = typer.Argument(...)) -> None:
    """Clear the sign-in lockout of a username."""
    identity_service().unlock(username)
    typer.echo(f"{username} unlocked")


@app.command("reset-totp")
@one_line_errors
def reset_totp(username: str = typer.Argument(...)) -> None:
    """Forget a user's authenticator (a lost phone); staff enrol again at their next sign-in."""
    service = identity_service()
    service.reset_totp(service.get_user_by_username(username).id)
    typer.echo(f"second factor of {username} reset; they enrol again at their next sign-in")
