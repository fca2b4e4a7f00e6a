"""The audit service: one ordered, gapless stream of AuditEvents, written with group commit.

``record`` (and ``record_all``, for the several events of one request) returns a ``seq`` only once
the event is committed, so no answered request lacks its audit row. Concurrent callers share
commits without a writer thread: callers queue their events, and whichever caller finds nobody
writing becomes the leader. The leader takes everything queued (up to ``max_batch``) and writes it
in ONE transaction on the service's own connection: move the ``audit_head`` row with
``UPDATE ... RETURNING``, which locks it (on SQLite ``BEGIN IMMEDIATE`` also serialises writers),
number the rows from the old head, insert them, commit. It then wakes the callers whose events are
done and hands the lead to the oldest caller still waiting, if any; while one leader commits, the
next batch gathers. Each leader writes one batch, so nobody's request waits behind a stream of
other people's events. If a batch fails, its transaction rolls back whole and every caller in it
gets ``AuditError``.

Measured (docs/benchmarks.md): handing each event to a writer thread and waking the caller back
cost more CPU than the commit itself, in a process whose request threads contend for the GIL.

Any number of services (processes) may write to one database: the head lock keeps ``seq``
gapless, and commits happen in ``seq`` order, so readers always see the prefix 1..head.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, Row, String, func, select

from medweave.audit.events import AuditRecord
from medweave.audit.tables import audit_head, audit_log
from medweave.db import read_tx, sqlite_writer_lock
from medweave.errors import MedweaveError

_log = logging.getLogger(__name__)
_INTERACTION = re.compile(r"[a-z$-]{1,32}")
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


#: The length-limited text columns, read off the table once (``_check`` runs for every event).
_LIMITS = tuple(
    (col.key, col.type.length)
    for col in audit_log.columns
    if isinstance(col.type, String) and col.type.length
)


def _check(record: AuditRecord) -> None:
    """Refuse, for its caller only, a record that the database would refuse for the whole batch."""
    if record.recorded.tzinfo is None:
        raise ValueError("recorded must be timezone-aware")
    if record.action not in ("C", "R", "U", "D", "E") or record.outcome not in (0, 4, 8, 12):
        raise ValueError("bad action or outcome")
    if not _INTERACTION.fullmatch(record.interaction):  # the ledger's leaf refuses anything else
        raise ValueError("interaction must be a short code")
    for key, length in _LIMITS:
        value = getattr(record, key, None)
        if isinstance(value, str) and len(value) > length:
            raise ValueError(f"audit {key} longer than {length}")


def _row(seq: int, r: AuditRecord, lite: bool) -> tuple[Any, ...]:
    # SQLite gets recorded in SQLAlchemy's DATETIME text form ("YYYY-MM-DD HH:MM:SS.ffffff", naive
    # UTC), so reads through Core parse it; isoformat spells that at a tenth of strftime's cost.
    naive = r.recorded.astimezone(UTC).replace(tzinfo=None)
    recorded = naive.isoformat(sep=" ", timespec="microseconds") if lite else r.recorded
    who_what = (r.interaction, r.action, r.outcome, r.user_ref, r.patient_id, r.entity_type, r.entity_id)
    return (seq, recorded, *who_what, r.body)


def _to_record(row: Row[Any]) -> AuditRecord:
    return AuditRecord(**{c.key: row._mapping[c.key] for c in audit_log.columns})


def read_after(conn: Connection, seq: int, *, limit: int) -> list[AuditRecord]:
    """Committed events after ``seq``, in order, in the caller's transaction (the ledger's feed).

    Commits happen in ``seq`` order under the head lock, so what a reader sees is always a
    prefix: an event after ``seq`` that is not visible yet cannot be skipped over."""
    query = select(audit_log).where(audit_log.c.seq > seq).order_by(audit_log.c.seq).limit(limit)
    return [_to_record(r) for r in conn.execute(query).all()]


def read_one(conn: Connection, seq: int) -> AuditRecord | None:
    row = conn.execute(select(audit_log).where(audit_log.c.seq == seq)).first()
    return _to_record(row) if row is not None else None


def read_many(conn: Connection, wanted: Sequence[int]) -> dict[int, AuditRecord]:
    """The stored events among ``wanted``, by ``seq``, in one query (missing ones are absent)."""
    if not wanted:
        return {}
    rows = conn.execute(select(audit_log).where(audit_log.c.seq.in_(list(wanted)))).all()
    return {int(r.seq): _to_record(r) for r in rows}


def seqs(conn: Connection, *, after: int = 0, batch: int = 10_000) -> Iterator[int]:
    """Every stored ``seq`` after ``after``, in order (gaps show)."""
    while True:
        rows = (
            conn.execute(
                select(audit_log.c.seq).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        yield from (int(s) for s in rows)
        after = int(rows[-1])


class _Caller:
    """One ``record_all`` call waiting for its events: woken when they are all done, or to lead."""

    __slots__ = ("gate", "lead", "left", "signalled")

    def __init__(self, events: int) -> None:
        self.gate = threading.Lock()
        self.gate.acquire()  # closed; ``wake`` opens it once, the caller's ``acquire`` consumes that
        self.left = events
        self.lead = False
        self.signalled = False


class _Ticket:
    __slots__ = ("caller", "error", "record", "seq")

    def __init__(self, record: AuditRecord, caller: _Caller) -> None:
        self.record = record
        self.caller = caller
        self.seq: int | None = None
        self.error: AuditError | None = None


class AuditService:
    """Writes AuditEvents with group commit and answers queries on the trail."""

    def __init__(self, engine: Engine, *, max_batch: int = 500) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._mutex = threading.Lock()  # guards everything below up to _raw
        self._idle = threading.Condition(self._mutex)  # notified when the last leader steps down
        self._pending: list[_Ticket] = []
        self._writing = False  # a leader is writing or about to; False implies nothing is pending
        self._closed = False
        self._raw: Any = None  # the DBAPI connection of this service's writes (one leader at a time)
        self._move = self._insert = self._seed = ""
        self.stats = AuditStats()

    # -- writing ---------------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Events waiting for a batch (a gauge for metrics; tests wait on it)."""
        with self._mutex:
            return len(self._pending)

    @property
    def writing(self) -> bool:
        """Whether a caller is writing a batch (or about to)."""
        return self._writing

    def record(self, event: AuditRecord | Mapping[str, Any]) -> int:
        """Write an event (an ``AuditRecord`` or an AuditEvent dict); return its ``seq`` once it is
        committed (durable, visible to all)."""
        return self.record_all([event])[0]

    def record_all(self, events: Sequence[AuditRecord | Mapping[str, Any]]) -> list[int]:
        """Write several events (one request's) in order; return their ``seq`` once all are committed.

        A record the database would refuse raises ``ValueError`` before anything is queued, so it
        fails its own caller only. Raises ``AuditError`` if the batch it went in failed.
        """
        records = [e if isinstance(e, AuditRecord) else AuditRecord.from_event(e) for e in events]
        for record in records:
            _check(record)
        if not records:
            return []
        caller = _Caller(len(records))
        tickets = [_Ticket(record, caller) for record in records]
        with self._mutex:
            if self._closed:
                raise AuditError("the audit service is closed")
            self._pending.extend(tickets)
            lead = not self._writing
            self._writing = True
        while True:
            if lead:
                lead = self._lead(caller)
                continue
            if caller.left == 0:
                break
            caller.gate.acquire()  # until a leader says we are done, or that we lead next
            with self._mutex:
                caller.signalled = False
                lead, caller.lead = caller.lead, False
        for ticket in tickets:
            if ticket.error is not None:
                raise ticket.error
        return [t.seq for t in tickets if t.seq is not None]

    def _lead(self, me: _Caller) -> bool:
        """Write one batch from the head of the queue, then wake who is done and hand on the lead.

        A batch takes whole callers: up to ``max_batch`` events, more only to finish the last
        caller's, so one call's events commit together or not at all. Returns True when ``me``
        leads again (earlier callers filled this batch)."""
        with self._mutex:
            end = min(len(self._pending), self._max_batch)
            while end < len(self._pending) and self._pending[end].caller is self._pending[end - 1].caller:
                end += 1
            batch = self._pending[:end]
            del self._pending[:end]
        error: AuditError | None = None
        interrupted: BaseException | None = None
        try:
            first = self._write([t.record for t in batch])
        except BaseException as exc:
            # Neither the message nor a chained cause may carry the statement's parameters (PHI).
            code = getattr(getattr(exc, "orig", None), "sqlstate", None)
            reason = type(exc).__name__ + (f" (SQLSTATE {code})" if code else "")
            _log.error("audit batch of %d events failed and was rolled back: %s", len(batch), reason)
            error = AuditError(f"audit write failed: {reason}")
            interrupted = None if isinstance(exc, Exception) else exc
            self.stats.failed_batches += 1
        else:
            self.stats.commits += 1
            self.stats.events += len(batch)
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        again = False
        with self._mutex:
            for i, ticket in enumerate(batch):
                if error is None:
                    ticket.seq = first + i
                else:
                    ticket.error = error
                ticket.caller.left -= 1
                if ticket.caller.left == 0 and ticket.caller is not me:
                    self._wake(ticket.caller)
            if interrupted is not None and me.left:  # this thread stops here: its queued events fail
                mine = [t for t in self._pending if t.caller is me]
                self._pending = [t for t in self._pending if t.caller is not me]
                for ticket in mine:
                    ticket.error = error
                me.left = 0
            if not self._pending:
                self._writing = False
                self._idle.notify_all()
            elif (nxt := self._pending[0].caller) is me:
                again = True
            else:
                nxt.lead = True
                self._wake(nxt)
        if interrupted is not None:
            raise interrupted
        return again

    @staticmethod
    def _wake(caller: _Caller) -> None:
        """Open a waiting caller's gate once (called with the mutex held)."""
        if not caller.signalled:
            caller.signalled = True
            caller.gate.release()

    def close(self) -> None:
        """Refuse new events, wait for the events already queued to be written. Idempotent."""
        with self._mutex:
            self._closed = True
            while self._writing:
                self._idle.wait()
            raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.close()

    def __enter__(self) -> AuditService:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _write(self, records: list[AuditRecord]) -> int:
        """One transaction: move the head (which locks it), insert the batch. Returns the first seq.

        The service keeps one DBAPI connection of its own and talks to the driver directly:
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
        with read_tx(self._engine) as conn:
            return read_after(conn, seq, limit=limit)

    def get(self, seq: int) -> AuditRecord | None:
        """One event by its sequence number."""
        with read_tx(self._engine) as conn:
            return read_one(conn, seq)

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
