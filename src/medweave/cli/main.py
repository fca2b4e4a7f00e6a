"""The ``medweave`` command."""

from __future__ import annotations

import typer

from medweave.cli.context import one_line_errors, settings
from medweave.cli.db import app as db_app
from medweave.cli.demo import app as demo_app
from medweave.cli.ledger import app as ledger_app
from medweave.cli.ml import app as ml_app
from medweave.cli.printing import app as print_app
from medweave.cli.records import app as records_app
from medweave.cli.therapy import app as therapy_app
from medweave.cli.tokens import app as tokens_app
from medweave.cli.users import app as users_app
from medweave.cli.worker import worker as worker_command

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Medweave: the open health platform.")
app.add_typer(db_app, name="db")
app.add_typer(records_app, name="records")
app.add_typer(demo_app, name="demo")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(ledger_app, name="ledger")
app.add_typer(therapy_app, name="therapy")
app.add_typer(ml_app, name="ml")
app.add_typer(print_app, name="print")
app.command("worker")(worker_command)


WS_MAX_BYTES = 128 * 1024


@app.command()
@one_line_errors
def serve(
    host: str = typer.Option(None, help="Address to bind (default MEDWEAVE_HOST or 127.0.0.1)."),
    port: int = typer.Option(None, help="Port to bind (default MEDWEAVE_PORT or 8000)."),
) -> None:
    """Serve the web app and the FHIR API."""
    import uvicorn

    from medweave.cli.worker import job_client
    from medweave.web.app import build_records, create_app

    cfg = settings()
    records = build_records(cfg)
    # Jobs started from the pages (training a model) run here, or on workers with a broker set.
    app_ = create_app(cfg, records=records, jobs=job_client(records, cfg))
    uvicorn.run(
        app_,
        host=host or cfg.host,
        port=port or cfg.port,
        log_level="info",
        access_log=False,
        # Signaling frames are small and bounded (telehealth.signaling.MAX_SIGNAL_BYTES): refuse
        # bigger ones before buffering them, and skip per-message deflate, whose zlib state per
        # socket costs memory at thousands of sockets and CPU on every frame.
        ws_max_size=WS_MAX_BYTES,
        ws_per_message_deflate=False,
    )


if __name__ == "__main__":
    app()
