"""The audit trail on SQLite and PostgreSQL: gapless numbering across writers, group commit,
durability before ``record`` returns, and all-or-nothing batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text

from medweave.audit import Actor, AuditError, AuditRecord, AuditService, rest_event
from medweave.audit.tables import audit_log
from medweave.db import make_engine, write_tx

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def db(engine: Engine) -> Engine:
    """The migrated database of the shared fixture (migration 0003 made the audit tables)."""
    return engine


@pytest.fixture
def other(db: Engine) -> Iterator[Engine]:
    """A second engine on the same database, like a second server process."""
    url = db.url.render_as_string(hide_password=False)
    if db.dialect.name == "postgresql":
        with db.connect() as conn:
            schema = conn.execute(text("select current_schema()")).scalar_one()
        eng = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    else:
        eng = make_engine(url)
    yield eng
    eng.dispose()


def event(n: int, *, patient: str | None = None, entity_id: str | None = None) -> AuditRecord:
    return AuditRecord.from_event(
        rest_event(
            "read",
            status=200,
            actor=Actor(f"Practitioner/d{n % 7}", address="10.0.0.1"),
            resource_type="Observation",
            resource_id=entity_id or f"o{n}",
            patient_id=patient or f"p{n % 5}",
            recorded=T0 + timedelta(seconds=n),
        )
    )


def test_two_services_sixteen_threads_number_gaplessly(db: Engine, other: Engine) -> None:
    total, threads = 2000, 8
    with AuditService(db) as one, AuditService(other) as two:

        def work(service: AuditService, start: int) -> list[int]:
            return [service.record(event(n)) for n in range(start, total, 2 * threads)]

        with ThreadPoolExecutor(2 * threads) as pool:
            jobs = [
                pool.submit(work, svc, i * 2 + k) for i in range(threads) for k, svc in enumerate((one, two))
            ]
            seqs = [s for job in jobs for s in job.result()]
        stats = (one.stats, two.stats)
        assert sorted(seqs) == list(range(1, total + 1))
        assert one.head() == two.head() == one.count() == total
        assert one.check_gapless() == []
        with other.connect() as conn:
            stored = conn.execute(select(audit_log.c.seq).order_by(audit_log.c.seq)).scalars().all()
        assert stored == list(range(1, total + 1))
        assert sum(s.events for s in stats) == total
        commits = sum(s.commits for s in stats)
        assert commits < total, f"no batching: {commits} commits for {total} events"
        print(
            f"\n{db.dialect.name}: {total} events in {commits} commits, largest batch "
            f"{max(s.largest_batch for s in stats)}"
        )


def test_record_returns_only_once_readable_elsewhere(db: Engine, other: Engine) -> None:
    missing: list[int] = []
    with AuditService(db) as service:

        def work(base: int) -> None:
            for n in range(base, base + 40):
                seq = service.record(event(n))
                with other.connect() as conn:
                    row = conn.execute(select(audit_log.c.entity_id).where(audit_log.c.seq == seq)).scalar()
                if row != f"o{n}":
                    missing.append(seq)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(0, 320, 40)))
    assert missing == []


def _poison(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER audit_poison BEFORE INSERT ON audit_log "
                "WHEN NEW.entity_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION audit_poison() RETURNS trigger AS $$ BEGIN "
                "IF NEW.entity_id = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER audit_poison BEFORE INSERT ON audit_log "
                "FOR EACH ROW EXECUTE FUNCTION audit_poison()"
            )


@contextmanager
def head_held(other: Engine) -> Iterator[None]:
    """Another writer holds the audit head, as a second server mid-commit would: leaders block."""
    with write_tx(other) as conn:
        if other.dialect.name == "postgresql":
            conn.execute(text("SELECT last_seq FROM audit_head WHERE id = 1 FOR UPDATE"))
        yield


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def test_a_failed_batch_fails_every_caller_in_it_and_writes_nothing(db: Engine, other: Engine) -> None:
    _poison(db)
    outcomes: dict[int, object] = {}

    def call(service: AuditService, n: int) -> None:
        try:
            outcomes[n] = service.record(event(n, entity_id="poison" if n == 3 else None))
        except AuditError as exc:
            outcomes[n] = exc

    with AuditService(db) as service:
        with head_held(other):
            leader = threading.Thread(target=call, args=(service, 0))
            leader.start()  # leads, and blocks on the held head with its batch of one
            _until(lambda: service.writing and service.queued == 0, "the first caller leads")
            time.sleep(0.2)
            rest = [threading.Thread(target=call, args=(service, n)) for n in range(1, 6)]
            for t in rest:
                t.start()
            _until(lambda: service.queued == 5, "five callers wait for the next batch")
        for t in [leader, *rest]:
            t.join(30)
        assert outcomes[0] == 1  # its own batch
        for n in range(1, 6):  # one batch, poisoned by event 3: every caller in it hears
            error = outcomes[n]
            assert isinstance(error, AuditError) and "audit write failed" in str(error)
            # No statement parameters (patient ids, bodies) in the error or a chained cause.
            assert error.__cause__ is None and "p3" not in str(error) and "o1" not in str(error)
        assert (service.stats.failed_batches, service.stats.commits) == (1, 1)
        assert service.count() == 1 and service.head() == 1
        # The stream goes on, gapless, after the failure.
        assert [service.record(event(n)) for n in range(3)] == [2, 3, 4]
        assert service.check_gapless() == []


def test_one_callers_events_commit_together_or_not_at_all(db: Engine) -> None:
    _poison(db)
    with AuditService(db) as service:
        with pytest.raises(AuditError, match="audit write failed"):
            service.record_all([event(1), event(2, entity_id="poison"), event(3)])
        assert service.head() == 0
        assert service.record_all([event(4), event(5)]) == [1, 2]


def test_a_bad_record_is_refused_for_its_caller_only(db: Engine) -> None:
    with AuditService(db) as service:
        with pytest.raises(ValueError, match="entity_id"):
            service.record_all([event(1), event(2, entity_id="x" * 65)])
        assert service.head() == 0  # nothing of the refused call was queued
        assert service.record(event(3)) == 1


def test_close_waits_for_queued_events_and_then_refuses(db: Engine, other: Engine) -> None:
    service = AuditService(db)
    seqs: list[int] = []
    callers = [threading.Thread(target=lambda n=n: seqs.append(service.record(event(n)))) for n in range(4)]
    closer = threading.Thread(target=service.close)
    with head_held(other):
        for t in callers:
            t.start()
        _until(lambda: service.writing and service.queued == 3, "one caller leads and three wait")
        closer.start()
        time.sleep(0.2)
        assert closer.is_alive(), "close returned while events were still queued"
    closer.join(30)
    for t in callers:
        t.join(30)
    assert sorted(seqs) == [1, 2, 3, 4] and service.count() == 4
    with pytest.raises(AuditError, match="closed"):
        service.record(event(5))
    service.close()  # idempotent


def test_queries_for_a_patient_newest_first_and_since(db: Engine) -> None:
    with AuditService(db) as service:
        for n in range(30):
            service.record(event(n, patient="me" if n % 3 == 0 else "other"))
        mine = service.for_patient("me", limit=4)
        assert [r.seq for r in mine] == [28, 25, 22, 19]
        assert all(r.patient_id == "me" and r.recorded.tzinfo is not None for r in mine)
        assert mine[0].recorded == T0 + timedelta(seconds=27) and mine[0].entity_id == "o27"
        page2 = service.for_patient("me", limit=4, before_seq=mine[-1].seq)
        assert [r.seq for r in page2] == [16, 13, 10, 7]
        assert [r.seq for r in service.since(25, limit=3)] == [26, 27, 28]
        assert service.since(30) == []
        # A row read back is the record written: same body and fields.
        again = service.since(0, limit=1)[0]
        assert again == AuditRecord(**{**event(0, patient="me").__dict__, "seq": 1})


def test_check_gapless_names_the_missing(db: Engine) -> None:
    with AuditService(db) as service:
        for n in range(10):
            service.record(event(n))
        with db.begin() as conn:
            conn.execute(audit_log.delete().where(audit_log.c.seq.in_([1, 4, 5, 10])))
        assert service.check_gapless() == [1, 4, 5, 10]
        assert service.check_gapless(limit=2) == [1, 4]


@pytest.mark.parametrize("max_batch", [1, 500])
def test_sixteen_threads_share_commits_up_to_max_batch(db: Engine, max_batch: int) -> None:
    per_thread, threads = 100, 16
    records = [event(n) for n in range(per_thread * threads)]
    with AuditService(db, max_batch=max_batch) as service:
        barrier = threading.Barrier(threads)

        def work(i: int) -> None:
            barrier.wait()
            for record in records[i::threads]:
                service.record(record)

        pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        stats = service.stats
        assert service.check_gapless() == [] and service.count() == len(records) == stats.events
    print(f"\n{db.dialect.name}, max_batch {max_batch}: {stats.events} events in {stats.commits} commits")
    assert stats.largest_batch <= max_batch
    if max_batch == 1:
        assert stats.commits == len(records)
    else:  # while one caller commits, the others' events gather into the next batch
        assert stats.commits < len(records) and stats.largest_batch > 1


def test_calls_of_many_events_are_never_split(db: Engine) -> None:
    """Batches take whole calls (beyond ``max_batch`` only to finish one); a caller whose events
    come after a full batch leads again or is handed the lead; each call's events stay in order
    and contiguous (one service queues first in, first out), and nobody is left waiting."""
    got: list[list[int]] = []
    with AuditService(db, max_batch=3) as service:

        def work(i: int) -> None:
            for k in range(20):
                got.append(service.record_all([event(i * 1000 + k * 10 + j) for j in range(1 + (i + k) % 5)]))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(8)))
        assert 3 <= service.stats.largest_batch <= 3 + 4  # a full batch, plus the rest of one call
        assert service.check_gapless() == []
    assert all(seqs == list(range(seqs[0], seqs[0] + len(seqs))) for seqs in got)
    assert sorted(s for seqs in got for s in seqs) == list(range(1, sum(map(len, got)) + 1))


def test_a_call_larger_than_max_batch_still_commits_whole(db: Engine) -> None:
    _poison(db)
    with AuditService(db, max_batch=2) as service:
        with pytest.raises(AuditError):
            service.record_all([event(n, entity_id="poison" if n == 4 else None) for n in range(5)])
        assert service.head() == 0  # not the first two of five
        assert service.record_all([event(n) for n in range(5)]) == [1, 2, 3, 4, 5]
        assert (service.stats.commits, service.stats.largest_batch) == (1, 5)


def test_an_interrupted_leader_leaves_the_service_usable(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A leader whose write is interrupted (KeyboardInterrupt, SystemExit) must not leave the
    service believing someone is still writing: later callers would wait for ever."""
    with AuditService(db) as service:
        real = service._write
        interrupt = [True]

        def write_once_interrupted(records: list[AuditRecord]) -> int:
            if interrupt.pop():
                raise KeyboardInterrupt
            return real(records)

        monkeypatch.setattr(service, "_write", write_once_interrupted)
        interrupt.append(False)
        interrupt.reverse()  # first call interrupted, the rest real
        with pytest.raises(KeyboardInterrupt):
            service.record_all([event(1), event(2)])
        assert not service.writing and service.queued == 0
        done: list[int] = []
        later = threading.Thread(target=lambda: done.append(service.record(event(3))))
        later.start()
        later.join(10)
        assert done == [1], "a caller after the interruption was left waiting"
