"""A writer for the ledger's crash test: it writes records (each write also leaves audit events)
while its sequencer commits them to the ledger, and prints ``ACK <type>/<id>/_history/<v>`` once
a write has returned. The test kills it with SIGKILL at random moments.

    python tests/integration/ledger_crash_support.py --db URL --master B64 --log-key FILE
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from medweave.audit import AuditService
from medweave.db import make_engine
from medweave.ledger.note import parse_skey
from medweave.ledger.service import LedgerService, Sequencer
from medweave.records.service import RecordService
from medweave.security.crypto import MasterKey
from medweave.security.principal import Principal


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--master", required=True)
    parser.add_argument("--log-key", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args(argv)
    engine = make_engine(opts.db)
    master = MasterKey.from_b64(opts.master)
    records = RecordService(
        engine=engine, master=master, base_url="http://crash/fhir", audit=AuditService(engine)
    )
    ledger = LedgerService(
        engine, master=master, signer=parse_skey(opts.log_key.read_text().strip()), batch=20
    )
    Sequencer(ledger, interval=0.02).start()
    rng = random.Random(opts.seed)
    me = Principal.internal("crash-writer")
    patients: list[str] = []
    while True:
        if not patients or rng.random() < 0.3:
            body = {"resourceType": "Patient", "name": [{"family": f"Crash{rng.randrange(10**6)}"}]}
            stored = records.create(principal=me, res_type="Patient", data=body)
            patients.append(stored.res_id)
        else:
            body = {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "subject": {"reference": f"Patient/{rng.choice(patients)}"},
                "valueQuantity": {"value": rng.randrange(40, 180), "unit": "/min"},
            }
            stored = records.create(principal=me, res_type="Observation", data=body)
        sys.stdout.write(f"ACK {stored.res_type}/{stored.res_id}/_history/{stored.version_id}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
