"""The Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, update

from medweave.db import make_engine
from medweave.migrate import all_tables, upgrade
from medweave.telehealth.tables import telehealth_bookings


def test_migrations_match_the_tables(engine: Engine) -> None:
    # The `engine` fixture has already run every migration to head.
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), all_tables())
    assert diff == []


def test_a_practitioner_left_in_two_calls_stops_the_upgrade_with_what_to_do(tmp_path: Path) -> None:
    """0013 adds the one-call-per-practitioner index; a database the old race left in two calls
    says what to do instead of failing on the index, and upgrades once that is done."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0012")
    start = datetime(2027, 1, 4, 9, tzinfo=UTC)
    with engine.begin() as conn:
        for n in range(2):
            at = start + timedelta(minutes=30 * n)
            conn.execute(
                telehealth_bookings.insert().values(
                    appointment_id=f"a{n}",
                    practitioner_id="pr1",
                    start=at,
                    end=at + timedelta(minutes=20),
                    status="booked",
                    visit_state="in-call",
                )
            )
    with pytest.raises(RuntimeError, match="hang up the extra visits"):
        upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            update(telehealth_bookings)
            .where(telehealth_bookings.c.appointment_id == "a1")
            .values(visit_state="finished")
        )
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), all_tables())
    assert diff == []
    engine.dispose()
