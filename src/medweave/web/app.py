"""The application factory: ``create_app(settings)`` wires settings to services and routes."""

from __future__ import annotations

from fastapi import FastAPI

from medweave import __version__
from medweave.config import Settings
from medweave.db import make_engine
from medweave.records.service import RecordService
from medweave.security.crypto import load_or_create_master_key
from medweave.web import errors
from medweave.web.routes import fhir


def build_records(settings: Settings) -> RecordService:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    master = load_or_create_master_key(inline=settings.master_key, path=settings.effective_master_key_file)
    return RecordService(
        engine=engine,
        master=master,
        base_url=settings.fhir_base,
        page_size=settings.default_page_size,
        max_page=settings.max_page_size,
    )


def create_app(settings: Settings | None = None, *, records: RecordService | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="Medweave",
        version=__version__,
        description="FHIR R4 REST API of the Medweave health platform.",
    )
    app.state.settings = settings
    app.state.records = records or build_records(settings)
    errors.install(app)
    app.include_router(fhir.router)
    return app
