"""Run the Alembic migrations programmatically (``medweave db upgrade``)."""

from __future__ import annotations

from importlib import import_module, resources

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, MetaData

from medweave.db import metadata

TABLE_MODULES = (
    "medweave.records.tables",
    "medweave.jobs.tables",
    "medweave.audit.tables",
    "medweave.identity.tables",
    "medweave.ledger.tables",
    "medweave.telehealth.tables",
    "medweave.therapy.tables",
    "medweave.diagnostics.tables",
    "medweave.printing.tables",
)


def all_tables() -> MetaData:
    """Import every module that declares tables, so the metadata holds the whole schema."""
    for name in TABLE_MODULES:
        import_module(name)
    return metadata


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("medweave") / "migrations"))
    # Alembic's config is an .ini: a literal % (in a URL-encoded password) must be doubled.
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
