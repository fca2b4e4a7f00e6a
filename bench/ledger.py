"""Ledger benchmark: durable appends, inclusion-proof latency at 1,000,000 leaves, verification rate,
next to pymerkle 7 and the raw SHA-256 rate over the same leaf data.

Run it (not a test; the full run takes about five minutes on 2 CPUs; needs ``pymerkle>=7,<8`` in
the venv and, unless ``--db sqlite``, PostgreSQL at 127.0.0.1:5432 with trust auth)::

    .venv/bin/python bench/ledger.py [--db sqlite|postgres|both] [--leaves 1000000] [--json FILE]
    .venv/bin/python bench/ledger.py --quick        # smoke run: 100,000 leaves, small counts

Leaf data is ``--memory-entries`` (and ``--leaves``) pseudo-random 200-byte entries from a fixed
seed; every system gets the same bytes. Rates are medians of ``--repeats`` runs (at least 5 for
the in-memory ones, which take under a second), run by run interleaved across systems.

What each figure means:

* **SHA-256 ceiling**: ``hashlib.sha256(b"\\x00" + entry).digest()`` over the entries, nothing else:
  no tree can append faster than it hashes its leaves.
* **ours, in memory**: ``leaf_hash(entry)`` then ``CompactRange.append`` for each entry (the
  hashing and tree work of an append, with no I/O), and ``root()`` at the end.
* **pymerkle InmemoryTree**: ``append_entry(entry)`` for each entry, and ``get_root()``.
* **ours durable** (SQLite and PostgreSQL): ``--entries`` AuditEvents are first written with
  ``AuditService.record_all`` (untimed: the audit trail's cost, not the ledger's); then
  ``LedgerService.sequence()`` is timed until all are committed, ``--batch`` per transaction. Each
  committed entry has its salted commitment (a patient's salt is derived from their data key),
  leaf, completed nodes, a signed checkpoint for the new size and the moved head, in ONE
  transaction. Events name one of ``--patients`` patients (a tenth name none and get a random,
  stored salt). The resulting ledger is then checked with ``medweave.ledger.selfcheck`` (untimed).
  The same is timed again on top of the ``--leaves`` ledger built for the proofs (below), where
  each batch's reads (the tree's frontier) run against a table of millions of nodes.
* **ours raw store**: precomputed entries and nodes of the same 200-byte entries written with
  ``store.add_entries`` + ``store.add_nodes`` and a commit, ``--batch`` leaves per transaction:
  the storage floor of the sequencer, with no source reads, commitments, hashing or signing.
* **pymerkle SqliteTree**: ``append_entries`` (its bulk API: one transaction per call) with
  ``--batch`` entries per call, on a file; once with our SQLite settings (WAL,
  synchronous=NORMAL, as ``medweave.db.make_engine``) and once with its own (Python's sqlite3
  defaults: rollback journal, synchronous=FULL). It stores one row (entry, hash) per leaf; it
  stores no interior node, computes no root and signs nothing. Also ``append_entry`` (one commit
  per entry, its defaults) on a few hundred entries, for the per-entry durable rate.
* **proof latency**: a ledger of ``--leaves`` leaves is bulk-loaded through the store functions
  (50,000 leaves per transaction, one signed checkpoint at the full size; the build time is
  printed), then ``LedgerService.inclusion_proof(index=random, size=leaves)`` is timed per call,
  ``--proofs`` random indices per pass after 200 warm-up calls; p50 and p99 are medians over the
  passes. A system gets at most ``--proof-seconds``: a pass that runs out of time stops early and
  the table says how many calls each pass timed. Every proof of the last pass is checked against
  the checkpoint's root. pymerkle's ``prove_inclusion`` is timed the same way on a ``SqliteTree``
  (built with ``append_entries``) and an ``InmemoryTree`` (built with ``append_entry``) of the
  same leaves; all roots must agree.
* **proofs verified per second**: ``medweave.ledger.verify.verify_inclusion`` over the proofs of
  the last pass, against pymerkle's ``verify_inclusion`` over its proofs of the same leaves.

Targets (issue 4): durable appends at least 5x pymerkle SqliteTree (its bulk API at the same
batch size and our SQLite settings: the fair form of it; pymerkle has no PostgreSQL backend, so
our PostgreSQL figure is set against the same one), in-memory appends at least 30% of the
SHA-256 ceiling, inclusion proofs p99 under 2 ms at 1,000,000 leaves. Ratios of runs interleaved
one for one are medians of the run-by-run ratios. Other ratios (no target) are printed too, and
the published Fabric and Ethereum rates as context. Exit status 0 when all targets pass, 2 when
one fails, 1 when the benchmark itself failed (a database missing, a proof or root wrong).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from ledger_support import (
    BenchError,
    Prepared,
    audit_records,
    build_tree,
    code_version,
    database,
    durability,
    leaf_data,
    new_ledger,
    new_signer,
    percentile,
    prepare_batches,
    pymerkle_version,
    server_version,
    sqlite_tree,
)
from sqlalchemy import Engine

from medweave.audit import AuditService
from medweave.db import write_tx
from medweave.ledger import selfcheck, store
from medweave.ledger.compact import CompactRange
from medweave.ledger.hashing import leaf_hash
from medweave.ledger.service import LedgerService
from medweave.ledger.verify import ProofError, verify_inclusion
from medweave.security.crypto import MasterKey

#: Targets of issue 4.
DURABLE_RATIO = 5.0  # ours durable / pymerkle SqliteTree (bulk API, same batch, our SQLite settings)
MEMORY_SHARE = 0.30  # ours in memory / SHA-256 ceiling
PROOF_P99_MS = 2.0  # at 1,000,000 leaves
WARM_UP_PROOFS = 200
#: Published throughput of other ledgers, for the docs' context only (not comparable: consensus
#: among many nodes, not one log's appends).
CONTEXT = (
    "For context (not comparable: consensus among many nodes, not one log's appends): Hyperledger "
    "Fabric about 3,500 tps (EuroSys 2018),\nFastFabric about 20,000, Ethereum mainnet about 15."
)

NAMES = {
    "sha256": "SHA-256 of 0x00||entry (the ceiling)",
    "ours_memory": "ours: leaf_hash + CompactRange.append",
    "pymerkle_memory": "pymerkle InmemoryTree.append_entry",
    "ours_sqlite": "ours durable, SQLite: LedgerService.sequence",
    "ours_postgres": "ours durable, PostgreSQL: LedgerService.sequence",
    "ours_sqlite_big": "ours durable, SQLite, on top of {leaves} leaves",
    "ours_postgres_big": "ours durable, PostgreSQL, on top of {leaves} leaves",
    "raw_sqlite": "ours raw store, SQLite: add_entries+add_nodes",
    "raw_postgres": "ours raw store, PostgreSQL: add_entries+add_nodes",
    "pymerkle_batch_ours": "pymerkle SqliteTree.append_entries, our settings",
    "pymerkle_batch_default": "pymerkle SqliteTree.append_entries, its defaults",
    "pymerkle_single": "pymerkle SqliteTree.append_entry, its defaults",
    "ours_verify": "ours: verify_inclusion",
    "pymerkle_verify": "pymerkle: verify_inclusion",
}


@dataclass
class Results:
    rates: dict[str, list[float]] = field(default_factory=dict)  # name -> per-run rates
    proofs: dict[str, dict[str, Any]] = field(default_factory=dict)  # system -> build s, p50s, p99s
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, count: int, seconds: float) -> None:
        self.rates.setdefault(name, []).append(count / seconds)

    def median(self, name: str) -> float | None:
        runs = self.rates.get(name)
        return statistics.median(runs) if runs else None

    def ratio(self, ours: str, peer: str, *, paired: bool) -> float | None:
        """ours/peer: the median of the run-by-run ratios when the runs were interleaved one for
        one (``paired``; load from elsewhere then hits both alike), else the ratio of the medians."""
        a, b = self.rates.get(ours), self.rates.get(peer)
        if not a or not b:
            return None
        if paired and len(a) == len(b):
            return statistics.median(x / y for x, y in zip(a, b, strict=True))
        return statistics.median(a) / statistics.median(b)


def timed(fn: Callable[..., object], *args: Any) -> float:
    """Seconds ``fn(*args)`` takes, after a garbage collection."""
    gc.collect()
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


# --- in memory ------------------------------------------------------------------------------------


def bench_memory(data: Sequence[bytes], repeats: int, out: Results) -> None:
    from pymerkle import InmemoryTree

    sha = hashlib.sha256
    roots: dict[str, bytes] = {}

    def ceiling() -> None:
        for item in data:
            sha(b"\x00" + item).digest()

    def ours() -> None:
        tree = CompactRange()
        append = tree.append
        for item in data:
            append(leaf_hash(item))
        roots["ours"] = tree.root()

    def peer() -> None:
        tree = InmemoryTree()
        append = tree.append_entry
        for item in data:
            append(item)
        roots["pymerkle"] = tree.get_root()

    for _ in range(repeats):
        out.add("sha256", len(data), timed(ceiling))
        out.add("ours_memory", len(data), timed(ours))
        out.add("pymerkle_memory", len(data), timed(peer))
        if roots["ours"] != roots["pymerkle"]:
            raise BenchError("ours and pymerkle's InmemoryTree disagree on the root of the same entries")


# --- durable appends ------------------------------------------------------------------------------


@dataclass
class AuditFeed:
    """The sequencer's sources: AuditEvents written with ``AuditService.record_all`` (untimed)."""

    audit: AuditService
    patients: int
    rng: random.Random
    seq: int = 1

    def write(self, n: int) -> None:
        records = audit_records(self.seq, n, patients=self.patients, rng=self.rng)
        for s in range(0, n, 500):
            self.audit.record_all(records[s : s + 500])
        self.seq += n


