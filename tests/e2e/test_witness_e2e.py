"""Two Medweave instances on loopback, each with its own data folder and port: our log
(``medweave serve``) and a witness (``medweave ledger witness serve``). Checkpoints get cosigned;
a log whose history was rewritten is refused by the witness."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from medweave.audit import Actor, AuditService, rest_event
from medweave.db import make_engine
from medweave.ledger.checkpoint import cosignatures, open_checkpoint
from medweave.ledger.note import parse_skey, parse_vkey
from medweave.ledger.service import LedgerService
from medweave.ledger.witnessing import Witness, request_cosignatures
from medweave.migrate import upgrade
from medweave.security.crypto import MasterKey

MEDWEAVE = str(Path(sys.executable).with_name("medweave"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDWEAVE_")}
    return {**env, "MEDWEAVE_DATA_DIR": str(data), **extra}


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([MEDWEAVE, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"medweave {' '.join(args)}: {done.stderr}"
    return done.stdout


def _until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[dict[str, Any]]:
    log_dir, wit_dir = tmp_path / "log", tmp_path / "witness"
    log_port, wit_port = _port(), _port()
    wit_env = _env(wit_dir)
    _run(wit_env, "db", "upgrade")
    wit_key = wit_dir / "witness.key"
    wit_vkey = _run(
        wit_env, "ledger", "witness", "keygen", "--name", "witness.test", "--key", str(wit_key)
    ).strip()
    log_env = _env(
        log_dir,
        MEDWEAVE_BASE_URL=f"http://127.0.0.1:{log_port}",
        MEDWEAVE_PORT=str(log_port),
        MEDWEAVE_LEDGER_INTERVAL_MS="100",
        MEDWEAVE_LEDGER_WITNESSES=f"http://127.0.0.1:{wit_port} {wit_vkey}",
    )
    _run(log_env, "db", "upgrade")
    log_vkey = _run(log_env, "ledger", "vkey").strip()
    assert "now witnessing" in _run(wit_env, "ledger", "witness", "add-log", log_vkey)
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []
    try:
        for name, env, args in (
            (
                "witness",
                wit_env,
                ["ledger", "witness", "serve", "--key", str(wit_key), "--port", str(wit_port)],
            ),
            ("log", log_env, ["serve"]),
        ):
            out = (logs / f"{name}.log").open("wb")
            procs.append(subprocess.Popen([MEDWEAVE, *args], env=env, stdout=out, stderr=subprocess.STDOUT))
        base = f"http://127.0.0.1:{log_port}"
        _until(lambda: httpx.get(f"{base}/ledger/vkey").status_code == 200, "the log server")
        yield {
            "base": base,
            "witness_url": f"http://127.0.0.1:{wit_port}",
            "log_vkey": log_vkey,
            "wit_vkey": wit_vkey,
            "log_dir": log_dir,
            "wit_dir": wit_dir,
            "log_env": log_env,
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in sorted(logs.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")


def _cosigned(base: str, log_vkey: str, wit_vkey: str, beyond: int = 0) -> tuple[int, str] | None:
    note = httpx.get(f"{base}/ledger/checkpoint").text
    if not note.startswith("127.0.0.1"):
        return None
    checkpoint, _ = open_checkpoint(note, log=parse_vkey(log_vkey))
    if checkpoint.size <= beyond or not cosignatures(note, [parse_vkey(wit_vkey)]):
        return None
    return checkpoint.size, note


def test_checkpoints_are_cosigned_and_a_rewritten_history_is_refused(
    instances: dict[str, Any], tmp_path: Path
) -> None:
    base, log_vkey, wit_vkey = instances["base"], instances["log_vkey"], instances["wit_vkey"]
    for _ in range(3):  # refused requests are audited too, and every audit event is a leaf
        assert httpx.get(f"{base}/fhir/Patient").status_code == 401
    first, note = _until(lambda: _cosigned(base, log_vkey, wit_vkey, beyond=2), "a cosigned checkpoint of 3")
    for _ in range(5):
        httpx.get(f"{base}/fhir/Observation")
    # Eight events in all: wait for the checkpoint of all of them, so the log stands still after it.
    second, note = _until(lambda: _cosigned(base, log_vkey, wit_vkey, beyond=7), "a cosigned checkpoint of 8")
    assert (first, second) == (3, 8)
    page = httpx.get(f"{base}/ledger").text
    assert log_vkey in page

    # The witness keeps what it cosigned, in its own database.
    wit_db = make_engine(f"sqlite:///{instances['wit_dir'] / 'medweave.db'}")
    with wit_db.connect() as conn:
        held = conn.execute(text("SELECT size FROM witness_logs")).scalar_one()
    assert held >= second

    # The log's own self-audit and the offline checks agree.
    _run(instances["log_env"], "ledger", "verify")
    saved = tmp_path / "checkpoint.txt"
    saved.write_text(note)
    assert "valid" in _run(instances["log_env"], "ledger", "verify-note", "--vkey", log_vkey, str(saved))

    # A log with the same key but another history (an operator rewrote it) asks to be cosigned.
    forged_dir = tmp_path / "forged"
    (forged_dir / "secrets").mkdir(parents=True)
    shutil.copy(instances["log_dir"] / "secrets" / "ledger.key", forged_dir / "secrets" / "ledger.key")
    engine = make_engine(f"sqlite:///{forged_dir / 'medweave.db'}")
    upgrade(engine)
    with AuditService(engine) as audit:
        for n in range(held + 5):
            audit.record(rest_event("read", status=200, actor=Actor(f"forger{n}")))
    signer = parse_skey((forged_dir / "secrets" / "ledger.key").read_text().strip())
    forged = LedgerService(engine, master=MasterKey.generate(), signer=signer)
    forged.sequence_all()
    witness = Witness(instances["witness_url"], parse_vkey(wit_vkey))
    outcome = request_cosignatures(forged, [witness])[witness.name]
    assert outcome.startswith("refused: 422"), outcome
    with wit_db.connect() as conn:
        assert conn.execute(text("SELECT size FROM witness_logs")).scalar_one() == held
    wit_db.dispose()
    engine.dispose()
