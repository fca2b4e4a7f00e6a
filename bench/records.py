"""Record-store throughput benchmark: create, read, search and bundle import over HTTP.

Run it (not a test; it takes a few minutes)::

    .venv/bin/python bench/records.py [--db sqlite|postgres|both] [--seconds N] [--clients 16]

For each database it starts one ``medweave serve`` process on a free port (SQLite in a temporary
data directory; PostgreSQL in a fresh ``bench_<random>`` database that is dropped afterwards),
runs ``medweave db upgrade`` first, then drives it with ``--clients`` concurrent HTTP clients
(threads, each with its own keep-alive ``httpx.Client``). Every phase runs for ``--seconds``
and is repeated ``--repeats`` times; the table quotes medians of:

* requests per wall second (resources per second for import),
* requests per CPU second of the *server process* (``utime + stime`` from ``/proc/<pid>/stat``),
* client-side p50 and p99 latency,

next to HAPI FHIR's published figures from the Health Samurai FHIR server benchmark, with the
targets as pass/fail. A phase is written against a :class:`Target` (a base URL plus headers) so
that a second pass, with authentication, access checks and audit switched on, can run the same
phases and print the ratio. See ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

FHIR_JSON = "application/fhir+json"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BASE_URL = "postgresql://postgres@127.0.0.1:5432"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# HAPI FHIR in the Health Samurai FHIR server benchmark (8 vCPU): 3,058 CRUD requests/s and
# 2,214 resources/s bundle import. Per vCPU-second that is about 382 and 277.
HAPI_CRUD_PER_VCPU_S = 3058 / 8
HAPI_IMPORT_PER_VCPU_S = 2214 / 8
HAPI = {
    "create": HAPI_CRUD_PER_VCPU_S,
    "read": HAPI_CRUD_PER_VCPU_S,
    "search": HAPI_CRUD_PER_VCPU_S,
    "import": HAPI_IMPORT_PER_VCPU_S,
}
#: Targets, per server CPU-second (import: resources per server CPU-second).
TARGETS = {"read": 400.0, "create": 150.0, "import": 300.0}

# Types this server stores; Synthea bundles are filtered down to these.
SUPPORTED_TYPES = frozenset(
    {
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "CareTeam",
        "Encounter",
        "Observation",
        "Condition",
        "Questionnaire",
        "QuestionnaireResponse",
        "Schedule",
        "Slot",
        "Appointment",
        "Consent",
        "DocumentReference",
        "ServiceRequest",
        "ImagingStudy",
        "Device",
        "Flag",
        "Task",
        "CarePlan",
        "AuditEvent",
    }
)


class BenchError(RuntimeError):
    """The benchmark cannot go on (server failed to start, died, or answered nonsense)."""


# --- where a phase runs ---------------------------------------------------------------------------


@dataclass
class Target:
    """One server to drive: base URL, headers every request carries, the pid whose CPU is counted.

    The second pass (auth + access checks + audit on) builds another Target for the same server
    or a second one, with its bearer token in ``headers``, and compares results by ``label``.
    """

    label: str
    db: str
    base_url: str  # ends in /fhir
    server_pid: int
    headers: dict[str, str] = field(default_factory=dict)
    db_cpu: Callable[[], float] | None = None  # CPU seconds of the database's own processes


@dataclass
class Corpus:
    """What the phases share: ids created so far and the prepared import bundles."""

    bundles: list[tuple[bytes, int]]  # (JSON body, number of entries)
    patients: list[str] = field(default_factory=list)
    observations: list[tuple[str, str]] = field(default_factory=list)  # (patient id, LOINC code)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_patient(self, pid: str) -> None:
        with self.lock:
            self.patients.append(pid)

    def add_observation(self, pid: str, code: str) -> None:
        with self.lock:
            self.observations.append((pid, code))


@dataclass
class PhaseRun:
    op: str
    requests: int
    units: int  # requests, or resources for import
    errors: int
    wall_s: float
    server_cpu_s: float
    client_cpu_s: float
    db_cpu_s: float | None
    latencies: list[float]
    error_samples: list[str]

    @property
    def units_per_s(self) -> float:
        return self.units / self.wall_s if self.wall_s else 0.0

    @property
    def per_cpu_s(self) -> float:
        return self.units / self.server_cpu_s if self.server_cpu_s else float("nan")

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


# --- realistic small resources --------------------------------------------------------------------

_ROOTS = [
    "Ander",
    "Baxte",
    "Carri",
    "Dunca",
    "Ellis",
    "Fergu",
    "Garci",
    "Hollo",
    "Ingra",
    "Jense",
    "Kowal",
    "Lindq",
    "Marti",
    "Nakam",
    "Olsen",
    "Petro",
    "Quinn",
    "Rossi",
    "Santo",
    "Tanak",
]
_ENDS = ["son", "well", "ngton", "more", "ez", "berg", "ski", "ton", "ford", "ley"]
_GIVEN = ["Amelia", "Noah", "Olivia", "Liam", "Ava", "Lucas", "Mia", "Ethan", "Zoe", "Omar", "Ines", "Kofi"]
_VITALS = [
    ("8867-4", "Heart rate", "/min", 50, 110),
    ("29463-7", "Body weight", "kg", 3, 120),
    ("8310-5", "Body temperature", "Cel", 35, 40),
    ("9279-1", "Respiratory rate", "/min", 10, 24),
]


def make_patient(rng: random.Random) -> dict[str, Any]:
    family = rng.choice(_ROOTS) + rng.choice(_ENDS)
    return {
        "resourceType": "Patient",
        "identifier": [
            {"system": "urn:oid:1.2.36.146.595.217.0.1", "value": f"MRN{rng.randrange(10**9):09d}"}
        ],
        "active": True,
        "name": [{"use": "official", "family": family, "given": [rng.choice(_GIVEN)]}],
        "telecom": [{"system": "phone", "value": f"+1 555 {rng.randrange(10**4):04d}", "use": "home"}],
        "gender": rng.choice(["female", "male", "other", "unknown"]),
        "birthDate": f"{rng.randrange(1930, 2024)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        "address": [
            {"line": [f"{rng.randrange(1, 999)} Main St"], "city": "Springfield", "postalCode": "01101"}
        ],
    }


def make_observation(rng: random.Random, patient_id: str) -> tuple[dict[str, Any], str]:
    code, display, unit, lo, hi = rng.choice(_VITALS)
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": code, "display": display}],
            "text": display,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T10:00:00Z",
        "valueQuantity": {
            "value": round(rng.uniform(lo, hi), 1),
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }, code


# --- Synthea bundles --------------------------------------------------------------------------------


def synthea_bundles(out_dir: Path, patients: int, seed: int = 42) -> list[tuple[bytes, int]]:
    """Generate ``patients`` Synthea transaction bundles offline and make them importable here."""
    exe = Path(sys.executable).with_name("synthea")
    cmd = [str(exe) if exe.exists() else "synthea", "-p", str(patients), "-s", str(seed), "-o", str(out_dir)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    files = sorted((out_dir / "fhir").glob("*.json"))
    if proc.returncode != 0 or not files:
        raise BenchError(f"synthea failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-800:]}")
    bundles = []
    for f in files:
        raw = json.loads(f.read_text())
        if raw.get("type") != "transaction":
            continue
        bundle = importable(raw)
        bundles.append((json.dumps(bundle).encode(), len(bundle["entry"])))
    total = sum(n for _, n in bundles)
    print(
        f"synthea: {len(bundles)} bundles, {total} importable resources in {time.perf_counter() - t0:.1f} s"
    )
    return bundles


def importable(bundle: dict[str, Any]) -> dict[str, Any]:
    """Keep the entries this server stores and make the rest of the Bundle consistent with that.

    Uses ``medweave.records.importer.plan_transaction`` when it exists; otherwise drops entries of
    unsupported types (Organization, Location, Claim, ...), replaces references to them by a
    display-only Reference (valid FHIR, keeps 1..1 elements present) and drops conditional
    create (``ifNoneExist``), which this server does not honour.
    """
    helper = _importer_helper()
    if helper is not None:
        return helper(bundle)
    keep, dropped = [], {}
    for entry in bundle.get("entry", []):
        rtype = entry.get("resource", {}).get("resourceType")
        if rtype in SUPPORTED_TYPES:
            keep.append(entry)
        elif entry.get("fullUrl"):
            dropped[entry["fullUrl"]] = rtype

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ref in dropped:
                del node["reference"]
                node.setdefault("display", f"{dropped[ref]} (not imported)")
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    for entry in keep:
        fix(entry["resource"])
        entry["request"].pop("ifNoneExist", None)
    return {"resourceType": "Bundle", "type": "transaction", "entry": keep}


def _importer_helper() -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """``medweave.records.importer.plan_transaction`` (the ``medweave records import`` path), if present.

    It drops what we do not store, turns references to it into logical references and makes
    shared resources (Practitioner, ...) create-if-absent PUTs under stable ids.
    """
    try:
        from medweave.records.importer import ImportSummary, Resolver, plan_transaction
    except ImportError:
        return None

    def prepare(bundle: dict[str, Any]) -> dict[str, Any]:
        unit = plan_transaction(bundle, Resolver(None), ImportSummary())
        if unit.bundle is None:
            raise BenchError("the importer kept nothing of a Synthea bundle")
        return unit.bundle

    return prepare


# --- CPU accounting ---------------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    """utime + stime of one process, in seconds (children not included)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def pg_backend_cpu(dbname: str) -> Callable[[], float]:
    """CPU seconds of the PostgreSQL backends serving ``dbname`` (backends that exited drop out)."""
    import psycopg

    def sample() -> float:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            pids = [
                r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (dbname,))
            ]
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError):
                total += proc_cpu_s(pid)
        return total

    return sample