def time_sequencer(name: str, ledger: LedgerService, feed: AuditFeed, n: int, out: Results) -> None:
    """Write ``n`` AuditEvents, then time ``sequence()`` until all are committed."""
    feed.write(n)
    done: list[int] = []
    out.add(name, n, timed(drain, ledger, done))
    if sum(done) != n or max(done) > ledger.batch:
        raise BenchError(f"{name}: the sequencer committed {sum(done)} entries, expected {n}")


def warm_up(ledger: LedgerService, feed: AuditFeed) -> None:
    """One untimed batch: makes the patients' data keys (a live clinic has them) and warms caches."""
    feed.write(ledger.batch)
    ledger.sequence_all()


def bench_durable(
    kind: str, workdir: Path, data: Sequence[bytes], args: argparse.Namespace, out: Results
) -> None:
    """Ours (sequencer and raw store) on one database and, with SQLite, pymerkle's SqliteTree."""
    n, batch = args.entries, args.batch
    with (
        database(kind, workdir, "durable") as engine,
        database(kind, workdir, "raw") as raw,
        AuditService(engine) as audit,
    ):
        out.notes[kind] = f"{server_version(engine)} ({durability(engine)})"
        ledger = new_ledger(engine, batch=batch)
        feed = AuditFeed(audit, args.patients, random.Random(args.seed))
        warm_up(ledger, feed)
        raw_tree, now = CompactRange(), datetime.now(UTC)
        peers = pymerkle_trees(workdir) if kind == "sqlite" else {}
        single = min(n, args.single)
        for r in range(args.repeats):
            time_sequencer(f"ours_{kind}", ledger, feed, n, out)
            chunk = data[r * n : (r + 1) * n]
            prepared = prepare_batches(chunk, start=raw_tree.size, tree=raw_tree, batch=batch, now=now)
            out.add(f"raw_{kind}", n, timed(write_raw, raw, prepared))
            for name, tree in peers.items():
                if name == "pymerkle_single":
                    out.add(name, single, timed(append_each, tree, chunk[:single]))
                else:
                    out.add(name, n, timed(append_bulk, tree, chunk, batch))
        report = selfcheck.check(engine, master=ledger.master, log=ledger.verifier)
        if not report.ok or report.size != batch + args.repeats * n:
            raise BenchError(f"{kind}: the benchmarked ledger does not verify: {report.problems[:3]}")
        for name, tree in peers.items():
            if name != "pymerkle_single" and tree.get_root() != raw_tree.root():
                raise BenchError(f"{name}: pymerkle's root differs from ours over the same entries")
            tree.close()


