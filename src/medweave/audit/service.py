"""The audit service: one ordered, gapless stream of AuditEvents, written with group commit.

``submit`` queues a record and returns a Future; one writer thread per service takes everything
queued (up to ``max_batch``, lingering ``linger_s`` for more) and writes it in ONE transaction on
a connection of its own: move the ``audit_head`` row with ``UPDATE ... RETURNING``, which locks it
(on SQLite ``BEGIN IMMEDIATE`` also serialises writers), number the rows from the old head, insert
them, commit; only then are the Futures resolved with their ``seq``. A request is answered after
``record`` returns, so no answered request lacks its audit row, while concurrent requests share one
commit. If a batch fails, its transaction rolls back whole and every caller in it gets ``AuditError``.
Any number of services (processes) may write to one database: the head lock keeps ``seq`` gapless,
and commits happen in ``seq`` order, so readers always see the prefix 1..head.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, Row, String, func, select

from medweave.audit.events import AuditRecord
from medweave.audit.tables import audit_head, audit_log
from medweave.db import read_tx, sqlite_writer_lock
from medweave.errors import MedweaveError

_STOP = object()
_log = logging.getLogger(__name__)
_HEAD = select(audit_head.c.last_seq).where(audit_head.c.id == 1)
_MOVE_HEAD = "UPDATE audit_head SET last_seq = last_seq + %s WHERE id = 1 RETURNING last_seq"
_SEED_HEAD = "INSERT INTO audit_head (id, last_seq) VALUES (1, 0)"
_COLUMNS = (
    "seq",
    "recorded",
    "interaction",
    "action",
    "outcome",
    "user_ref",
    "patient_id",
    "entity_type",
    "entity_id",
    "body",
)
_INSERT = f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"  # noqa: S608 (constants only)
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


class AuditError(MedweaveError):
    """The audit trail could not be written; the request it belongs to must not be answered as done."""

    status = 503
    code = "transient"
    exit_code = 7


@dataclass
class AuditStats:
    """Counters of one service's writer (read them for tests and metrics)."""

    commits: int = 0
    events: int = 0
    failed_batches: int = 0
    largest_batch: int = 0


def _check(record: AuditRecord) -> None:
    """Refuse, for its caller only, a record that the database would refuse for the whole batch."""
    if record.recorded.tzinfo is None:
        raise ValueError("recorded must be timezone-aware")
    if record.action not in ("C", "R", "U", "D", "E") or record.outcome not in (0, 4, 8, 12):
        raise ValueError("bad action or outcome")
    for col in audit_log.columns:
        value = getattr(record, col.key, None)
        if (
            isinstance(col.type, String)
            and col.type.length
            and isinstance(value, str)
            and (len(value) > col.type.length)
        ):
            raise ValueError(f"audit {col.key} longer than {col.type.length}")


def _row(seq: int, r: AuditRecord, lite: bool) -> tuple[Any, ...]:
    # SQLite gets recorded in SQLAlchemy's DATETIME text form, so reads through Core parse it.
    recorded = r.recorded.astimezone(UTC).strftime(_SQLITE_TIME) if lite else r.recorded
    who_what = (r.interaction, r.action, r.outcome, r.user_ref, r.patient_id, r.entity_type, r.entity_id)
    return (seq, recorded, *who_what, r.body)


def _to_record(row: Row[Any]) -> AuditRecord:
    return AuditRecord(**{c.key: row._mapping[c.key] for c in audit_log.columns})


