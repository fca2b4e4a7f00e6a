"""Risk detection in a patient's free text: the layers together, recall first.

1. Normalisation (``risk_text``): quotes, case, stretched letters, leetspeak, misspellings.
2. The clinical phrase layer (``risk_rules``): intent, plan, means, timeline, attempts,
   self-harm, goodbye behaviours, passive ideation; with negation, idioms and whose risk it is.
3. The sentence-embedding layer (``risk_model``), sentence by sentence, for what has no phrase.
   It may raise a sentence's level but never lower one, and it is not asked about a sentence
   the phrase layer has already explained away: one with a negated risk phrase, an idiom, or
   only someone else as its subject (at most ``concern`` there, a safeguarding matter).

The level is the highest any layer found: ``none``, ``concern``, ``ideation`` or ``high``, each
with its evidence (the span in the message, the layer and the rule). Ideation together with means
("pills", "rope") or a near timeline ("tonight") anywhere in the message is ``high``, as a plan
with means is in the C-SSRS (Posner 2011, questions 4-5).

If the model cannot load, the phrase layers still run: every result then says
``model: "unavailable"`` with the reason, and the failure is logged as an error once per
detector. It is never silently ignored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from medweave.therapy import risk_rules
from medweave.therapy.risk_model import Classifier, ModelUnavailable, Vote, load
from medweave.therapy.risk_text import tokens

log = logging.getLogger(__name__)

LEVELS = risk_rules.LEVELS
ESCALATE = frozenset({"ideation", "high"})
SUICIDAL = frozenset({"active", "passive"})
MODEL_MIN_WORDS = 4
_ME_TOO = re.compile(
    r"\b(?:me too|me as well|so do i|so am i|same here|same for me|i do too|i feel the same|i have too|"
    r"i (?:do|feel|think about it) sometimes too)\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")


def rank(level: str) -> int:
    return LEVELS.index(level)


@dataclass(frozen=True)
class Evidence:
    start: int
    end: int
    text: str
    layer: str  # "phrase", "model" or "context"
    tag: str  # the rule, e.g. "plan", "passive", "other-person", or the model's level

    def as_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text, "layer": self.layer, "tag": self.tag}


@dataclass(frozen=True)
class Result:
    level: str
    evidence: tuple[Evidence, ...] = ()
    about_other: bool = False  # someone else's risk was reported: a safeguarding concern
    model_error: str | None = None
    negated: tuple[Evidence, ...] = field(default=(), repr=False)

    @property
    def escalate(self) -> bool:
        return self.level in ESCALATE

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "level": self.level,
            "evidence": [e.as_json() for e in self.evidence],
            "about_other": self.about_other,
            "model": "unavailable" if self.model_error else "ok",
        }
        if self.model_error:
            out["model_error"] = self.model_error
        return out


def _sentences(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(text) if m.group().strip()]


def _inside(span: tuple[int, int], start: int, end: int) -> bool:
    return span[0] < end and start < span[1]


def _has_first_person(sentence: str) -> bool:
    return any(w in risk_rules.FIRST for t in tokens(sentence) for w in t.text.split())


def _has_other_subject(sentence: str) -> bool:
    return any(w in risk_rules.OTHER for t in tokens(sentence) for w in t.text.split())


class Detector:
    """Assesses messages. Build one per process: loading the model takes a second."""

    def __init__(self, *, model: bool = True, loader: Callable[[], Classifier] = load) -> None:
        self.classifier: Classifier | None = None
        self.model_error: str | None = None
        if not model:
            self.model_error = "disabled by configuration"
            log.error("therapy risk detector: embedding model disabled; the phrase layers run alone")
            return
        try:
            self.classifier = loader()
        except ModelUnavailable as exc:
            self.model_error = str(exc)
            log.error(
                "therapy risk detector: embedding model unavailable (%s); the phrase layers run alone", exc
            )

    def assess(self, text: str) -> Result:
        return self.assess_many([text])[0]

    def assess_many(self, texts: Sequence[str]) -> list[Result]:
        """Assess several messages, with the model run once over all their sentences."""
        partial = [_Partial.of(text) for text in texts]
        asks = [(i, span) for i, p in enumerate(partial) for span in p.open_sentences]
        votes: list[Vote] = []
        error = self.model_error
        if self.classifier is None:
            asks = []
        elif asks:
            try:
                votes = self.classifier.classify([texts[i][a:b] for i, (a, b) in asks])
            except Exception as exc:  # a model that loaded but fails: the phrases still answer
                error = f"the model failed: {type(exc).__name__}"
                log.error("therapy risk detector: %s; phrase layers only for this message", error)
                asks = []
        for (i, (a, b)), vote in zip(asks, votes, strict=True):
            if vote.level == "none":
                continue
            sentence = texts[i][a:b]
            if not _has_first_person(sentence) and _has_other_subject(sentence):
                level, tag = "concern", "other-person"  # someone else's risk: a safeguarding concern
            elif len(tokens(sentence)) < MODEL_MIN_WORDS:
                continue  # too short to judge alone ("I'm scared"); the phrases cover the short forms
            else:
                level, tag = vote.level, vote.level
            partial[i].found.append((level, Evidence(a, b, sentence.strip(), "model", tag)))
        return [p.result(error) for p in partial]


@dataclass
class _Partial:
    """One message part-way through: the phrase layer's findings and what is left for the model."""

    found: list[tuple[str, Evidence]]
    negated: list[Evidence]
    escalators: list[Evidence]
    open_sentences: list[tuple[int, int]]

    @classmethod
    def of(cls, text: str) -> _Partial:
        found: list[tuple[str, Evidence]] = []
        negated: list[Evidence] = []
        explained: list[tuple[int, int]] = list(risk_rules.idiom_spans(text))
        for hit in risk_rules.match(text):
            ev = Evidence(hit.start, hit.end, text[hit.start : hit.end], "phrase", hit.rule)
            if hit.negated or hit.about == "topic":
                negated.append(ev)
                explained.append((hit.start, hit.end))
            elif hit.about == "other":
                found.append(("concern", Evidence(hit.start, hit.end, ev.text, "context", "other-person")))
                explained.append((hit.start, hit.end))
            else:
                found.append((hit.level, ev))
                if rank(hit.level) >= rank("ideation"):
                    explained.append((hit.start, hit.end))
        if any(ev.tag == "other-person" for _, ev in found):  # "my sister wants to die, and so do I"
            for m in _ME_TOO.finditer(text):
                found.append(("ideation", Evidence(m.start(), m.end(), m.group(), "phrase", "passive")))
        escalators = [Evidence(a, b, text[a:b], "phrase", name) for name, a, b in risk_rules.escalators(text)]
        sentences = [(a, b) for a, b in _sentences(text) if not any(_inside(s, a, b) for s in explained)]
        return cls(found, negated, escalators, sentences)

    def result(self, model_error: str | None) -> Result:
        found = list(self.found)
        own = [level for level, ev in found if ev.tag != "other-person"]
        # Suicidal ideation, not self-harm or a past attempt alone, is raised by means or a timeline.
        suicidal = any(lvl == "ideation" and (ev.tag in SUICIDAL or ev.layer == "model") for lvl, ev in found)
        if max(own, key=rank, default="none") == "ideation" and suicidal:
            found += [("high", ev) for ev in self.escalators]
        level = max((lvl for lvl, _ in found), key=rank, default="none")
        evidence = tuple(sorted({ev for _, ev in found}, key=lambda e: (e.start, e.end, e.layer)))
        about_other = any(ev.tag == "other-person" for ev in evidence)
        return Result(level, evidence, about_other, model_error, tuple(self.negated))


@cache
def shared(*, model: bool = True) -> Detector:
    """One detector per process (loading the model takes a second and some memory)."""
    return Detector(model=model)