def drain(ledger: LedgerService, done: list[int]) -> None:
    """Sequence until nothing waits, noting each batch's size."""
    while k := ledger.sequence():
        done.append(k)


def write_raw(engine: Engine, prepared: Sequence[Prepared]) -> None:
    for p in prepared:
        with write_tx(engine) as conn:
            store.add_entries(conn, p.entries)
            store.add_nodes(conn, p.nodes)


def append_bulk(tree: Any, entries: Sequence[bytes], batch: int) -> None:
    """pymerkle's bulk API, one transaction per ``batch`` entries."""
    for s in range(0, len(entries), batch):
        tree.append_entries(entries[s : s + batch])


def append_each(tree: Any, entries: Sequence[bytes]) -> None:
    """pymerkle's per-entry API, one commit per entry."""
    for entry in entries:
        tree.append_entry(entry)


def pymerkle_trees(workdir: Path) -> dict[str, Any]:
    return {
        "pymerkle_batch_ours": sqlite_tree(workdir / "pymerkle-ours.db", ours_pragmas=True),
        "pymerkle_batch_default": sqlite_tree(workdir / "pymerkle-default.db", ours_pragmas=False),
        "pymerkle_single": sqlite_tree(workdir / "pymerkle-single.db", ours_pragmas=False),
    }


