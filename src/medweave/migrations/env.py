"""Alembic environment: the engine comes from ``medweave.migrate.upgrade`` (or alembic.ini)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from medweave.db import make_engine
from medweave.migrate import all_tables

metadata = all_tables()

config = context.config
connection = config.attributes.get("connection")


def _run(conn: Connection) -> None:
    context.configure(connection=conn, target_metadata=metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