class AuditService:
    """Writes AuditEvents with group commit and answers queries on the trail."""

    def __init__(self, engine: Engine, *, max_batch: int = 500, linger_s: float = 0.0) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._raw: Any = None  # the writer thread's own DBAPI connection
        self._move = self._insert = self._seed = ""
        self.stats = AuditStats()
        self._thread = threading.Thread(target=self._run, name="medweave-audit-writer", daemon=True)
        self._thread.start()

    # -- writing ---------------------------------------------------------------------------------

    def submit(self, event: AuditRecord | Mapping[str, Any]) -> Future[int]:
        """Queue an event (an ``AuditRecord`` or an AuditEvent dict); the Future gives its ``seq`` once
        committed. Wait for it before answering the request the event belongs to."""
        record = event if isinstance(event, AuditRecord) else AuditRecord.from_event(event)
        _check(record)
        future: Future[int] = Future()
        with self._lock:
            if self._closed:
                raise AuditError("the audit service is closed")
            self._queue.put((record, future))
        return future

    def record(self, event: AuditRecord | Mapping[str, Any], *, timeout: float | None = None) -> int:
        """Write an event and return its ``seq`` once it is committed (durable, visible to all)."""
        return self.submit(event).result(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write everything already submitted, then stop the writer. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        self._thread.join(timeout)
        if not self._thread.is_alive() and self._raw is not None:
            raw, self._raw = self._raw, None
            with contextlib.suppress(Exception):
                raw.close()

    def __enter__(self) -> AuditService:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            deadline = time.monotonic() + self._linger_s
            while len(batch) < self._max_batch:
                wait = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[tuple[AuditRecord, Future[int]]]) -> None:
        # A cancelled Future is still written: a caller cannot drop its audit by giving up.
        live = [future.set_running_or_notify_cancel() for _, future in batch]
        try:
            first = self._write([record for record, _ in batch])
        except Exception as exc:
            # Neither the message nor a chained cause may carry the statement's parameters (PHI).
            code = getattr(getattr(exc, "orig", None), "sqlstate", None)
            reason = type(exc).__name__ + (f" (SQLSTATE {code})" if code else "")
            _log.error("audit batch of %d events failed and was rolled back: %s", len(batch), reason)
            self.stats.failed_batches += 1
            for (_, future), ok in zip(batch, live, strict=True):
                if ok:
                    future.set_exception(AuditError(f"audit write failed: {reason}"))
            return
        self.stats.commits += 1
        self.stats.events += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for i, ((_, future), ok) in enumerate(zip(batch, live, strict=True)):
            if ok:
                future.set_result(first + i)

    def _write(self, records: list[AuditRecord]) -> int:
        """One transaction: move the head (which locks it), insert the batch. Returns the first seq.

        The writer thread keeps one DBAPI connection of its own and talks to the driver directly:
        measured on SQLite, SQLAlchemy's per-transaction machinery cost about nine times the commit
        itself, and this runs for every few requests. SQLite writers still queue on the process's
        writer lock and take the database lock up front (``BEGIN IMMEDIATE``), as ``write_tx`` does.
        """
        n = len(records)
        lite = self._engine.dialect.name == "sqlite"
        guard = sqlite_writer_lock(self._engine) if lite else contextlib.nullcontext()
        with guard:
            raw = self._connection()
            cur = raw.cursor()
            try:
                if lite:
                    cur.execute("BEGIN IMMEDIATE")
                cur.execute(self._move, (n,))
                found = cur.fetchone()
                if found is None:  # first write ever (a migration normally seeds the row)
                    cur.execute(self._seed)
                    cur.execute(self._move, (n,))
                    found = cur.fetchone()
                last = int(found[0]) - n
                cur.executemany(self._insert, [_row(last + 1 + i, r, lite) for i, r in enumerate(records)])
                if lite:
                    cur.execute("COMMIT")
                else:
                    raw.commit()
            except BaseException:
                self._discard()
                raise
            finally:
                cur.close()
        return last + 1

    def _connection(self) -> Any:
        if self._raw is None:
            self._raw = self._engine.raw_connection()
            qmark = self._engine.dialect.paramstyle == "qmark"
            self._move = _MOVE_HEAD.replace("%s", "?") if qmark else _MOVE_HEAD
            self._insert = _INSERT.replace("%s", "?") if qmark else _INSERT
            self._seed = _SEED_HEAD
        return self._raw

    def _discard(self) -> None:
        """Roll back and drop the writer's connection after a failure; the next batch opens a new one."""
        raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.rollback() if self._engine.dialect.name != "sqlite" else raw.cursor().execute("ROLLBACK")
            with contextlib.suppress(Exception):
                raw.invalidate()

    # -- reading ---------------------------------------------------------------------------------

    def for_patient(
        self, patient_id: str, *, limit: int = 50, before_seq: int | None = None
    ) -> list[AuditRecord]:
        """Events about a patient, newest first ("who looked at my record"); page with ``before_seq``."""
        query = select(audit_log).where(audit_log.c.patient_id == patient_id)
        if before_seq is not None:
            query = query.where(audit_log.c.seq < before_seq)
        with read_tx(self._engine) as conn:
            rows = conn.execute(query.order_by(audit_log.c.seq.desc()).limit(limit)).all()
        return [_to_record(r) for r in rows]

    def since(self, seq: int, limit: int = 1000) -> list[AuditRecord]:
        """Events after ``seq``, in order (the ledger's feed)."""
        query = select(audit_log).where(audit_log.c.seq > seq).order_by(audit_log.c.seq).limit(limit)
        with read_tx(self._engine) as conn:
            return [_to_record(r) for r in conn.execute(query).all()]

    def head(self) -> int:
        """The last committed ``seq`` (0 when the trail is empty)."""
        with read_tx(self._engine) as conn:
            return int(conn.execute(_HEAD).scalar() or 0)

    def count(self) -> int:
        with read_tx(self._engine) as conn:
            return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())

    def check_gapless(self, *, limit: int = 10_000) -> list[int]:
        """Sequence numbers in 1..head that have no row (at most ``limit`` of them); [] when whole."""
        head = self.head()  # first: rows committed after this read cannot look like gaps
        seq = audit_log.c.seq
        nxt = func.lead(seq).over(order_by=seq).label("nxt")
        window = select(seq, nxt).where(seq <= head).subquery()
        with read_tx(self._engine) as conn:
            lo, hi = conn.execute(select(func.min(seq), func.max(seq)).where(seq <= head)).one()
            gaps = conn.execute(
                select(window).where(window.c.nxt > window.c.seq + 1).order_by(window.c.seq)
            ).all()
        if lo is None:
            ranges = [(1, head + 1)]
        else:
            ranges = [(1, lo), *((a + 1, b) for a, b in gaps), (hi + 1, head + 1)]
        missing: list[int] = []
        for start, stop in ranges:
            missing.extend(range(start, min(stop, start + limit - len(missing))))
            if len(missing) >= limit:
                break
        return missing
