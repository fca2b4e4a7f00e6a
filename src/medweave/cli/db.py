"""``medweave db upgrade``: bring the database schema to the newest migration."""

from __future__ import annotations

import typer

from medweave.cli.context import one_line_errors, settings
from medweave.db import make_engine
from medweave.migrate import upgrade as run_upgrade

app = typer.Typer(no_args_is_help=True, help="Database schema.")


@app.command()
@one_line_errors
def upgrade() -> None:
    """Apply every pending migration (SQLite or PostgreSQL, from MEDWEAVE_DATABASE_URL)."""
    cfg = settings()
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    run_upgrade(make_engine(cfg.effective_database_url))
    typer.echo("database is up to date")