# --- inclusion proofs -----------------------------------------------------------------------------


@dataclass
class Passes:
    """The indices every system proves: warm-up calls, then timed passes, within ``seconds``."""

    warm: list[int]
    passes: list[list[int]]
    seconds: float


def proof_latency(
    system: str, build_s: float, prove: Callable[[int], Any], plan: Passes, out: Results
) -> list[tuple[int, Any]]:
    """Warm up, then time ``prove`` on each pass's indices; returns (index, proof) of the last pass.

    Each system gets ``plan.seconds``: a tenth for the warm-up, the rest shared by the passes. A
    pass that runs out of time stops early (the table prints how many calls each pass timed)."""
    clock = time.perf_counter
    deadline = clock() + plan.seconds / 10
    for i in plan.warm:
        prove(i)
        if clock() > deadline:
            break
    p50s, p99s, counts, worst = [], [], [], 0.0
    proofs: list[tuple[int, Any]] = []
    for indices in plan.passes:
        gc.collect()
        lat, proofs = [], []
        deadline = clock() + plan.seconds * 0.9 / len(plan.passes)
        for i in indices:
            t0 = clock()
            proofs.append((i, prove(i)))
            t1 = clock()
            lat.append(t1 - t0)
            if t1 > deadline:
                break
        p50s.append(percentile(lat, 0.50) * 1000)
        p99s.append(percentile(lat, 0.99) * 1000)
        counts.append(len(lat))
        worst = max(worst, max(lat) * 1000)
    out.proofs[system] = {
        "build_s": build_s,
        "p50_ms": statistics.median(p50s),
        "p99_ms": statistics.median(p99s),
        "max_ms": worst,
        "calls": counts,
        "p50_runs": p50s,
        "p99_runs": p99s,
    }
    return proofs


