"""Crash safety: a writer appending under load is killed with SIGKILL at random points, 20 times,
on SQLite and on PostgreSQL. After each restart the ledger verifies, and every write the writer
saw acknowledged is in the database and committed in the ledger."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jobs_support import database

from medweave.errors import NotFound
from medweave.ledger import selfcheck
from medweave.ledger.note import generate, parse_skey
from medweave.ledger.service import LedgerService
from medweave.records import feed
from medweave.security.crypto import MasterKey

WRITER = Path(__file__).with_name("ledger_crash_support.py")
KILLS = 20


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_sigkill_loses_no_acknowledged_entry(kind: str, tmp_path: Path) -> None:
    master = MasterKey.generate()
    skey, _ = generate("crash.test/ledger")
    key_file = tmp_path / "ledger.key"
    key_file.write_text(skey)
    rng = random.Random(20261201)
    acked: list[str] = []
    with database(kind, tmp_path) as (url, engine):
        ledger = LedgerService(engine, master=master, signer=parse_skey(skey))
        for run in range(KILLS):
            out = tmp_path / f"writer-{run}.out"
            with out.open("wb") as sink:
                writer = subprocess.Popen(
                    [
                        sys.executable,
                        str(WRITER),
                        "--db",
                        url,
                        "--master",
                        master.to_b64(),
                        "--log-key",
                        str(key_file),
                        "--seed",
                        str(run),
                    ],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    env=os.environ.copy(),
                )
                deadline = time.monotonic() + 60
                while out.read_text().count("ACK ") < 3:  # it is writing (and sequencing) under load
                    assert writer.poll() is None, out.read_text()[-2000:]
                    assert time.monotonic() < deadline, "the writer never got going"
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, 0.6))
                writer.send_signal(signal.SIGKILL)
                writer.wait(30)
            lines = out.read_text(errors="replace").splitlines()
            acked += [
                line.removeprefix("ACK ")
                for line in lines
                if line.startswith("ACK ") and line.count("/") == 3
            ]

            # The restart: a new sequencer picks up what the killed one left; then the self-audit.
            ledger.sequence_all()
            report = selfcheck.check(engine, master=master, log=ledger.verifier, tag_key=ledger.tag_key)
            assert report.ok, (run, report.problems)
            assert (report.queued_audit, report.queued_versions) == (0, 0)
            with engine.connect() as conn:
                for ref in acked:
                    res_type, res_id, _, vid = ref.split("/")
                    assert feed.version(conn, res_type=res_type, res_id=res_id, version_id=int(vid)), ref
            missing = [ref for ref in acked if not _committed(ledger, ref)]
            assert not missing, (run, missing[:5])
        size = ledger.size()
    print(f"\n{kind}: {KILLS} SIGKILLs, {len(acked)} acknowledged writes, all committed; ledger size {size}")


def _committed(ledger: LedgerService, ref: str) -> bool:
    try:
        ledger.entry(kind="version", ref=ref)
    except NotFound:
        return False
    return True
