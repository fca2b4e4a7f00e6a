"""The risk detector as a whole: its evaluation on the labelled sets, and its failure handling.

Each set was written for the project by someone who had seen neither the detector nor the other
sets (docs/therapy.md keeps the history of each number):

- ``risk_messages.jsonl`` (400): the development set the phrases were written against.
- ``risk_holdout.jsonl`` (200): blind, it gave recall 0.81 and precision 0.95 for ideation+high;
  the phrases its misses showed were then added.
- ``risk_holdout2.jsonl`` (160): blind, 0.74 and 0.95. That led to the training corpus of the
  embedding layer (``src/medweave/therapy/data/risk_training.jsonl``, 900 sentences written
  apart from every evaluation set) and to thresholds chosen on the three sets above.
- ``risk_holdout3.jsonl`` (200): never read; its totals were looked at twice, 0.96 and 0.850
  after the training corpus, 0.98 and 0.852 after two general fixes found on holdout2.

Every set must meet the issue's bar: for ideation and high together, recall >= 0.98 and
precision >= 0.85.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from medweave.therapy.risk import ESCALATE, LEVELS, Detector
from medweave.therapy.risk_model import Encoder, ModelUnavailable

DATA = Path(__file__).parents[2] / "data" / "therapy"


@pytest.fixture(scope="module")
def detector() -> Detector:
    found = Detector()
    assert found.model_error is None, found.model_error
    return found


def evaluate(detector: Detector, name: str) -> tuple[float, float]:
    rows = [json.loads(line) for line in (DATA / name).read_text("utf-8").splitlines() if line.strip()]
    assert len(rows) >= 160 and len({r["id"] for r in rows}) == len(rows)
    results = detector.assess_many([r["text"] for r in rows])
    print(f"\n{name}: {len(rows)} messages")
    for level in LEVELS:  # per level, as the issue asks
        truth = [r["level"] == level for r in rows]
        said = [x.level == level for x in results]
        hit = sum(t and s for t, s in zip(truth, said, strict=True))
        recall = hit / max(sum(truth), 1)
        precision = hit / max(sum(said), 1)
        print(f"  {level:9} n={sum(truth):3}  recall {recall:.3f}  precision {precision:.3f}")
    truth = [r["level"] in ESCALATE for r in rows]
    said = [x.level in ESCALATE for x in results]
    hit = sum(t and s for t, s in zip(truth, said, strict=True))
    recall, precision = hit / sum(truth), hit / max(sum(said), 1)
    print(f"  ideation+high        recall {recall:.3f}  precision {precision:.3f}")
    for row, result in zip(rows, results, strict=True):
        if (row["level"] in ESCALATE) != result.escalate:
            print(f"  missed or raised: {row['id']} {row['level']} -> {result.level}")
    return recall, precision


@pytest.mark.parametrize(
    "name", ["risk_messages.jsonl", "risk_holdout.jsonl", "risk_holdout2.jsonl", "risk_holdout3.jsonl"]
)
def test_labelled_set(detector: Detector, name: str) -> None:
    recall, precision = evaluate(detector, name)
    assert recall >= 0.98
    assert precision >= 0.85


def test_evidence_points_into_the_message(detector: Detector) -> None:
    message = "Work was fine. But honestly I just want everything to stop permanently."
    result = detector.assess(message)
    assert result.escalate
    for e in result.evidence:
        assert message[e.start : e.end] == e.text


def test_a_crisis_message_escalates_without_the_model(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise ModelUnavailable("model.onnx would not load: test")

    with caplog.at_level(logging.ERROR):
        fallback = Detector(loader=broken)  # type: ignore[arg-type]
    assert fallback.classifier is None
    assert "model.onnx would not load" in caplog.text  # loud, in the log
    result = fallback.assess("I’m going to take all my tablets tonight")
    assert result.level == "high"
    assert result.as_json()["model"] == "unavailable"  # and in every result
    assert "would not load" in result.as_json()["model_error"]


def test_a_corrupt_model_file_is_reported_not_raised(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ModelUnavailable, match="would not load"):
        Encoder(bad)