def bench_proofs_ours(
    kind: str, workdir: Path, data: Sequence[bytes], plan: Passes, args: argparse.Namespace, out: Results
) -> tuple[bytes, list[Any]]:
    """Build the big ledger, time proofs on it, then time durable appends on top of it."""
    size = len(data)
    signer = new_signer()
    with database(kind, workdir, "tree") as engine, AuditService(engine) as audit:
        print(f"{kind}: building a ledger of {size:,} leaves", flush=True)
        built = build_tree(engine, data, signer=signer)
        print(f"{kind}: built in {built.seconds:.1f} s; timing inclusion proofs", flush=True)
        ledger = LedgerService(engine, master=MasterKey.generate(), signer=signer, batch=args.batch)
        proofs = proof_latency(
            f"ours_{kind}",
            built.seconds,
            lambda i: ledger.inclusion_proof(index=i, size=size),
            plan,
            out,
        )
        print(f"{kind}: durable appends on the {size:,}-leaf ledger", flush=True)
        feed = AuditFeed(audit, args.patients, random.Random(args.seed + 2))
        warm_up(ledger, feed)
        for _ in range(args.repeats):
            time_sequencer(f"ours_{kind}_big", ledger, feed, args.entries, out)
    checked = [(i, leaf_hash(data[i]), proof) for i, proof in proofs]
    try:
        for i, leaf, proof in checked:
            verify_inclusion(i, size, leaf, proof, built.root)
    except ProofError as exc:
        raise BenchError(f"{kind}: a proof from the bulk-loaded ledger does not verify: {exc}") from None
    return built.root, checked


def bench_proofs_pymerkle(
    workdir: Path, data: Sequence[bytes], plan: Passes, root: bytes | None, out: Results
) -> list[Any]:
    """pymerkle's ``prove_inclusion`` on a SqliteTree and an InmemoryTree of the same leaves; returns
    (leaf hash, proof) of the InmemoryTree's last pass, for the verification rate."""
    from pymerkle import InmemoryTree

    size = len(data)
    print(f"pymerkle: building a SqliteTree of {size:,} leaves", flush=True)
    started = time.perf_counter()
    tree = sqlite_tree(workdir / "pymerkle-tree.db", ours_pragmas=True)
    tree.append_entries(data)
    build_s = time.perf_counter() - started
    if root is not None and tree.get_root() != root:
        raise BenchError("pymerkle's SqliteTree root differs from our checkpoint's over the same leaves")
    proof_latency("pymerkle_sqlite", build_s, lambda i: tree.prove_inclusion(i + 1, size), plan, out)
    tree.close()
    print(f"pymerkle: building an InmemoryTree of {size:,} leaves", flush=True)
    started = time.perf_counter()
    mem = InmemoryTree()
    for item in data:
        mem.append_entry(item)
    build_s = time.perf_counter() - started
    if root is not None and mem.get_root() != root:
        raise BenchError("pymerkle's InmemoryTree root differs from our checkpoint's over the same leaves")
    proofs = proof_latency("pymerkle_memory", build_s, lambda i: mem.prove_inclusion(i + 1, size), plan, out)
    out.notes["pymerkle_root"] = mem.get_root().hex()
    return [(mem.get_leaf(i + 1), p) for i, p in proofs]


def bench_verify(
    size: int, root: bytes, ours: list[Any], theirs: list[Any], repeats: int, out: Results
) -> None:
    from pymerkle import verify_inclusion as pymerkle_verify

    def run_ours() -> None:
        for index, leaf, proof in ours:
            verify_inclusion(index, size, leaf, proof, root)

    def run_theirs() -> None:
        for leaf, proof in theirs:
            pymerkle_verify(leaf, root, proof)

    for _ in range(repeats):
        if ours:
            out.add("ours_verify", len(ours), timed(run_ours))
        if theirs:
            out.add("pymerkle_verify", len(theirs), timed(run_theirs))


