"""Database engines for the embedded default (SQLite, WAL) and production (PostgreSQL).

Writers on SQLite take the write lock up front (``BEGIN IMMEDIATE``) so two concurrent
read-then-write transactions cannot deadlock; readers use plain deferred transactions and,
in WAL mode, never block writers. PostgreSQL runs READ COMMITTED; version checks are done with
conditional UPDATEs, so no lost update is possible on either engine.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, event

metadata = MetaData()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout, foreign keys and secure_delete."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60}, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            # Deleted content is overwritten with zeros, so erased patients leave no plaintext.
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("sqlite_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True, **kwargs)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


_SQLITE_WRITERS: dict[str, threading.Lock] = {}
_SQLITE_WRITERS_GUARD = threading.Lock()


_ENGINE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()


def sqlite_writer_lock(engine: Engine) -> threading.Lock:
    """The lock this process's writers to a SQLite database queue on (see ``write_tx``).

    One lock per database file, shared by every engine on it; remembered per engine, because
    rendering the URL on every write was measurable."""
    found = _ENGINE_WRITERS.get(engine)
    if found is None:
        with _SQLITE_WRITERS_GUARD:
            found = _SQLITE_WRITERS.setdefault(str(engine.url), threading.Lock())
            _ENGINE_WRITERS[engine] = found
    return found


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A read-write transaction: committed on success, rolled back on any exception.

    SQLite admits one writer at a time; threads of one process queue on a lock here instead of
    sleeping in SQLite's busy handler, which cut the p99 of concurrent creates about fivefold
    (docs/benchmarks.md). Other processes still wait on the database lock itself.
    """
    if is_sqlite(engine):
        with (
            sqlite_writer_lock(engine),
            engine.connect().execution_options(sqlite_immediate=True) as conn,
            conn.begin(),
        ):
            yield conn
        return
    with engine.connect() as conn, conn.begin():
        yield conn


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


class DriverQuery:
    """A fixed statement run straight on the driver, inside a Core connection's transaction.

    For the few statements that run on every request (the in-care check of each read): measured,
    SQLAlchemy's per-execution machinery cost several times the query itself. The text uses
    ``:name`` parameters and must be fixed (no values spliced in); it is turned into the
    driver's own named style once per dialect.
    """

    _NAME = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

    def __init__(self, sql: str) -> None:
        if "%" in sql:
            raise ValueError("a driver query may not contain '%' (psycopg reads it as a placeholder)")
        self.sql = sql
        self._texts: dict[str, str] = {}

    def text(self, dialect: str) -> str:
        """The statement for ``dialect``: sqlite3 takes ``:name`` as is, psycopg wants ``%(name)s``."""
        found = self._texts.get(dialect)
        if found is None:
            found = self.sql if dialect == "sqlite" else self._NAME.sub(r"%(\1)s", self.sql)
            self._texts[dialect] = found
        return found

    def first(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row, or None; runs in ``conn``'s current transaction."""
        raw = conn.connection.dbapi_connection
        if raw is None:
            raise RuntimeError("the connection is closed")
        cur = raw.cursor()
        try:
            cur.execute(self.text(conn.dialect.name), params)
            row = cur.fetchone()
        finally:
            cur.close()
        return tuple(row) if row is not None else None
