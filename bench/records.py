"""Record-store throughput benchmark: create, read, search and bundle import over HTTP.

Run it (not a test; the full run takes about six minutes)::

    .venv/bin/python bench/records.py [--db sqlite|postgres|both] [--seconds N] [--clients 16]
    .venv/bin/python bench/records.py --auth-only      # only the auth on/off comparison

Part 1 (create, read, search, import) runs against the *baseline* server, ``bench/baseline_app.py``:
the product app with authentication, access checks and audit switched off, which exists only in
the bench. The comparison then runs the read and create phases, interleaved run by run, against
the real ``medweave serve`` with a clinician's bearer token (token verification, identity lookup,
the in-care access checks and the audit trail all on), and prints the ratio on/off.

For each database and server it starts one process on a free port (SQLite in a temporary data
directory; PostgreSQL in a fresh ``bench_<random>`` database that is dropped afterwards), runs
``medweave db upgrade`` first, seeds a clinician's panel (a Practitioner, patients and an active
CareTeam each), then drives it with ``--clients`` concurrent HTTP clients (threads, each with its
own keep-alive ``httpx.Client``). Every phase runs for ``--seconds`` and is repeated
``--repeats`` times; the tables quote medians of:

* requests per wall second (resources per second for import),
* requests per CPU second of the *server process* (``utime + stime`` from ``/proc/<pid>/stat``),
* client-side p50 and p99 latency,

next to HAPI FHIR's published figures from the Health Samurai FHIR server benchmark, with the
targets as pass/fail. See ``docs/benchmarks.md``.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from medweave.records.types import SUPPORTED_TYPES as STORED_TYPES

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
#: Phases compared with auth on and off, and the least acceptable ratio on/off per server CPU-second.
AUTH_OPS = ("create", "read")
AUTH_TARGET_RATIO = 0.7
#: Patients in the bench clinician's care; reads and Observation creates pick among them.
PANEL_PATIENTS = 200

# Types this server stores; Synthea bundles are filtered down to these.
SUPPORTED_TYPES = frozenset(STORED_TYPES)


class BenchError(RuntimeError):
    """The benchmark cannot go on (server failed to start, died, or answered nonsense)."""


# --- where a phase runs ---------------------------------------------------------------------------


@dataclass
class Target:
    """One server to drive: base URL, headers every request carries, the pid whose CPU is counted.

    ``label`` is ``off`` (the bench-only baseline app) or ``on`` (``medweave serve`` with a
    clinician's bearer token in ``headers``); results are compared by label.
    """

    label: str
    db: str
    base_url: str  # ends in /fhir
    server_pid: int
    headers: dict[str, str] = field(default_factory=dict)
    db_cpu: Callable[[], float] | None = None  # CPU seconds of the database's own processes


@dataclass
class Corpus:
    """What the phases share: the clinician's panel, Observations created so far, import bundles.

    Reads and Observation creates pick among ``patients``, the patients seeded in the bench
    clinician's care. Patients created by the create phase are not added: with auth on, a
    clinician may register a patient but sees them only once a care relationship names them, so
    both servers get the same load.
    """

    bundles: list[tuple[bytes, int]]  # (JSON body, number of entries)
    patients: list[str] = field(default_factory=list)
    observations: list[tuple[str, str]] = field(default_factory=list)  # (patient id, LOINC code)
    lock: threading.Lock = field(default_factory=threading.Lock)

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
    """Half the creates are Patients, half Observations about a patient in the clinician's panel."""
    if rng.random() < 0.5:
        pid = rng.choice(corpus.patients)
        obs, code = make_observation(rng, pid)
        _ok(client.post("/Observation", content=json.dumps(obs)))
        corpus.add_observation(pid, code)
    else:
        resp = _ok(client.post("/Patient", content=json.dumps(make_patient(rng))))
        if not resp.json().get("id"):
            raise BenchError(f"create returned {resp.text[:200]}")
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


@dataclass
class Driven:
    """A target, what its phases share, and the phases it runs."""

    target: Target
    corpus: Corpus
    ops: frozenset[str]


def run_phases(
    driven: list[Driven],
    *,
    ops: list[str],
    seconds: float,
    clients: int,
    repeats: int,
    import_clients: int | None = None,
    profile: Path | None = None,
    profile_gil: bool = False,
) -> list[Summary]:
    """Each phase, each repeat: one run on every target that has that phase, in turn.

    Interleaving the targets run by run (rather than one target's phases, then the other's) means
    drift on a shared machine hits both sides of a comparison alike. With ``profile``, py-spy
    records each run's server into ``<profile>/<db>-<label>-<op>-<run>.txt`` (raw stacks).
    """
    runs: dict[tuple[str, str], list[PhaseRun]] = {}
    for op in ops:
        for i in range(repeats):
            for d in driven:
                if op not in d.ops:
                    continue
                n = import_clients if op == "import" and import_clients else clients
                name = f"{d.target.db}-{d.target.label}-{op}-{i + 1}.txt"
                with py_spy(d.target.server_pid, profile / name if profile else None, gil=profile_gil):
                    run = run_phase(
                        d.target, op, d.corpus, seconds=seconds, clients=n, seed=100 * list(OPS).index(op) + i
                    )
                runs.setdefault((op, d.target.label), []).append(run)
                unit = "resources" if op == "import" else "requests"
                print(
                    f"  {d.target.db:8} {d.target.label:3} {op:6} run {i + 1}: {run.units} {unit} in "
                    f"{run.wall_s:.1f} s, server CPU {run.server_cpu_s:.1f} s, {run.per_cpu_s:.0f}/CPU-s, "
                    f"p50 {run.pct(0.5):.0f} ms, p99 {run.pct(0.99):.0f} ms, errors {run.errors}",
                    flush=True,
                )
                for sample in run.error_samples[:2]:
                    print(f"      error: {sample}", flush=True)
    db = driven[0].target.db
    return [Summary(op, db, label, r) for (op, label), r in runs.items()]


@contextlib.contextmanager
def py_spy(pid: int, out: Path | None, *, gil: bool = False) -> Iterator[None]:
    """Sample ``pid`` with py-spy (``--nonblocking``: the server is never paused) while the block runs.

    ``gil``: only the thread holding the GIL (Python CPU; time in C with the GIL released, such as
    SQLite executing a statement, is then missed).
    """
    if out is None:
        yield
        return
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out.parent.mkdir(parents=True, exist_ok=True)
    opts = ["--nonblocking", "--rate", "200", "--format", "raw", *(["--gil"] if gil else [])]
    cmd = [exe, "record", "--pid", str(pid), *opts, "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# --- the clinician's panel and tokens -------------------------------------------------------------

SETUP_CLIENT = "bench-setup"
CLINICIAN = "bench-clinician"


def cli(medweave: str, env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """Run one ``medweave`` command against the server's data directory or database; its stdout."""
    proc = subprocess.run(
        [medweave, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        raise BenchError(f"medweave {' '.join(args[:2])} failed: {(proc.stderr or proc.stdout)[-800:]}")
    return proc.stdout.strip()


def issue_token(medweave: str, env: dict[str, str], *who: str, scopes: str) -> str:
    out = cli(medweave, env, "tokens", "issue", *who, "--scopes", scopes, "--ttl", "2h")
    return out.splitlines()[-1].strip()


def system_token(medweave: str, env: dict[str, str]) -> str:
    """A backend client with ``system/*.cruds``, registered and issued a token through the CLI."""
    scopes = "system/*.cruds"
    cli(medweave, env, "tokens", "add-client", "--name", SETUP_CLIENT, "--scopes", scopes, "--confidential")
    return issue_token(medweave, env, "--client", SETUP_CLIENT, scopes=scopes)


def add_clinician(medweave: str, env: dict[str, str], username: str, practitioner_id: str) -> str:
    """A clinician user linked to ``Practitioner/practitioner_id``, and a ``user/*.cruds`` token for it."""
    password = secrets.token_urlsafe(24)
    cli(
        medweave,
        env,
        "users",
        "create",
        "--username",
        username,
        "--role",
        "clinician",
        "--practitioner",
        practitioner_id,
        "--password-stdin",
        stdin=password + "\n",
    )
    return issue_token(medweave, env, "--username", username, scopes="user/*.cruds")


def seed_panel(base_url: str, headers: dict[str, str], patients: int) -> tuple[str, list[str]]:
    """A Practitioner, and ``patients`` Patients each with an active CareTeam naming them.

    Sent through the API by a caller who may write all of it (a ``system/`` client token, or
    anything on the baseline server). Returns the Practitioner id and the patient ids.
    """
    rng = random.Random(11)
    all_headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, **headers}
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    with httpx.Client(base_url=base_url, headers=all_headers, limits=limits, timeout=60) as client:
        practitioner = {
            "resourceType": "Practitioner",
            "active": True,
            "name": [{"family": "Benchmark", "given": ["Clinician"], "prefix": ["Dr."]}],
        }
        prac_id = _ok(client.post("/Practitioner", content=json.dumps(practitioner))).json()["id"]
        bodies = [json.dumps(make_patient(rng)) for _ in range(patients)]

        def one(body: str) -> str:
            pid = _ok(client.post("/Patient", content=body)).json()["id"]
            team = {
                "resourceType": "CareTeam",
                "status": "active",
                "name": "Benchmark panel",
                "subject": {"reference": f"Patient/{pid}"},
                "participant": [{"member": {"reference": f"Practitioner/{prac_id}"}}],
            }
            _ok(client.post("/CareTeam", content=json.dumps(team)))
            return str(pid)

        with ThreadPoolExecutor(8) as pool:
            pids = list(pool.map(one, bodies))
    return prac_id, pids


def provision_auth(target: Target, env: dict[str, str], medweave: str, patients: int) -> list[str]:
    """Make ``target`` (``medweave serve``) act as a clinician with ``patients`` in their care.

    Also checks that the checks are really on, and warns (:data:`WARNINGS`) where they are not:
    a patient outside the panel must answer 404 to the clinician, and a disabled user's token 401
    (it does not when the server looks nobody up in the identity store).
    """
    system = {"Authorization": f"Bearer {system_token(medweave, env)}"}
    prac_id, pids = seed_panel(target.base_url, system, patients)
    target.headers = {"Authorization": f"Bearer {add_clinician(medweave, env, CLINICIAN, prac_id)}"}
    headers = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON}
    with httpx.Client(base_url=target.base_url, headers=headers, timeout=60) as client:
        stranger = _ok(
            client.post("/Patient", content=json.dumps(make_patient(random.Random(5))), headers=system)
        ).json()["id"]
        _ok(client.get(f"/Patient/{pids[0]}", headers=target.headers))
        seen = client.get(f"/Patient/{stranger}", headers=target.headers).status_code
        if seen != 404:
            warn(
                f"{target.db}: the clinician read a Patient outside their care (GET -> {seen}, expected "
                "404): the read access check passed without the in-care query, so the 'on' read figures "
                "lack its cost"
            )
        gone = add_clinician(medweave, env, CLINICIAN + "-disabled", prac_id)
        cli(medweave, env, "users", "disable", CLINICIAN + "-disabled")
        status = client.get(f"/Patient/{pids[0]}", headers={"Authorization": f"Bearer {gone}"}).status_code
    if status != 401:
        warn(
            f"{target.db}: a disabled user's token still reads records (GET -> {status}, expected 401): the "
            "server does not look tokens up in the identity store (principal_for_claims), so the 'on' "
            "figures lack that cost"
        )
    return pids


#: What the checks in :func:`provision_auth` found; printed as it happens and again at the end.
WARNINGS: list[str] = []


def warn(message: str) -> None:
    WARNINGS.append(message)
    print(f"  WARNING {message}", flush=True)


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


BASELINE_APP = Path(__file__).resolve().with_name("baseline_app.py")
BASELINE_HEADERS = {"Authorization": "Bearer bench-baseline"}  # any bearer token; never verified


@contextlib.contextmanager
def server(db: str, label: str, medweave: str, workdir: Path) -> Iterator[tuple[Target, dict[str, str]]]:
    """``medweave db upgrade``, then one server for one database; stopped on the way out.

    ``label`` ``off`` starts the bench-only baseline (``bench/baseline_app.py``: auth, access
    checks and audit off); ``on`` starts the real ``medweave serve``. Yields the target and the
    environment (data directory, database URL, base URL) that CLI commands for it need.
    """
    data_dir = workdir / f"data-{db}-{label}"
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
        addr = ["--host", "127.0.0.1", "--port", str(port)]
        cmd = [sys.executable, str(BASELINE_APP), *addr] if label == "off" else [medweave, "serve", *addr]
        log_path = workdir / f"server-{db}-{label}.log"
        log = stack.enter_context(open(log_path, "wb"))
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_ready(proc, base, log_path)
            headers = dict(BASELINE_HEADERS) if label == "off" else {}
            yield Target(label, db, base + "/fhir", proc.pid, headers=headers, db_cpu=db_cpu), env
        except BenchError:
            print(f"--- last lines of the {db} {label} server log ---\n{_tail(log_path)}", file=sys.stderr)
            raise
        finally:
            _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the server exited with {proc.returncode}:\n{_tail(log_path)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base + "/fhir/metadata", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise BenchError("the server did not answer /fhir/metadata within 60 s")


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
    results = [r for r in results if r["label"] == "off"]
    if not results:
        return
    print("\nPart 1: the baseline server (bench/baseline_app.py: auth, access checks and audit off)")
    head = (
        f"{'operation':9} {'db':8} {'per s wall':>10} {'per srv CPU-s':>13} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'srv CPU':>7} {'HAPI/vCPU-s':>11} {'ours/HAPI':>9}  target"
    )
    print(head + "\n" + "-" * len(head))
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


def print_auth_table(results: list[dict[str, Any]]) -> bool:
    """Auth on (``medweave serve``, clinician token) against off (the baseline); True if all pass."""
    by = {(r["db"], r["op"], r["label"]): r for r in results}
    pairs = [(by[k], by[(k[0], k[1], "on")]) for k in by if k[2] == "off" and (k[0], k[1], "on") in by]
    if not pairs:
        return True
    print(
        "\nAuth on / off: medweave serve with a clinician's token (verification, identity lookup, in-care "
        "checks, audit)\nagainst the bench-only baseline with all of that off. Medians of the repeats."
    )
    head = (
        f"{'operation':9} {'db':8} | {'off wall/s':>10} {'off CPU-s':>9} {'p50':>5} {'p99':>5} | "
        f"{'on wall/s':>9} {'on CPU-s':>8} {'p50':>5} {'p99':>5} | "
        f"{'ratio wall':>10} {'ratio CPU-s':>11}  target"
    )
    print(head + "\n" + "-" * len(head))
    ok = True
    for off, on in pairs:
        ratio_cpu = on["per_server_cpu_s"] / off["per_server_cpu_s"]
        ratio_wall = on["per_wall_s"] / off["per_wall_s"]
        passed = ratio_cpu >= AUTH_TARGET_RATIO
        ok = ok and passed
        print(
            f"{off['op']:9} {off['db']:8} | {off['per_wall_s']:10.0f} {off['per_server_cpu_s']:9.0f} "
            f"{off['p50_ms']:5.0f} {off['p99_ms']:5.0f} | "
            f"{on['per_wall_s']:9.0f} {on['per_server_cpu_s']:8.0f} "
            f"{on['p50_ms']:5.0f} {on['p99_ms']:5.0f} | {ratio_wall:10.2f} {ratio_cpu:11.2f}  "
            f">= {AUTH_TARGET_RATIO} " + ("PASS" if passed else "FAIL")
        )
    print(
        "wall/s: requests per wall second; CPU-s: requests per server CPU-second (the primary figure, which "
        "the\ntarget applies to); p50/p99 in ms. The ratio of medians is on/off."
    )
    pg = [(off, on) for off, on in pairs if off["db_cpu_pct"] is not None]
    if pg:
        print(
            "PostgreSQL backend CPU, off/on"
            + "".join(f" | {off['op']} {off['db_cpu_pct']:.0f}%/{on['db_cpu_pct']:.0f}%" for off, on in pg)
        )
    return ok


def print_errors(results: list[dict[str, Any]]) -> None:
    for r in results:
        if r["errors"]:
            print(f"\n{r['op']} on {r['db']} ({r['label']}): {r['errors']} failed requests, e.g.:")
            for s in r["error_samples"]:
                print(f"  {s}")


def print_all(results: list[dict[str, Any]]) -> bool:
    print_table(results)
    ok = print_auth_table(results)
    print_errors(results)
    for message in WARNINGS:
        print(f"WARNING {message}")
    return ok


def bench_database(
    db: str, medweave: str, workdir: Path, bundles: list[tuple[bytes, int]], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Part 1 on the baseline server and, unless ``--no-auth``, the on/off comparison, for one database."""
    ops: list[str] = args.ops_list
    auth_ops = frozenset(AUTH_OPS) & set(ops) if not args.no_auth else frozenset()
    with contextlib.ExitStack() as stack:
        print(f"{db}: starting the baseline server (auth, access checks and audit off)", flush=True)
        off, _ = stack.enter_context(server(db, "off", medweave, workdir))
        _, panel = seed_panel(off.base_url, off.headers, args.panel)
        driven = [Driven(off, Corpus(bundles=bundles, patients=panel), frozenset(ops))]
        if auth_ops:
            print(f"{db}: starting medweave serve (auth, access checks and audit on)", flush=True)
            on, env = stack.enter_context(server(db, "on", medweave, workdir))
            panel = provision_auth(on, env, medweave, args.panel)
            driven.append(Driven(on, Corpus(bundles=[], patients=panel), auth_ops))
        for d in driven:
            warm_up(d.target, d.corpus)
        summaries = run_phases(
            driven,
            ops=ops,
            seconds=args.seconds,
            clients=args.clients,
            repeats=args.repeats,
            import_clients=args.import_clients,
            profile=args.profile,
            profile_gil=args.profile_gil,
        )
    return [s.as_dict() for s in summaries]


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
    ap.add_argument(
        "--auth-only",
        action="store_true",
        help="run only the auth on/off comparison: the create and read phases on both servers",
    )
    ap.add_argument("--no-auth", action="store_true", help="run only part 1, on the baseline server")
    ap.add_argument(
        "--profile",
        type=Path,
        help="record every run's server with py-spy (on PATH or next to this Python) into this directory",
    )
    ap.add_argument("--profile-gil", action="store_true", help="py-spy --gil: sample only the GIL holder")
    ap.add_argument(
        "--panel", type=int, default=PANEL_PATIENTS, help="patients in the bench clinician's care"
    )
    ap.add_argument("--synthea-patients", type=int, default=3, help="patients (bundles) Synthea generates")
    ap.add_argument("--medweave", help="the medweave executable (default: next to this Python)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    if unknown := [o for o in ops if o not in OPS]:
        ap.error(f"unknown phases {unknown}; choose from {list(OPS)}")
    if args.auth_only and args.no_auth:
        ap.error("--auth-only and --no-auth exclude each other")
    args.ops_list = [o for o in ops if o in AUTH_OPS] if args.auth_only else ops
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
        need_bundles = "import" in args.ops_list
        bundles = synthea_bundles(workdir / "synthea", args.synthea_patients) if need_bundles else []
        for db in dbs:
            results += bench_database(db, medweave, workdir, bundles, args)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        if results:
            print_all(results)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    passed = print_all(results)
    print(
        f"\n{len(dbs)} database(s), {args.clients} clients, {args.repeats} x {args.seconds:g} s per phase; "
        f"total {time.monotonic() - started:.0f} s; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPUs"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if passed else 2


if __name__ == "__main__":
    sys.exit(main())