# --- the report -----------------------------------------------------------------------------------


def print_rates(out: Results, args: argparse.Namespace) -> None:
    print(
        f"\nAppends per second (medians; in memory: {args.memory_entries:,} entries x {args.memory_repeats} "
        f"runs; durable: {args.entries:,} x {args.repeats}, batch {args.batch:,})"
    )
    head = f"{'what':52} {'median':>11}  runs"
    print(head + "\n" + "-" * (len(head) + 30))
    for name in NAMES:
        if name.endswith("verify") or name not in out.rates:
            continue
        runs = " ".join(f"{r:,.0f}" for r in out.rates[name])
        label = NAMES[name].format(leaves=f"{args.leaves:,}")
        print(f"{label:52} {out.median(name):11,.0f}  {runs}")
    if "pymerkle_single" in out.rates:
        print(f"(pymerkle append_entry: {min(args.entries, args.single):,} entries per run, one commit each)")


def print_proofs(out: Results, args: argparse.Namespace) -> None:
    if not out.proofs:
        return
    print(
        f"\nInclusion proofs at {args.leaves:,} leaves ({args.proofs:,} random indices per pass, "
        f"{args.repeats} passes, after up to {WARM_UP_PROOFS} warm-up calls, at most "
        f"{args.proof_seconds:g} s a system;\nmedians of the passes)"
    )
    head = f"{'system':48} {'build s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  calls timed"
    print(head + "\n" + "-" * len(head))
    labels = {
        "ours_sqlite": "ours, SQLite: LedgerService.inclusion_proof",
        "ours_postgres": "ours, PostgreSQL: LedgerService.inclusion_proof",
        "pymerkle_sqlite": "pymerkle SqliteTree.prove_inclusion",
        "pymerkle_memory": "pymerkle InmemoryTree.prove_inclusion",
    }
    for system, p in out.proofs.items():
        times = f"{p['p50_ms']:8.3f} {p['p99_ms']:8.3f} {p['max_ms']:8.2f}"
        calls = "/".join(f"{c:,}" for c in p["calls"])
        print(f"{labels[system]:48} {p['build_s']:8.1f} {times}  {calls}")
    verify = [n for n in ("ours_verify", "pymerkle_verify") if n in out.rates]
    if verify:
        print("\nProofs verified per second (medians)")
        for name in verify:
            runs = " ".join(f"{r:,.0f}" for r in out.rates[name])
            print(f"{NAMES[name]:52} {out.median(name):11,.0f}  {runs}")


def print_other_ratios(out: Results) -> None:
    others = [
        ("ours in memory / pymerkle InmemoryTree", "ours_memory", "pymerkle_memory", True),
        (
            "ours durable SQLite / SqliteTree.append_entries, its defaults",
            "ours_sqlite",
            "pymerkle_batch_default",
            True,
        ),
        (
            "ours durable SQLite / SqliteTree.append_entry (commit each)",
            "ours_sqlite",
            "pymerkle_single",
            True,
        ),
        (
            "ours durable PostgreSQL / SqliteTree.append_entry (commit each)",
            "ours_postgres",
            "pymerkle_single",
            False,
        ),
        (
            "ours raw store SQLite / SqliteTree.append_entries, our settings",
            "raw_sqlite",
            "pymerkle_batch_ours",
            True,
        ),
        ("ours verify_inclusion / pymerkle verify_inclusion", "ours_verify", "pymerkle_verify", True),
    ]
    found = [(label, out.ratio(a, b, paired=paired)) for label, a, b, paired in others]
    if any(r is not None for _, r in found):
        print("\nOther ratios, ours/peer (no target)")
        for label, r in found:
            if r is not None:
                print(f"{label:66} {r:9.2f}")


