"""Therapy benchmark: risk-detection latency per message, and the assistant's turn latency.

Run it (not a test; about a minute on 2 CPUs)::

    .venv/bin/python bench/therapy.py [--repeats 3] [--turns 200] [--json FILE]

**Risk detection.** Every message of the labelled sets in ``tests/data/therapy`` (about 960, 3 to
70 words) through the full detector (normalisation, the phrase layer, the all-MiniLM-L6-v2 int8
ONNX layer sentence by sentence), on one CPU thread:

* *single*: one ``assess(text)`` call per message, as the chat makes them; latency per call;
* *batched*: ``assess_many`` over batches of 32, as ``medweave therapy risk --jsonl`` does; the
  per-message figure is the batch's time over its size.

The peer, in the same run, is the model alone: ``Encoder.encode`` of the same message, which is
the floor any embedding-based detector pays. Quoted: p50 and p99 per message and the ratio to the
peer. Target (issue 6): p95 under 100 ms per message.

**Assistant turn.** ``Conversations.say`` against a record store on SQLite in a temporary
directory (encryption, access checks, audit and ledger leaves on): a scripted mix of check-ins,
questionnaires item by item, exercises and risky messages that raise alerts, ``--turns`` turns.
A turn reads the conversation and the latest scores, assesses the message, runs the dialog,
carries out the actions (scores, alerts) and writes the transcript. The peer is the floor of the
store: one ``records.update`` of a DocumentReference of the same size. Quoted: p50 and p95.
Target (issue 6): p95 under 300 ms.

Each part runs ``--repeats`` times; figures are medians over the runs. Exit status 0 when both
targets pass, 2 when one fails, 1 when the benchmark itself failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "therapy"
RISK_TARGET_MS, TURN_TARGET_MS = 100.0, 300.0
BATCH = 32


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def messages() -> list[str]:
    out = []
    for path in sorted(DATA.glob("risk_*.jsonl")):
        out += [json.loads(line)["text"] for line in path.read_text("utf-8").splitlines() if line.strip()]
    return out


def risk_run(texts: list[str]) -> dict[str, float]:
    from medweave.therapy.risk import shared

    detector = shared(model=True)
    assert detector.classifier is not None, detector.model_error
    encoder = detector.classifier._encoder  # type: ignore[attr-defined]
    for t in texts[:20]:  # warm up caches and the ONNX session
        detector.assess(t)
    single, floor = [], []
    for t in texts:
        start = time.perf_counter()
        detector.assess(t)
        single.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        encoder.encode([t])
        floor.append((time.perf_counter() - start) * 1000)
    batched = []
    for i in range(0, len(texts), BATCH):
        chunk = texts[i : i + BATCH]
        start = time.perf_counter()
        detector.assess_many(chunk)
        batched += [(time.perf_counter() - start) * 1000 / len(chunk)] * len(chunk)
    return {
        "single_p50": quantile(single, 0.5),
        "single_p95": quantile(single, 0.95),
        "single_p99": quantile(single, 0.99),
        "batched_p50": quantile(batched, 0.5),
        "batched_p95": quantile(batched, 0.95),
        "batched_p99": quantile(batched, 0.99),
        "model_p50": quantile(floor, 0.5),
        "model_p99": quantile(floor, 0.99),
    }


SCRIPT = [
    "hello", "check in", "6", "PHQ-9", "several days", "more than half the days", "1", "2", "0", "1",
    "nearly every day", "0", "0", "exercise", "breathing", "menu", "GAD-7", "2", "2", "1", "1", "0", "1",
    "2", "my goal is to sleep better", "thought record", "an argument at work", "angry", "70", "stop",
    "I can't go on like this, I want to die", "no", "human", "what can you do", "check in", "3",
]  # fmt: skip


def turn_run(turns: int) -> dict[str, float]:
    from medweave.audit import AuditService
    from medweave.db import make_engine
    from medweave.migrate import upgrade
    from medweave.records.service import RecordService
    from medweave.security.crypto import MasterKey
    from medweave.security.principal import Principal, Role
    from medweave.security.scopes import ScopeSet
    from medweave.therapy.conversations import ASSISTANT, Conversations, _document
    from medweave.therapy.risk import shared

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        records = RecordService(
            engine=engine,
            master=MasterKey.generate(),
            base_url="http://bench/fhir",
            audit=AuditService(engine),
        )
        op = Principal.internal("bench")
        talk = Conversations(records, shared(model=True))
        latencies, floor = [], []
        now = datetime(2027, 1, 1, 9, tzinfo=UTC)
        n = 0
        while n < turns:
            pid = records.create(principal=op, res_type="Patient", data={"resourceType": "Patient"}).res_id
            patient = Principal(
                kind="user",
                subject=f"u-{pid}",
                scopes=ScopeSet.parse("patient/*.rs patient/QuestionnaireResponse.cu"),
                role=Role.PATIENT,
                patient_id=pid,
            )
            for text in SCRIPT:
                if n >= turns:
                    break
                now += timedelta(seconds=30)
                start = time.perf_counter()
                talk.say(principal=patient, patient_id=pid, text=text, now=now)
                latencies.append((time.perf_counter() - start) * 1000)
                n += 1
            state = talk._load(pid, now)  # the floor: one write of a transcript of the same size
            doc = {**_document(pid, state.day, state.state, state.messages, now), "id": state.doc_id}
            for _ in range(10):
                start = time.perf_counter()
                records.update(
                    principal=ASSISTANT, res_type="DocumentReference", res_id=str(state.doc_id), data=doc
                )
                floor.append((time.perf_counter() - start) * 1000)
        engine.dispose()
    return {
        "turn_p50": quantile(latencies, 0.5),
        "turn_p95": quantile(latencies, 0.95),
        "store_write_p50": quantile(floor, 0.5),
    }


def median_of(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    texts = messages()
    risk, turn = [], []
    for _ in range(args.repeats):
        risk.append(risk_run(texts))
        turn.append(turn_run(args.turns))
    r = {k: median_of(risk, k) for k in risk[0]}
    t = {k: median_of(turn, k) for k in turn[0]}
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"risk detection, {len(texts)} messages, median of {args.repeats} runs (ms per message):")
    model = f"model alone p50 {r['model_p50']:.1f}, p99 {r['model_p99']:.1f}"
    print(f"  {'':10} {'p50':>7} {'p95':>7} {'p99':>7}   {model}")
    for mode in ("single", "batched"):
        print(
            f"  {mode:10} {r[mode + '_p50']:7.1f} {r[mode + '_p95']:7.1f} {r[mode + '_p99']:7.1f}"
            f"   ratio to the model alone (p50) {r[mode + '_p50'] / r['model_p50']:.2f}x"
        )
    print(
        f"assistant turn, {args.turns} turns: p50 {t['turn_p50']:.1f} ms, p95 {t['turn_p95']:.1f} ms; "
        f"one transcript write alone p50 {t['store_write_p50']:.1f} ms "
        f"(ratio p50 {t['turn_p50'] / t['store_write_p50']:.2f}x)"
    )
    risk_ok = max(r["single_p95"], r["batched_p95"]) < RISK_TARGET_MS
    turn_ok = t["turn_p95"] < TURN_TARGET_MS
    print(f"target risk p95 < {RISK_TARGET_MS:.0f} ms: {'PASS' if risk_ok else 'FAIL'}")
    print(f"target turn p95 < {TURN_TARGET_MS:.0f} ms: {'PASS' if turn_ok else 'FAIL'}")
    if args.json:
        args.json.write_text(
            json.dumps({"risk": r, "turn": t, "runs": {"risk": risk, "turn": turn}}, indent=1)
        )
    return 0 if risk_ok and turn_ok else 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # the benchmark itself failed
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