# --- operations: each sends one request and returns how many units it completed --------------------

Op = Callable[[httpx.Client, Corpus, random.Random], int]


def _ok(resp: httpx.Response) -> httpx.Response:
    if resp.status_code >= 300:
        raise BenchError(
            f"{resp.request.method} {resp.request.url.path} -> {resp.status_code}: {resp.text[:300]}"
        )
    return resp


def op_create(client: httpx.Client, corpus: Corpus, rng: random.Random) -> int:
    """Half the creates are Patients, half Observations about a patient created earlier."""
    if corpus.patients and rng.random() < 0.5:
        pid = rng.choice(corpus.patients)
        obs, code = make_observation(rng, pid)
        _ok(client.post("/Observation", content=json.dumps(obs)))
        corpus.add_observation(pid, code)
    else:
        resp = _ok(client.post("/Patient", content=json.dumps(make_patient(rng))))
        corpus.add_patient(resp.json()["id"])
    return 1


def op_read(client: httpx.Client, corpus: Corpus, rng: random.Random) -> int:
    resp = _ok(client.get(f"/Patient/{rng.choice(corpus.patients)}"))
    if resp.json().get("resourceType") != "Patient":
        raise BenchError(f"read returned {resp.text[:200]}")
    return 1


def op_search(client: httpx.Client, corpus: Corpus, rng: random.Random) -> int:
    """Alternate a name-prefix Patient search and an Observation search by subject and code."""
    if corpus.observations and rng.random() < 0.5:
        pid, code = rng.choice(corpus.observations)
        params = {"subject": f"Patient/{pid}", "code": f"http://loinc.org|{code}"}
        resp = _ok(client.get("/Observation", params=params))
        if not resp.json().get("total"):
            raise BenchError(f"Observation search for {params} found nothing")
    else:
        resp = _ok(client.get("/Patient", params={"name": rng.choice(_ROOTS), "_count": "20"}))
    if resp.json().get("type") != "searchset":
        raise BenchError(f"search returned {resp.text[:200]}")
    return 1


