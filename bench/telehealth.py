"""Telehealth benchmark: join time of real browser calls, and signaling capacity next to a minimal
``websockets`` relay (the ceiling).

Run it (not a test; about two minutes on 2 CPUs; the join part needs root for ``unshare -n``,
and Debian's Chromium)::

    .venv/bin/python bench/telehealth.py [--calls 10] [--rooms 500] [--exchanges 40] [--json FILE]
    .venv/bin/python bench/telehealth.py --quick      # smoke run: 3 calls, 100 rooms

**Join time.** ``--calls`` video visits, one after the other, between two Chromium contexts with
fake camera and microphone, inside a loopback-only network namespace (as the browser tests). For
each, the patient waits checked in on the visit page; the clinician, on the same page, clicks
"Admit the patient" (the second participant joining: the page reloads into the call, opens the
signaling socket and negotiates). The time runs from that click to the first decoded video frame
(``getStats`` inbound-rtp ``framesDecoded > 0``, polled every 10 ms) on the clinician's side and
on the patient's side; the later of the two is the call's join time. Median and p95 over the
calls. Target (issue 5): median under 1 s.

**Signaling capacity.** ``medweave serve`` (one uvicorn worker, SQLite, the embedded hub) with
``--rooms`` booked visits; ``2 x rooms`` WebSocket clients (the whole protocol: same-origin,
session cookie, room token hello) join, two per room, and the traffic starts once all have
joined. Then, in every room at once, the two clients relay ``--exchanges`` messages back and
forth: an SDP offer, an answer, then ICE candidates, each of realistic size (about 3 KB for SDP).
Relay latency is send-to-receive of every message (one clock: all on this machine); throughput is
messages relayed per second of the busy period. Two phases:

* **saturated**: a client answers each message the moment it arrives, so 500 messages are always
  in flight: the most the server can relay, which is what the throughput target is about. Its
  latency is mostly queueing behind the other 499 (Little's law), so it depends on the machine.
* **paced**: a client answers ``--think-ms`` (20) ms after a message arrives, about what a browser
  takes to apply a description and answer, or to gather its next candidate. This is the load of
  500 calls setting up at once, and its latency is the one the p99 target is about.

The ceiling is the same clients and traffic through a minimal ``websockets`` relay
(``ceiling_relay`` below: no authentication, no audit, a dict of rooms), in its own process;
like ``medweave serve`` it does not negotiate per-message deflate.
Clients run in ``--client-processes`` processes on the same machine. Targets (issue 5): p99 under
50 ms (paced), and at least 0.5x the ceiling's throughput (saturated). Each is run ``--repeats``
times, systems interleaved; figures are medians, ratios medians of run-by-run ratios.

Exit status 0 when all targets pass, 2 when one fails, 1 when the benchmark itself failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

ROOT = Path(__file__).resolve().parents[1]
JOIN_MEDIAN_S = 1.0
RELAY_P99_MS = 50.0
THROUGHPUT_SHARE = 0.5
OFFER_SDP = "v=0\r\n" + "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n" * 40  # ~3 KB
CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0", "sdpMid": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(xs: Sequence[float], q: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the ceiling: a minimal websockets relay ---------------------------------------------------------


async def ceiling_relay(port: int, ready: Any) -> None:
    rooms: dict[str, dict[str, ServerConnection]] = {}

    async def handler(ws: ServerConnection) -> None:
        hello = orjson.loads(await ws.recv())
        room, me = hello["room"], secrets.token_urlsafe(9)
        peers = rooms.setdefault(room, {})
        await ws.send(
            orjson.dumps({"type": "welcome", "peer": me, "peers": [{"peer": p} for p in peers]}).decode()
        )
        for other in list(peers.values()):
            await other.send(orjson.dumps({"type": "peer-joined", "peer": me}).decode())
        peers[me] = ws
        try:
            async for raw in ws:
                msg = orjson.loads(raw)
                target = peers.get(msg.get("to"))
                if target is not None:
                    await target.send(
                        orjson.dumps({"type": "signal", "from": me, "data": msg["data"]}).decode()
                    )
        finally:
            peers.pop(me, None)

    # Like `medweave serve`: no per-message deflate (see cli/main.py), so both do the same work.
    async with serve(handler, "127.0.0.1", port, max_size=2**20, compression=None):
        ready.set()
        await asyncio.Future()


def run_ceiling(port: int, ready: Any) -> None:
    asyncio.run(ceiling_relay(port, ready))


# -- the clients ---------------------------------------------------------------------------------------


async def room_pair(
    url: str,
    hellos: tuple[dict[str, Any], dict[str, Any]],
    headers: list[dict[str, str]],
    exchanges: int,
    start: Any,
    joined: Any,
    think: float,
) -> tuple[list[float], float, float]:
    """Two clients of one room: join, wait for the start, then relay ``exchanges`` messages; each
    side answers ``think`` seconds after a message arrives (0: at once)."""
    latencies: list[float] = []
    a = await connect(url, additional_headers=headers[0], max_size=2**20, open_timeout=60)
    await a.send(orjson.dumps(hellos[0]).decode())
    welcome_a = orjson.loads(await a.recv())
    b = await connect(url, additional_headers=headers[1], max_size=2**20, open_timeout=60)
    await b.send(orjson.dumps(hellos[1]).decode())
    welcome_b = orjson.loads(await b.recv())
    await a.recv()  # peer-joined
    peer_a, peer_b = welcome_a["peer"], welcome_b["peer"]
    joined()
    await start.wait()
    first = time.perf_counter()

    def message(n: int, to: str) -> str:
        if n == 0:
            data: dict[str, Any] = {"description": {"type": "offer", "sdp": OFFER_SDP}}
        elif n == 1:
            data = {"description": {"type": "answer", "sdp": OFFER_SDP}}
        else:
            data = {"candidate": CANDIDATE}
        data["t"] = time.time_ns()
        return orjson.dumps({"type": "signal", "to": to, "data": data}).decode()

    async def next_signal(ws: Any) -> dict[str, Any]:
        while True:
            msg = orjson.loads(await ws.recv())
            if msg["type"] == "signal":
                return dict(msg["data"])

    await a.send(message(0, peer_b))
    sockets = [(b, peer_a), (a, peer_b)]
    for n in range(1, exchanges + 1):
        receiver, back_to = sockets[(n - 1) % 2]
        data = await next_signal(receiver)
        latencies.append((time.time_ns() - data["t"]) / 1e6)
        if n < exchanges:
            if think:
                await asyncio.sleep(think)
            await receiver.send(message(n, back_to))
    last = time.perf_counter()
    await a.close()
    await b.close()
    return latencies, first, last


# -- our server ------------------------------------------------------------------------------------------


def prepare_clinic(data_dir: Path, base_url: str, rooms: int) -> list[dict[str, Any]]:
    """A clinic with ``rooms`` visits in the call, a clinician with two sessions per room, and the
    hello frames (room tokens) and headers of each client."""
    from sqlalchemy import update

    from medweave.config import Settings
    from medweave.identity import IdentityService
    from medweave.migrate import upgrade
    from medweave.security.principal import Principal
    from medweave.telehealth import rooms as room_tokens
    from medweave.telehealth.availability import SlotTime, VisitType
    from medweave.telehealth.booking import book
    from medweave.telehealth.calls import Calls
    from medweave.telehealth.tables import telehealth_bookings
    from medweave.web.app import build_authenticator, build_records

    settings = Settings(data_dir=data_dir, base_url=base_url)
    records = build_records(settings)
    upgrade(records.engine)
    calls = Calls.from_settings(settings, token_secret=build_authenticator(settings).secret)
    op = Principal.internal("bench")
    practitioner = records.create(
        principal=op, res_type="Practitioner", data={"resourceType": "Practitioner"}
    ).res_id
    patient = records.create(principal=op, res_type="Patient", data={"resourceType": "Patient"}).res_id
    identity = IdentityService(engine=records.engine, master=records.master)
    user = identity.create_user(
        username="bench-clinician",
        role="clinician",
        password="a long bench password 123",
        practitioner_id=practitioner,
    )
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    visit = VisitType("bench", 5, 0, "video")
    out = []
    for n in range(rooms):
        at = start + timedelta(minutes=5 * n)
        aid = book(
            records,
            principal=op,
            patient_id=patient,
            practitioner_id=practitioner,
            slot=SlotTime(at, at + timedelta(minutes=5)),
            visit=visit,
        ).res_id
        pair: dict[str, Any] = {}
        for side in ("a", "b"):
            token, _csrf = identity.create_session(user.id, mfa=True)
            room_token = room_tokens.issue(
                calls.room_key,
                room=aid,
                who=f"user:{user.id}",
                role="clinician",
                name="bench",
                expires=datetime.now(UTC) + timedelta(hours=2),
            )
            pair[f"hello_{side}"] = {"type": "hello", "token": room_token}
            pair[f"headers_{side}"] = {"Origin": base_url, "Cookie": f"medweave-session={token}"}
        pair["room"] = aid
        out.append(pair)
    # One bench clinician holds all 500 rooms, and a clinician is in one call at a time (a unique
    # index), so the visits stand in the waiting room, where the clinician may join too; the
    # socket relays offers, answers and candidates the same way in either state.
    with records.engine.begin() as conn:
        conn.execute(update(telehealth_bookings).values(visit_state="waiting"))
    if records.trail.audit is not None:
        records.trail.audit.close()
    records.engine.dispose()
    return out


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MEDWEAVE_DATA_DIR": str(data_dir), "MEDWEAVE_BASE_URL": f"http://127.0.0.1:{port}"}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "medweave"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("medweave serve did not start")


def capacity(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="medweave-bench-telehealth-"))
    ours_port, ceiling_port = free_port(), free_port()
    base = f"http://127.0.0.1:{ours_port}"
    t = time.monotonic()
    rooms = prepare_clinic(work / "data", base, args.rooms)
    print(
        f"prepared {args.rooms} visits and {2 * args.rooms} sessions in {time.monotonic() - t:.1f} s",
        flush=True,
    )
    server = start_server(work / "data", ours_port)
    ready = multiprocessing.Event()
    ceiling = multiprocessing.Process(target=run_ceiling, args=(ceiling_port, ready), daemon=True)
    ceiling.start()
    ready.wait(30)
    traffic = {
        "ours": [{**r, "url": f"ws://127.0.0.1:{ours_port}/visits/{r['room']}/signal"} for r in rooms],
        "ceiling": [
            {
                **r,
                "url": f"ws://127.0.0.1:{ceiling_port}/",
                "hello_a": {"room": r["room"]},
                "hello_b": {"room": r["room"]},
            }
            for r in rooms
        ],
    }
    phases = {"saturated": 0.0, "paced": args.think_ms / 1000}
    runs: dict[str, dict[str, list[dict[str, float]]]] = {p: {"ours": [], "ceiling": []} for p in phases}
    try:
        for repeat in range(args.repeats):
            for phase, think in phases.items():
                for name in ("ours", "ceiling"):
                    figures = drive(traffic[name], args, think=think)
                    runs[phase][name].append(figures)
                    print(
                        f"  run {repeat + 1} {phase:9s} {name:8s} p50 {figures['p50_ms']:6.2f} ms  "
                        f"p99 {figures['p99_ms']:6.2f} ms  {figures['per_s']:9.0f} msg/s",
                        flush=True,
                    )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        ceiling.terminate()
        shutil.rmtree(work, ignore_errors=True)
    summary: dict[str, Any] = {}
    for phase, by_name in runs.items():
        summary[phase] = {
            name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in by_name.items()
        }
        summary[phase]["ratio"] = statistics.median(
            o["per_s"] / c["per_s"] for o, c in zip(by_name["ours"], by_name["ceiling"], strict=True)
        )
    return summary


def drive(traffic: list[dict[str, Any]], args: argparse.Namespace, *, think: float) -> dict[str, float]:
    queue: Any = multiprocessing.Queue()
    shares = [s for s in (traffic[i :: args.client_processes] for i in range(args.client_processes)) if s]
    barrier: Any = multiprocessing.Barrier(len(shares))  # the traffic starts once every client joined
    procs = [
        multiprocessing.Process(target=per_room_process, args=(s, args.exchanges, barrier, think, queue))
        for s in shares
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    latencies = [x for r in results for x in r["latencies"]]
    busy = max(r["last"] for r in results) - min(r["first"] for r in results)
    expected = len(traffic) * args.exchanges
    if len(latencies) != expected:
        raise RuntimeError(f"{len(latencies)} of {expected} messages arrived")
    return {
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "per_s": len(latencies) / busy,
        "messages": float(len(latencies)),
    }


def per_room_process(
    rooms: list[dict[str, Any]], exchanges: int, barrier: Any, think: float, out: Any
) -> None:
    async def main() -> dict[str, Any]:
        start, all_joined = asyncio.Event(), asyncio.Event()
        count = [0]

        def joined() -> None:
            count[0] += 1
            if count[0] == len(rooms):
                all_joined.set()

        tasks = [
            asyncio.create_task(
                room_pair(
                    r["url"],
                    (r["hello_a"], r["hello_b"]),
                    [r["headers_a"], r["headers_b"]],
                    exchanges,
                    start,
                    joined,
                    think,
                )
            )
            for r in rooms
        ]
        await all_joined.wait()
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
        start.set()
        results = await asyncio.gather(*tasks)
        return {
            "latencies": [x for r in results for x in r[0]],
            "first": min(r[1] for r in results),
            "last": max(r[2] for r in results),
            "clock": time.perf_counter() - time.time(),
        }

    result = asyncio.run(main())
    result["first"] -= result["clock"]
    result["last"] -= result["clock"]
    out.put(result)


# -- join time (inside a loopback-only namespace) ------------------------------------------------------------


def join_times(args: argparse.Namespace) -> dict[str, Any]:
    """Re-run this script as ``--join-only`` inside ``unshare -n`` and read its figures."""
    out = Path(tempfile.mkdtemp(prefix="medweave-bench-join-")) / "join.json"
    me = Path(__file__).resolve()
    command = f"ip link set lo up && exec {sys.executable} {me} --join-only --calls {args.calls} --json {out}"
    run = subprocess.run(
        ["unshare", "-n", "sh", "-c", command], capture_output=True, timeout=900, check=False
    )
    if not out.exists():
        raise RuntimeError(f"the join-time run failed: {run.stderr.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def join_only(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "web"))
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    import threading
    from datetime import time as clock

    import uvicorn
    from call_driver import CALL_ARGS, inbound_frames
    from pages_support import PASSWORD, build_clinic, next_code
    from playwright.sync_api import expect, sync_playwright

    from medweave.audit import AuditService
    from medweave.db import make_engine
    from medweave.migrate import upgrade
    from medweave.records.service import RecordService
    from medweave.security.crypto import MasterKey
    from medweave.security.principal import Principal, Role
    from medweave.security.scopes import ScopeSet
    from medweave.telehealth import schedule, visits
    from medweave.telehealth.availability import Availability, Hours, SlotTime, VisitType
    from medweave.telehealth.booking import book

    work = Path(tempfile.mkdtemp(prefix="medweave-bench-join-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    engine = make_engine(f"sqlite:///{work / 'medweave.db'}")
    upgrade(engine)
    records = RecordService(
        engine=engine, master=MasterKey.generate(), base_url=f"{url}/fhir", audit=AuditService(engine)
    )
    clinic = build_clinic(records, work, base_url=url, enrolled=("grey",))
    kind = VisitType("quick", 5, 0, "video")
    schedule.publish(
        records,
        principal=Principal.internal("bench"),
        practitioner_id=clinic.practitioner_id,
        availability=Availability("UTC", tuple(Hours(clock(0), clock(23, 59), weekday=d) for d in range(7))),
        visit_types=(kind,),
        now=datetime.now(UTC),
    )
    alice = Principal(
        kind="user",
        subject="alice",
        scopes=ScopeSet.parse("patient/*.rs patient/Appointment.cu"),
        role=Role.PATIENT,
        patient_id=clinic.patient_id,
    )
    grey = Principal(
        kind="user",
        subject="grey",
        scopes=ScopeSet.parse("user/*.cruds"),
        role=Role.CLINICIAN,
        practitioner_id=clinic.practitioner_id,
    )
    server = uvicorn.Server(uvicorn.Config(clinic.app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    calls: list[dict[str, float]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CALL_ARGS, headless=True)
        patient_ctx, clinician_ctx = browser.new_context(), browser.new_context()
        patient, clinician = patient_ctx.new_page(), clinician_ctx.new_page()
        for tab, name in ((patient, "alice"), (clinician, "grey")):
            tab.set_default_timeout(20_000)
            tab.goto(f"{url}/signin")
            tab.get_by_label("Username").fill(name)
            tab.get_by_label("Password").fill(PASSWORD)
            tab.get_by_role("button", name="Sign in").click()
        clinician.get_by_label("Code").fill(
            next_code(clinic.identity, clinic.user_ids["grey"], clinic.secrets["grey"])
        )
        clinician.get_by_role("button", name="Continue").click()
        clinician.wait_for_url(f"{url}/patients")
        start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
        for n in range(args.calls):
            at = start + timedelta(minutes=5 * n)
            aid = book(
                records,
                principal=alice,
                patient_id=clinic.patient_id,
                practitioner_id=clinic.practitioner_id,
                slot=SlotTime(at, at + timedelta(minutes=5)),
                visit=kind,
            ).res_id
            visits.check_in(records, principal=alice, appointment_id=aid, now=at)
            patient.goto(f"{url}/visits/{aid}")
            expect(patient.locator("#signal-status")).to_have_text("Connected.")
            clinician.goto(f"{url}/visits/{aid}")
            admit = clinician.get_by_role("button", name="Admit the patient")
            expect(admit).to_be_visible()
            clicked = time.perf_counter()
            admit.click()
            seen: dict[str, float] = {}
            while len(seen) < 2 and time.perf_counter() - clicked < 20:
                for side, tab in (("clinician", clinician), ("patient", patient)):
                    if side not in seen:
                        try:
                            frames = inbound_frames(tab)
                        except Exception:  # the clinician's page is still loading
                            continue
                        if frames and max(frames) > 0:
                            seen[side] = time.perf_counter() - clicked
                time.sleep(0.01)
            if len(seen) < 2:
                raise RuntimeError(
                    f"call {n + 1}: no decoded frame on {sorted({'clinician', 'patient'} - set(seen))}"
                )
            calls.append({**seen, "join": max(seen.values())})
            visits.end(records, principal=grey, appointment_id=aid, now=at + timedelta(minutes=4))
            print(
                f"  call {n + 1}: clinician {seen['clinician'] * 1000:.0f} ms, "
                f"patient {seen['patient'] * 1000:.0f} ms",
                flush=True,
            )
        browser.close()
    server.should_exit = True
    joins = [c["join"] for c in calls]
    Path(args.json).write_text(
        json.dumps({"calls": calls, "median_s": statistics.median(joins), "p95_s": percentile(joins, 0.95)})
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument("--exchanges", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument(
        "--think-ms",
        type=float,
        default=20.0,
        help="in the paced phase, how long a client takes before it answers (a browser's SDP work)",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--join-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip-join", action="store_true", help="only the signaling capacity")
    args = parser.parse_args()
    if args.join_only:
        join_only(args)
        return 0
    if args.quick:
        args.calls, args.rooms, args.repeats = 3, 100, 1
    print(
        f"Medweave telehealth benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.node()}, {os.cpu_count()} CPUs"
    )
    try:
        joined = None
        if not args.skip_join:
            print(f"Join time over {args.calls} browser calls (loopback-only namespace):", flush=True)
            joined = join_times(args)
        print(
            f"Signaling capacity: {2 * args.rooms} clients in {args.rooms} rooms, "
            f"{args.exchanges} messages per room:",
            flush=True,
        )
        relay = capacity(args)
    except Exception as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    ok = True
    print()
    if joined is not None:
        passed = joined["median_s"] < JOIN_MEDIAN_S
        ok &= passed
        print(
            f"join time: median {joined['median_s'] * 1000:.0f} ms, p95 {joined['p95_s'] * 1000:.0f} ms "
            f"(target median < {JOIN_MEDIAN_S * 1000:.0f} ms: {'PASS' if passed else 'FAIL'})"
        )
    print(f"{'':38s}{'p50 ms':>10s}{'p99 ms':>10s}{'msg/s':>12s}")
    for phase in ("saturated", "paced"):
        for name, label in (("ours", "ours (medweave serve)"), ("ceiling", "ceiling (websockets relay)")):
            f = relay[phase][name]
            print(f"{phase + ', ' + label:38s}{f['p50_ms']:10.2f}{f['p99_ms']:10.2f}{f['per_s']:12.0f}")
    p99 = relay["paced"]["ours"]["p99_ms"]
    share = relay["saturated"]["ratio"]
    p99_ok, share_ok = p99 < RELAY_P99_MS, share >= THROUGHPUT_SHARE
    ok &= p99_ok and share_ok
    print(
        f"relay p99 at a browser's pace {p99:.1f} ms (target < {RELAY_P99_MS:.0f} ms: "
        f"{'PASS' if p99_ok else 'FAIL'}); saturated throughput {share:.2f}x the ceiling "
        f"(target >= {THROUGHPUT_SHARE}: {'PASS' if share_ok else 'FAIL'})"
    )
    if args.json:
        args.json.write_text(json.dumps({"join": joined, "relay": relay}, indent=2))
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