def targets(out: Results, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(
        target: str, ours: float | None, peer: float | None, ratio: float | None, need: str, ok: bool
    ) -> None:
        rows.append(
            {"target": target, "ours": ours, "peer": peer, "ratio": ratio, "need": need, "passed": ok}
        )

    peer = out.median("pymerkle_batch_ours")
    for kind, label in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        ratio = out.ratio(f"ours_{kind}", "pymerkle_batch_ours", paired=kind == "sqlite")
        if ratio is not None:
            target = f"durable appends/s, {label} vs pymerkle SqliteTree"
            row(
                target,
                out.median(f"ours_{kind}"),
                peer,
                ratio,
                f">= {DURABLE_RATIO:g}x",
                ratio >= DURABLE_RATIO,
            )
    ratio = out.ratio("ours_memory", "sha256", paired=True)
    if ratio is not None:
        target = "in-memory appends/s vs SHA-256 ceiling"
        need = f">= {MEMORY_SHARE:.2f}x"
        row(target, out.median("ours_memory"), out.median("sha256"), ratio, need, ratio >= MEMORY_SHARE)
    peer_p99 = out.proofs.get("pymerkle_sqlite", {}).get("p99_ms")
    for kind, label in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        found = out.proofs.get(f"ours_{kind}")
        if found is not None:
            p99 = found["p99_ms"]
            target = f"proof p99 ms, {label}, {args.leaves:,} leaves"
            row(
                target,
                p99,
                peer_p99,
                p99 / peer_p99 if peer_p99 else None,
                f"< {PROOF_P99_MS:g} ms",
                p99 < PROOF_P99_MS,
            )
    return rows


def print_targets(rows: list[dict[str, Any]], args: argparse.Namespace) -> bool:
    print(
        "\nTargets (peer for durable appends: pymerkle SqliteTree.append_entries, our settings; for proofs:\n"
        "pymerkle SqliteTree p99, where ours/peer < 1 is better. Where runs were interleaved one for one\n"
        "(in memory; SQLite durable), ours/peer is the median of the run-by-run ratios.)"
    )
    head = f"{'target':52} {'ours':>11} {'peer':>11} {'ours/peer':>9}  target"
    print(head + "\n" + "-" * (len(head) + 16))
    for r in rows:

        def fmt(v: float | None) -> str:
            if v is None:
                return "-"
            return f"{v:,.0f}" if v >= 100 else f"{v:.3f}"

        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}" if r["ratio"] < 1 else f"{r['ratio']:.2f}"
        verdict = "PASS" if r["passed"] else "FAIL"
        print(f"{r['target']:52} {fmt(r['ours']):>11} {fmt(r['peer']):>11} {ratio:>9}  {r['need']} {verdict}")
    if args.leaves != 1_000_000 and any("proof" in r["target"] for r in rows):
        print(f"NOTE: the proof target is for 1,000,000 leaves; this run used {args.leaves:,}.")
    print("\n" + CONTEXT)
    return all(r["passed"] for r in rows)


# --- main -----------------------------------------------------------------------------------------


def run(args: argparse.Namespace, workdir: Path, out: Results) -> None:
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    need = max(args.leaves, args.memory_entries, args.entries * args.repeats)
    print(f"generating {need:,} entries of 200 bytes (seed {args.seed})", flush=True)
    data = leaf_data(need, args.seed)
    print("in memory: SHA-256 ceiling, ours, pymerkle InmemoryTree", flush=True)
    bench_memory(data[: args.memory_entries], args.memory_repeats, out)
    for kind in dbs:
        peers = ", pymerkle SqliteTree" if kind == "sqlite" else ""
        print(f"{kind}: durable appends (ours, raw store{peers})", flush=True)
        bench_durable(kind, workdir, data, args, out)
    tree = data[: args.leaves]
    rng = random.Random(args.seed + 1)
    plan = Passes(
        warm=[rng.randrange(args.leaves) for _ in range(WARM_UP_PROOFS)],
        passes=[[rng.randrange(args.leaves) for _ in range(args.proofs)] for _ in range(args.repeats)],
        seconds=args.proof_seconds,
    )
    root, ours = None, []
    for kind in dbs:
        found_root, found = bench_proofs_ours(kind, workdir, tree, plan, args, out)
        if root is not None and found_root != root:
            raise BenchError("SQLite and PostgreSQL ledgers of the same leaves have different roots")
        root, ours = found_root, max(ours, found, key=len)  # a slow system may have timed fewer
    theirs = bench_proofs_pymerkle(workdir, tree, plan, root, out)
    if root is not None:
        bench_verify(args.leaves, root, ours, theirs, max(args.repeats, 3), out)


