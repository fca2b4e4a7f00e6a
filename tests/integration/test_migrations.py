"""The Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from medweave.migrate import all_tables


def test_migrations_match_the_tables(engine: Engine) -> None:
    # The `engine` fixture has already run every migration to head.
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), all_tables())
    assert diff == []