def op_import(client: httpx.Client, corpus: Corpus, rng: random.Random) -> int:
    body, _ = rng.choice(corpus.bundles)
    base = str(client.base_url).rstrip("/")  # httpx would turn "" into ".../fhir/"
    resp = _ok(client.post(base, content=body, timeout=600))
    entries = resp.json().get("entry", [])
    stored = sum(1 for e in entries if str(e.get("response", {}).get("status", ""))[:3] in ("200", "201"))
    if stored != len(entries) or not entries:
        raise BenchError(f"transaction stored {stored} of {len(entries)} entries")
    return stored


OPS: dict[str, Op] = {"create": op_create, "read": op_read, "search": op_search, "import": op_import}


# --- one phase ------------------------------------------------------------------------------------


def _client(target: Target) -> httpx.Client:
    headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, **target.headers}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.Client(base_url=target.base_url, headers=headers, limits=limits, timeout=120)


def run_phase(
    target: Target, op: str, corpus: Corpus, *, seconds: float, clients: int, seed: int
) -> PhaseRun:
    """``clients`` threads send ``op`` back to back for ``seconds``; requests in flight then finish.

    Wall time runs until the last client stops, and server CPU is measured over the same window,
    so work that spills past the deadline (a long transaction) is counted on both sides.
    """
    fn = OPS[op]
    stop = threading.Event()
    lock = threading.Lock()
    latencies: list[float] = []
    samples: list[str] = []
    totals = {"requests": 0, "units": 0, "errors": 0}

    def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        lat: list[float] = []
        done = units = errors = 0
        with _client(target) as client:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    got = fn(client, corpus, rng)
                except (BenchError, httpx.HTTPError, ValueError, KeyError) as exc:
                    errors += 1
                    with lock:
                        if len(samples) < 5:
                            samples.append(f"{type(exc).__name__}: {exc}"[:400])
                    time.sleep(0.05)
                    continue
                lat.append(time.perf_counter() - t)
                done += 1
                units += got
        with lock:
            latencies.extend(lat)
            totals["requests"] += done
            totals["units"] += units
            totals["errors"] += errors

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    db0 = target.db_cpu() if target.db_cpu else None
    cpu0, client0, t0 = proc_cpu_s(target.server_pid), time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    try:
        deadline = t0 + seconds
        while time.perf_counter() < deadline:
            time.sleep(0.1)
            _check_alive(target)
        stop.set()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
                _check_alive(target)
    finally:
        stop.set()
    wall = time.perf_counter() - t0
    cpu = proc_cpu_s(target.server_pid) - cpu0
    client_cpu = time.process_time() - client0
    db_cpu = target.db_cpu() - db0 if target.db_cpu and db0 is not None else None
    return PhaseRun(
        op,
        totals["requests"],
        totals["units"],
        totals["errors"],
        wall,
        cpu,
        client_cpu,
        db_cpu,
        latencies,
        samples,
    )