class UsageParser(argparse.ArgumentParser):
    """Exits 1 on a usage error (argparse's 2 means a failed target here)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    ap = UsageParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--quick", action="store_true", help="smoke run: 100,000 leaves and small counts")
    ap.add_argument("--leaves", type=int, help="size of the proof tree (default 1,000,000; --quick 100,000)")
    ap.add_argument("--entries", type=int, help="durable appends per run (default 20,000; --quick 5,000)")
    ap.add_argument(
        "--memory-entries", type=int, help="in-memory appends per run (default 200,000; --quick 50,000)"
    )
    ap.add_argument("--proofs", type=int, help="random indices per proof pass (default 2,000; --quick 500)")
    ap.add_argument(
        "--proof-seconds",
        type=float,
        help="most time one system spends on proofs (default 60; --quick 20); slow passes stop early",
    )
    ap.add_argument("--batch", type=int, default=1000, help="entries per transaction (the sequencer's batch)")
    ap.add_argument("--patients", type=int, default=200, help="patients the audit events name")
    ap.add_argument(
        "--single", type=int, default=500, help="entries per run of pymerkle's one-commit-per-entry append"
    )
    ap.add_argument("--repeats", type=int, default=3, help="runs per rate and proof passes; medians")
    ap.add_argument("--seed", type=int, default=20260105)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    quick = args.quick
    defaults = {"leaves": 1_000_000, "entries": 20_000, "memory_entries": 200_000, "proofs": 2_000}
    defaults |= {"proof_seconds": 60.0}
    smoke = {"leaves": 100_000, "entries": 5_000, "memory_entries": 50_000, "proofs": 500}
    smoke |= {"proof_seconds": 20.0}
    for name, value in (smoke if quick else defaults).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.memory_repeats = max(args.repeats, 5)
    if min(args.leaves, args.entries, args.memory_entries, args.proofs, args.batch, args.repeats) < 1:
        ap.error("counts must be at least 1")
    if args.proof_seconds <= 0:
        ap.error("--proof-seconds must be positive")

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    workdir = Path(tempfile.mkdtemp(prefix="medweave-bench-ledger-"))
    out = Results()
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    try:
        out.notes["pymerkle"] = pymerkle_version()
        out.notes["code"] = code_version()
        run(args, workdir, out)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_rates(out, args)
    print_proofs(out, args)
    print_other_ratios(out)
    rows = targets(out, args)
    passed = print_targets(rows, args)
    dbs = "; ".join(f"{k}: {out.notes[k]}" for k in ("sqlite", "postgres") if k in out.notes)
    print(
        f"\nmedweave {out.notes['code']}; pymerkle {out.notes['pymerkle']}; "
        f"Python {platform.python_version()}; {dbs}\n"
        f"total {time.monotonic() - started:.0f} s; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPUs, load average {load_before:.2f} before and {os.getloadavg()[0]:.2f} after"
    )
    if args.json:
        doc = {
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "rates": {k: {"median": out.median(k), "runs": v} for k, v in out.rates.items()},
            "proofs": out.proofs,
            "targets": rows,
            "notes": out.notes,
            "passed": passed,
        }
        args.json.write_text(json.dumps(doc, indent=2))
    return 0 if passed else 2


if __name__ == "__main__":
    sys.exit(main())
