"""What ``bench/ledger.py`` builds on: leaf data, scratch databases, audit events, a fast 1M-leaf
ledger, and the pymerkle 7 peers. Nothing here is timed; ``bench/ledger.py`` does the timing.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from medweave.audit import Actor, AuditRecord, rest_event
from medweave.db import make_engine, write_tx
from medweave.ledger import store
from medweave.ledger.checkpoint import Checkpoint
from medweave.ledger.compact import CompactRange
from medweave.ledger.hashing import leaf_hash
from medweave.ledger.note import Signer, generate, parse_skey, sign
from medweave.ledger.service import LedgerService
from medweave.migrate import upgrade
from medweave.security.crypto import MasterKey

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432"
ENTRY_BYTES = 200
ORIGIN = "bench/ledger"
#: Leaves per transaction when the proof tree is bulk-loaded.
BUILD_CHUNK = 50_000


class BenchError(RuntimeError):
    """The benchmark cannot go on (a database is missing, or a result is wrong)."""


def leaf_data(n: int, seed: int) -> list[bytes]:
    """``n`` pseudo-random entries of ``ENTRY_BYTES`` bytes: the leaf inputs every system gets."""
    rng = random.Random(seed)
    return [rng.randbytes(ENTRY_BYTES) for _ in range(n)]


def new_signer() -> Signer:
    return parse_skey(generate(ORIGIN)[0])


def new_ledger(engine: Engine, *, batch: int) -> LedgerService:
    """The sequencer as ``medweave serve`` runs it, built without Settings."""
    return LedgerService(engine, master=MasterKey.generate(), signer=new_signer(), batch=batch)


# --- databases ------------------------------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, workdir: Path, name: str) -> Iterator[Engine]:
    """A migrated database: a SQLite file in ``workdir``, or a fresh PostgreSQL database
    ``bench_<random>`` that is dropped on the way out."""
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{workdir / (name + '.db')}")
        try:
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()
        return
    import psycopg

    dbname = f"bench_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
    except psycopg.OperationalError as exc:
        raise BenchError(f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc}); try --db sqlite") from None
    engine = make_engine(f"{PG_BASE_URL}/{dbname}")
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def code_version() -> str:
    """The commit the benchmarked code is at, ``+dirty`` when src/ has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def server_version(engine: Engine) -> str:
    if engine.dialect.name == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    with engine.connect() as conn:
        return "PostgreSQL " + str(conn.execute(text("SHOW server_version")).scalar_one()).split()[0]


def durability(engine: Engine) -> str:
    """How a commit is made durable on this database, for the report."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()
            sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[
                int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())
            ]
            return f"journal_mode={mode}, synchronous={sync}"
        names = ("fsync", "synchronous_commit", "wal_sync_method")
        return ", ".join(f"{n}={conn.exec_driver_sql(f'SHOW {n}').scalar_one()}" for n in names)


# --- the sequencer's sources ----------------------------------------------------------------------

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def audit_records(start: int, n: int, *, patients: int, rng: random.Random) -> list[AuditRecord]:
    """``n`` AuditEvents as a clinic's day leaves them: reads of a patient's Observations by one of
    20 practitioners, and every tenth a search that names no patient (its leaf gets a random salt,
    stored with it; a patient's leaf gets the salt derived from the patient's data key)."""
    out = []
    for i in range(start, start + n):
        actor = Actor(f"Practitioner/d{i % 20}", address="10.0.0.1")
        recorded = T0 + timedelta(milliseconds=i)
        if i % 10 == 0 or patients == 0:
            event = rest_event(
                "search",
                status=200,
                actor=actor,
                resource_type="Observation",
                query="code=8867-4&_count=50",
                recorded=recorded,
            )
        else:
            event = rest_event(
                "read",
                status=200,
                actor=actor,
                resource_type="Observation",
                resource_id=f"o{i}",
                patient_id=f"p{rng.randrange(patients)}",
                recorded=recorded,
            )
        out.append(AuditRecord.from_event(event))
    return out


# --- the raw store and the proof tree --------------------------------------------------------------


@dataclass
class Prepared:
    """Precomputed rows for one batch of ``store.add_entries`` / ``store.add_nodes``."""

    entries: list[store.Entry]
    nodes: list[tuple[tuple[int, int], bytes]]


def prepare_batches(
    data: Sequence[bytes], *, start: int, tree: CompactRange, batch: int, now: datetime
) -> list[Prepared]:
    """Leaf hashes and completed nodes of ``data`` appended to ``tree`` (moved on), in batches."""
    out = []
    for s in range(0, len(data), batch):
        entries, nodes = [], []
        for i, item in enumerate(data[s : s + batch], start=start + s):
            leaf = leaf_hash(item)
            # Refs of record versions that no table holds: real audit rows appended later never clash.
            entries.append(store.Entry(i, "version", f"Observation/b{i}/_history/1", leaf, None, now))
            nodes.extend(tree.append(leaf))
        out.append(Prepared(entries, nodes))
    return out


@dataclass
class Built:
    seconds: float
    root: bytes
    size: int


def build_tree(engine: Engine, data: Sequence[bytes], *, signer: Signer) -> Built:
    """Bulk-load a ledger of ``len(data)`` leaves through the store functions, ``BUILD_CHUNK`` leaves
    per transaction, then sign one checkpoint at that size and move the head there. On PostgreSQL
    the ledger tables are then ANALYZEd, as autovacuum would do on a live database."""
    started = time.perf_counter()
    tree = CompactRange()
    now = datetime.now(UTC)
    for s in range(0, len(data), BUILD_CHUNK):
        (part,) = prepare_batches(data[s : s + BUILD_CHUNK], start=s, tree=tree, batch=BUILD_CHUNK, now=now)
        with write_tx(engine) as conn:
            store.add_entries(conn, part.entries)
            store.add_nodes(conn, part.nodes)
    root = tree.root()
    with write_tx(engine) as conn:
        note = sign(Checkpoint(signer.name, tree.size, root).text(), [signer])
        store.add_checkpoint(conn, size=tree.size, root=root, note=note)
        store.move_head(conn, store.Head(tree.size, 0))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE ledger_entries, ledger_nodes, ledger_checkpoints")
    return Built(time.perf_counter() - started, root, tree.size)


# --- pymerkle 7 -----------------------------------------------------------------------------------


def pymerkle_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pymerkle")
    except PackageNotFoundError:
        raise BenchError("pymerkle is not installed: .venv/bin/pip install 'pymerkle>=7,<8'") from None


def sqlite_tree(path: Path, *, ours_pragmas: bool) -> Any:
    """A pymerkle ``SqliteTree`` on a file. ``ours_pragmas`` gives its connection the journal and
    sync settings ``medweave.db.make_engine`` gives ours (WAL, synchronous=NORMAL); otherwise it
    keeps Python's sqlite3 defaults (rollback journal, synchronous=FULL: fsync on every commit)."""
    from pymerkle import SqliteTree

    tree = SqliteTree(str(path))
    if ours_pragmas:
        mode = tree.con.execute("PRAGMA journal_mode=WAL").fetchone()
        tree.con.execute("PRAGMA synchronous=NORMAL")
        if str(mode).lower() != "wal":
            raise BenchError(f"pymerkle's SQLite file did not switch to WAL ({mode})")
    return tree


def percentile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ``xs`` (0 < q < 1), as bench/records.py quotes latencies."""
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