def _check_alive(target: Target) -> None:
    if not Path(f"/proc/{target.server_pid}").exists():
        raise BenchError(f"the server (pid {target.server_pid}) died")


def warm_up(target: Target, corpus: Corpus) -> None:
    """Load lazily imported models and give the read and search phases something to find."""
    rng = random.Random(7)
    with _client(target) as client:
        for _ in range(40):
            op_create(client, corpus, rng)
        while not corpus.observations:
            op_create(client, corpus, rng)
        op_read(client, corpus, rng)
        for _ in range(4):
            op_search(client, corpus, rng)
        if corpus.bundles:
            smallest = min(corpus.bundles, key=lambda b: b[1])
            op_import(client, Corpus(bundles=[smallest]), rng)


@dataclass
class Summary:
    op: str
    db: str
    label: str
    runs: list[PhaseRun]

    def med(self, fn: Callable[[PhaseRun], float]) -> float:
        return statistics.median(fn(r) for r in self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "db": self.db,
            "label": self.label,
            "per_wall_s": self.med(lambda r: r.units_per_s),
            "per_server_cpu_s": self.med(lambda r: r.per_cpu_s),
            "p50_ms": self.med(lambda r: r.pct(0.50)),
            "p99_ms": self.med(lambda r: r.pct(0.99)),
            "server_cpu_pct": self.med(lambda r: 100 * r.server_cpu_s / r.wall_s),
            "client_cpu_pct": self.med(lambda r: 100 * r.client_cpu_s / r.wall_s),
            "db_cpu_pct": self.med(lambda r: 100 * (r.db_cpu_s or 0.0) / r.wall_s)
            if self.db == "postgres"
            else None,
            "requests": [r.requests for r in self.runs],
            "units": [r.units for r in self.runs],
            "errors": sum(r.errors for r in self.runs),
            "error_samples": [s for r in self.runs for s in r.error_samples][:5],
        }


