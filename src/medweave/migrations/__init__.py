"""Alembic migrations; they run the same on SQLite and PostgreSQL."""
