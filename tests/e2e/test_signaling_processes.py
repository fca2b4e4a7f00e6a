"""Signaling across two real app processes on one Redis: the patient's socket is on one
``medweave serve``, the clinician's on another (as behind a load balancer), and offers, answers,
candidates, chat and joins still reach the other side."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import update
from websockets.asyncio.client import ClientConnection, connect

from medweave.config import Settings
from medweave.identity import IdentityService
from medweave.migrate import upgrade
from medweave.security.principal import Principal
from medweave.telehealth import rooms
from medweave.telehealth.availability import SlotTime, VisitType
from medweave.telehealth.booking import book
from medweave.telehealth.calls import Calls
from medweave.telehealth.tables import telehealth_bookings
from medweave.web.app import build_authenticator, build_records

MEDWEAVE = str(Path(sys.executable).with_name("medweave"))
PASSWORD = "a long test password 4711"
REDIS_URL = os.environ.get("MEDWEAVE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_for(data: Path, port: int, namespace: str) -> dict[str, str]:
    return {
        "MEDWEAVE_DATA_DIR": str(data),
        "MEDWEAVE_BASE_URL": f"http://127.0.0.1:{port}",
        "MEDWEAVE_TELEHEALTH_SIGNALING": REDIS_URL,
        "MEDWEAVE_JOBS_NAMESPACE": namespace,
    }


def waiting_visit(data: Path, namespace: str) -> dict[str, Any]:
    """A video visit whose patient waits, and a session plus room token for each side."""
    settings = Settings(data_dir=data, telehealth_signaling=REDIS_URL, jobs_namespace=namespace)
    records = build_records(settings)
    upgrade(records.engine)
    op = Principal.internal("test")
    practitioner = records.create(
        principal=op, res_type="Practitioner", data={"resourceType": "Practitioner"}
    )
    patient = records.create(principal=op, res_type="Patient", data={"resourceType": "Patient"})
    at = datetime.now(UTC).replace(microsecond=0)
    aid = book(
        records,
        principal=op,
        patient_id=patient.res_id,
        practitioner_id=practitioner.res_id,
        slot=SlotTime(at, at + timedelta(minutes=20)),
        visit=VisitType("standard", 20, 0, "video"),
    ).res_id
    with records.engine.begin() as conn:  # checked in: both may join the room
        conn.execute(
            update(telehealth_bookings)
            .where(telehealth_bookings.c.appointment_id == aid)
            .values(visit_state="waiting", checked_in_at=at)
        )
    identity = IdentityService(engine=records.engine, master=records.master)
    calls = Calls.from_settings(settings, token_secret=build_authenticator(settings).secret)
    sides = {}
    for role, link in (
        ("patient", {"patient_id": patient.res_id}),
        ("clinician", {"practitioner_id": practitioner.res_id}),
    ):
        user = identity.create_user(username=f"{role}-one", role=role, password=PASSWORD, **link)
        token, _csrf = identity.create_session(user.id, mfa=True)
        room_token = rooms.issue(
            calls.room_key,
            room=aid,
            who=f"user:{user.id}",
            role=role,
            name=role,
            expires=datetime.now(UTC) + timedelta(minutes=5),
        )
        sides[role] = {"cookie": f"medweave-session={token}", "hello": {"type": "hello", "token": room_token}}
    if records.trail.audit is not None:
        records.trail.audit.close()
    records.engine.dispose()
    return {"room": aid, **sides}


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[dict[str, Any]]:
    data, namespace = tmp_path / "data", f"medweave-test-{secrets.token_hex(4)}"
    done = subprocess.run(
        [MEDWEAVE, "db", "upgrade"],
        env={**os.environ, **settings_for(data, 1, namespace)},
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    visit = waiting_visit(data, namespace)
    ports = [free_port(), free_port()]
    procs = []
    try:
        for port in ports:
            env = {**os.environ, **settings_for(data, port, namespace), "MEDWEAVE_LEDGER_INTERVAL_MS": "0"}
            procs.append(
                subprocess.Popen(
                    [MEDWEAVE, "serve", "--host", "127.0.0.1", "--port", str(port)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        for port in ports:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "medweave serve did not start"
                    time.sleep(0.2)
        yield {"ports": ports, **visit}
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


async def joined(port: int, room: str, side: dict[str, Any]) -> tuple[ClientConnection, dict[str, Any]]:
    origin = f"http://127.0.0.1:{port}"
    ws = await connect(
        f"ws://127.0.0.1:{port}/visits/{room}/signal",
        additional_headers={"Origin": origin, "Cookie": side["cookie"]},
        open_timeout=30,
    )
    await ws.send(orjson.dumps(side["hello"]).decode())
    return ws, await next_of(ws, "welcome")


async def next_of(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        if message["type"] == kind:
            return message


def test_a_call_split_across_two_app_processes(two_servers: dict[str, Any]) -> None:
    room, (one, two) = two_servers["room"], two_servers["ports"]

    async def scenario() -> None:
        patient, welcome = await joined(one, room, two_servers["patient"])
        clinician, _ = await joined(two, room, two_servers["clinician"])
        arrived = await next_of(patient, "peer-joined")  # the clinician joined on the other process
        assert arrived["role"] == "clinician"
        offer = {"description": {"type": "offer", "sdp": "v=0 offer"}}
        await patient.send(orjson.dumps({"type": "signal", "to": arrived["peer"], "data": offer}).decode())
        got = await next_of(clinician, "signal")
        assert got["data"] == offer and got["from"] == welcome["peer"]
        answer = {"description": {"type": "answer", "sdp": "v=0 answer"}}
        await clinician.send(orjson.dumps({"type": "signal", "to": got["from"], "data": answer}).decode())
        assert (await next_of(patient, "signal"))["data"] == answer
        await clinician.send(orjson.dumps({"type": "chat", "text": "Hello from the other process"}).decode())
        assert (await next_of(patient, "chat"))["text"] == "Hello from the other process"
        await clinician.close()
        assert (await next_of(patient, "peer-left"))["peer"] == arrived["peer"]
        await patient.close()

    asyncio.run(scenario())