def run_suite(
    target: Target,
    corpus: Corpus,
    *,
    ops: list[str],
    seconds: float,
    clients: int,
    repeats: int,
    import_clients: int | None = None,
) -> list[Summary]:
    warm_up(target, corpus)
    out = []
    for op in ops:
        runs = []
        for i in range(repeats):
            n = import_clients if op == "import" and import_clients else clients
            run = run_phase(
                target, op, corpus, seconds=seconds, clients=n, seed=100 * list(OPS).index(op) + i
            )
            runs.append(run)
            unit = "resources" if op == "import" else "requests"
            print(
                f"  {target.db:8} {op:6} run {i + 1}: {run.units} {unit} in {run.wall_s:.1f} s, "
                f"server CPU {run.server_cpu_s:.1f} s, {run.per_cpu_s:.0f}/CPU-s, "
                f"p50 {run.pct(0.5):.0f} ms, p99 {run.pct(0.99):.0f} ms, errors {run.errors}",
                flush=True,
            )
            for sample in run.error_samples[:2]:
                print(f"      error: {sample}", flush=True)
        out.append(Summary(op, target.db, target.label, runs))
    return out


# --- servers ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _medweave_exe(given: str | None) -> str:
    if given:
        return given
    exe = Path(sys.executable).with_name("medweave")
    return str(exe) if exe.exists() else "medweave"


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database ``bench_<random>``, dropped on the way out."""
    import psycopg

    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def server(db: str, medweave: str, workdir: Path) -> Iterator[Target]:
    """``medweave db upgrade`` then ``medweave serve`` for one database; stopped on the way out."""
    data_dir = workdir / f"data-{db}"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MEDWEAVE_DATA_DIR": str(data_dir), "MEDWEAVE_BASE_URL": base}
    env.pop("MEDWEAVE_DATABASE_URL", None)
    with contextlib.ExitStack() as stack:
        db_cpu = None
        if db == "postgres":
            dbname = stack.enter_context(postgres_database())
            env["MEDWEAVE_DATABASE_URL"] = f"{PG_BASE_URL}/{dbname}"
            db_cpu = pg_backend_cpu(dbname)
        up = subprocess.run([medweave, "db", "upgrade"], env=env, capture_output=True, text=True, check=False)
        if up.returncode != 0:
            raise BenchError(f"medweave db upgrade ({db}) failed: {(up.stderr or up.stdout)[-1500:]}")
        log_path = workdir / f"server-{db}.log"
        log = stack.enter_context(open(log_path, "wb"))
        proc = subprocess.Popen(
            [medweave, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_ready(proc, base, log_path)
            yield Target("plain", db, base + "/fhir", proc.pid, db_cpu=db_cpu)
        except BenchError:
            print(f"--- last lines of the {db} server log ---\n{_tail(log_path)}", file=sys.stderr)
            raise
        finally:
            _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"medweave serve exited with {proc.returncode}:\n{_tail(log_path)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base + "/fhir/metadata", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise BenchError("medweave serve did not answer /fhir/metadata within 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- the report -----------------------------------------------------------------------------------


def print_table(results: list[dict[str, Any]]) -> None:
    head = (
        f"{'operation':9} {'db':8} {'per s wall':>10} {'per srv CPU-s':>13} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'srv CPU':>7} {'HAPI/vCPU-s':>11} {'ours/HAPI':>9}  target"
    )
    print("\n" + head + "\n" + "-" * len(head))
    for r in results:
        hapi = HAPI[r["op"]]
        target = TARGETS.get(r["op"])
        verdict = (
            "-"
            if target is None
            else f">= {target:.0f} " + ("PASS" if r["per_server_cpu_s"] >= target else "FAIL")
        )
        per_cpu = r["per_server_cpu_s"]
        print(
            f"{r['op']:9} {r['db']:8} {r['per_wall_s']:10.0f} {per_cpu:13.0f} {r['p50_ms']:7.0f} "
            f"{r['p99_ms']:7.0f} {r['server_cpu_pct']:6.0f}% {hapi:11.0f} {per_cpu / hapi:9.2f}  {verdict}"
        )
    print(
        "\nimport rows count resources; others count requests. Medians of the repeats.\n"
        "'srv CPU' is the server process's CPU over the phase (100% = one core).\n"
        "HAPI: Health Samurai FHIR server benchmark, 8 vCPU, 3,058 CRUD req/s and\n"
        "2,214 resources/s bundle import, divided by 8."
    )
    extra = [r for r in results if r["client_cpu_pct"] is not None]
    if extra:
        print(
            "\nbench client CPU"
            + "".join(f" | {r['op']} {r['db']} {r['client_cpu_pct']:.0f}%" for r in extra)
        )
    pg = [r for r in results if r["db_cpu_pct"] is not None]
    if pg:
        print("PostgreSQL backend CPU" + "".join(f" | {r['op']} {r['db_cpu_pct']:.0f}%" for r in pg))
    bad = [r for r in results if r["errors"]]
    for r in bad:
        print(f"\n{r['op']} on {r['db']}: {r['errors']} failed requests, e.g.:")
        for s in r["error_samples"]:
            print(f"  {s}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--seconds", type=float, default=8.0, help="duration of one run of one phase")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument(
        "--import-clients",
        type=int,
        default=2,
        help="concurrent clients in the import phase: one Synthea bundle (400-1,000 resources) takes "
        "seconds, so with 16 in flight each waits behind the others and the phase runs far past --seconds",
    )
    ap.add_argument("--repeats", type=int, default=3, help="runs per phase; the table quotes medians")
    ap.add_argument("--ops", default="create,read,search,import", help="phases to run, in order")
    ap.add_argument("--synthea-patients", type=int, default=3, help="patients (bundles) Synthea generates")
    ap.add_argument("--medweave", help="the medweave executable (default: next to this Python)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    if unknown := [o for o in ops if o not in OPS]:
        ap.error(f"unknown phases {unknown}; choose from {list(OPS)}")
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    medweave = _medweave_exe(args.medweave)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # also when started in the background, where SIGINT is ignored
    workdir = Path(tempfile.mkdtemp(prefix="medweave-bench-"))
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        bundles = synthea_bundles(workdir / "synthea", args.synthea_patients) if "import" in ops else []
        for db in dbs:
            print(f"{db}: starting medweave serve", flush=True)
            with server(db, medweave, workdir) as target:
                corpus = Corpus(bundles=bundles)
                summaries = run_suite(
                    target,
                    corpus,
                    ops=ops,
                    seconds=args.seconds,
                    clients=args.clients,
                    repeats=args.repeats,
                    import_clients=args.import_clients,
                )
                results += [s.as_dict() for s in summaries]
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        if results:
            print_table(results)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(results)
    print(
        f"\n{len(dbs)} database(s), {args.clients} clients, {args.repeats} x {args.seconds:g} s per phase; "
        f"total {time.monotonic() - started:.0f} s; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPUs"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
