"""The audit trail on SQLite and PostgreSQL: gapless numbering across writers, group commit,
durability before ``record`` returns, and all-or-nothing batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text

from medweave.audit import Actor, AuditError, AuditRecord, AuditService, rest_event
from medweave.audit.tables import audit_head, audit_log
from medweave.db import make_engine

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


def test_a_failed_batch_fails_every_caller_and_writes_nothing(db: Engine) -> None:
    _poison(db)
    with AuditService(db, linger_s=0.5) as service:
        futures = [service.submit(event(n, entity_id="poison" if n == 3 else None)) for n in range(6)]
        for future in futures:
            with pytest.raises(AuditError, match="audit write failed") as info:
                future.result(timeout=30)
            # No statement parameters (patient ids, bodies) in the error or a chained cause.
            assert (
                info.value.__cause__ is None and "p3" not in str(info.value) and "o1" not in str(info.value)
            )
        assert (service.stats.failed_batches, service.stats.commits) == (1, 0)
        assert service.count() == 0 and service.head() == 0
        # The stream goes on, gapless, after the failure.
        assert [service.record(event(n)) for n in range(3)] == [1, 2, 3]
        assert service.check_gapless() == []


def test_a_bad_record_is_refused_for_its_caller_only(db: Engine) -> None:
    with AuditService(db, linger_s=0.2) as service:
        good = service.submit(event(1))
        with pytest.raises(ValueError, match="entity_id"):
            service.submit(event(2, entity_id="x" * 65))
        assert good.result(timeout=30) == 1


def test_close_flushes_and_then_refuses(db: Engine) -> None:
    service = AuditService(db, linger_s=0.05)
    futures = [service.submit(event(n)) for n in range(300)]
    service.close()
    assert sorted(f.result(timeout=0) for f in futures) == list(range(1, 301))
    with pytest.raises(AuditError, match="closed"):
        service.submit(event(1))
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


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_throughput_sixteen_threads(db: Engine) -> None:
    per_thread, threads = 250, 16
    records = [event(n) for n in range(per_thread * threads)]
    rates = {}
    for name, batch in (("group commit", 500), ("commit per event", 1)):
        with db.begin() as conn:
            conn.execute(audit_log.delete())
            conn.execute(audit_head.delete())
        with AuditService(db, max_batch=batch) as service:
            barrier = threading.Barrier(threads + 1)

            def work(i: int, service: AuditService = service, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                for record in records[i::threads]:
                    service.record(record)

            pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
            for t in pool:
                t.start()
            barrier.wait()
            start = time.perf_counter()
            for t in pool:
                t.join()
            rates[name] = len(records) / (time.perf_counter() - start)
            assert service.check_gapless() == [] and service.count() == len(records)
    print(f"\nSQLite, {threads} threads: " + ", ".join(f"{k} {v:,.0f} events/s" for k, v in rates.items()))
    assert rates["group commit"] > rates["commit per event"]
