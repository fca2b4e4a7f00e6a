"""``medweave tokens``: bearer tokens for scripts and integrations, and the OAuth clients they name."""

from __future__ import annotations

import typer

from medweave.cli.context import fail, one_line_errors, settings
from medweave.cli.users import identity_service
from medweave.config import Settings
from medweave.security import tokens
from medweave.security.scopes import ScopeSet

app = typer.Typer(no_args_is_help=True, help="Access tokens for scripts and backend integrations.")


def token_secret(cfg: Settings) -> bytes:
    """The signing secret: MEDWEAVE_TOKEN_SECRET, else its file (made 0600 on first use)."""
    return tokens.load_or_create_token_secret(inline=cfg.token_secret, path=cfg.effective_token_secret_file)


@app.command()
@one_line_errors
def issue(
    username: str | None = typer.Option(
        None, "--username", help="Issue for this user (narrowed to the role)."
    ),
    client: str | None = typer.Option(
        None, "--client", help="Issue for this registered client (system/...)."
    ),
    scopes: str = typer.Option(..., "--scopes", help='SMART scopes, e.g. "user/*.rs" or "system/*.rs".'),
    ttl: str = typer.Option("1h", "--ttl", help="Lifetime: 90s, 30m, 1h, 2d (at most 366d)."),
) -> None:
    """Print a bearer token, and nothing else, on standard output."""
    if (username is None) == (client is None):
        raise fail("give exactly one of --username or --client", 2)
    cfg = settings()
    secret = token_secret(cfg)
    token = identity_service(cfg).issue_token(
        username=username,
        client=client,
        scopes=scopes,
        ttl=tokens.parse_ttl(ttl),
        secret=secret,
        issuer=cfg.base_url,
        audience=cfg.fhir_base,
    )
    granted = tokens.verify(token, secret=secret, audience=cfg.fhir_base, issuer=cfg.base_url).scope
    if granted != str(ScopeSet.parse(scopes)):
        typer.echo(f"note: granted only {granted!r}", err=True)
    typer.echo(token)


@app.command("add-client")
@one_line_errors
def add_client(
    name: str = typer.Option(..., "--name", help="Client name (the token subject)."),
    scopes: str = typer.Option(..., "--scopes", help="The most this client may be granted."),
    redirect_uri: list[str] = typer.Option([], "--redirect-uri", help="For a SMART app; repeatable."),
    confidential: bool = typer.Option(False, "--confidential", help="A backend client with a secret."),
) -> None:
    """Register an OAuth client: a SMART app (public, PKCE) or an integration (--confidential)."""
    registered = identity_service().register_client(
        name=name, redirect_uris=redirect_uri, public=not confidential, scopes=scopes
    )
    typer.echo(f"registered client {registered.client.name}: client_id {registered.client.id}")
    if registered.secret:
        typer.echo(f"client secret (shown once): {registered.secret}")


@app.command("clients")
@one_line_errors
def clients() -> None:
    """List registered clients."""
    for c in identity_service().list_clients():
        kind = "public" if c.public else "confidential"
        state = " (disabled)" if c.disabled else ""
        typer.echo(f"{c.name:<24} {c.id}  {kind:<12} {c.scopes}{state}")
