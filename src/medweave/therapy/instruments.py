"""The validated self-report instruments of the therapy assistant, scored exactly. Pure.

Each item is answered 0-3 ("not at all", "several days", "more than half the days", "nearly
every day") over the last two weeks; the total is the sum. Sources:

- **PHQ-9** (9 items, 0-27): Kroenke K, Spitzer RL, Williams JBW. The PHQ-9: validity of a brief
  depression severity measure. J Gen Intern Med 2001;16(9):606-613. Severity: 0-4 minimal, 5-9
  mild, 10-14 moderate, 15-19 moderately severe, 20-27 severe (Table 3 there). Item 9 ("thoughts
  that you would be better off dead, or of hurting yourself") answered 1 or more needs a risk
  review whatever the total (the PHQ-9 instructions; issue 6). LOINC panel 44249-1, total
  44261-6, item 9 44260-8.
- **GAD-7** (7 items, 0-21): Spitzer RL, Kroenke K, Williams JBW, Löwe B. A brief measure for
  assessing generalized anxiety disorder: the GAD-7. Arch Intern Med 2006;166(10):1092-1097.
  Severity: 0-4 minimal, 5-9 mild, 10-14 moderate, 15-21 severe. LOINC panel 69737-5, total
  70274-6.
- **PHQ-2** (PHQ-9 items 1-2, 0-6): Kroenke K, Spitzer RL, Williams JBW. The Patient Health
  Questionnaire-2: validity of a two-item depression screener. Med Care 2003;41(11):1284-1292.
  A total of 3 or more is a positive screen, which leads to the full PHQ-9. LOINC panel 55757-9,
  total 55758-7.
- **GAD-2** (GAD-7 items 1-2, 0-6): Kroenke K, Spitzer RL, Williams JBW, Monahan PO, Löwe B.
  Anxiety disorders in primary care: prevalence, impairment, comorbidity, and detection. Ann
  Intern Med 2007;146(5):317-325. A total of 3 or more is positive and leads to the full GAD-7.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

ITEM_MIN, ITEM_MAX = 0, 3


class InvalidAnswers(ValueError):
    """Answers that cannot be scored: wrong count, or a value outside 0-3."""


@dataclass(frozen=True)
class Band:
    low: int
    high: int
    label: str


@dataclass(frozen=True)
class Instrument:
    code: str  # phq9, gad7, phq2, gad2
    title: str
    items: int
    bands: tuple[Band, ...]
    panel_loinc: str | None = None
    total_loinc: str | None = None
    positive_at: int | None = None  # screeners: a total at or above this is a positive screen
    full: str | None = None  # the full instrument a positive screen leads to
    risk_items: tuple[int, ...] = field(default_factory=tuple)  # 1-based items that flag risk at >= 1

    @property
    def max_total(self) -> int:
        return self.items * ITEM_MAX


@dataclass(frozen=True)
class Score:
    instrument: str
    total: int
    severity: str
    flags: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {"total": self.total, "severity": self.severity, "flags": list(self.flags)}


PHQ9 = Instrument(
    "phq9",
    "Patient Health Questionnaire-9",
    9,
    (
        Band(0, 4, "minimal"),
        Band(5, 9, "mild"),
        Band(10, 14, "moderate"),
        Band(15, 19, "moderately severe"),
        Band(20, 27, "severe"),
    ),
    panel_loinc="44249-1",
    total_loinc="44261-6",
    risk_items=(9,),
)
GAD7 = Instrument(
    "gad7",
    "Generalized Anxiety Disorder-7",
    7,
    (Band(0, 4, "minimal"), Band(5, 9, "mild"), Band(10, 14, "moderate"), Band(15, 21, "severe")),
    panel_loinc="69737-5",
    total_loinc="70274-6",
)
PHQ2 = Instrument(
    "phq2",
    "Patient Health Questionnaire-2",
    2,
    (Band(0, 2, "negative"), Band(3, 6, "positive")),
    panel_loinc="55757-9",
    total_loinc="55758-7",
    positive_at=3,
    full="phq9",
)
GAD2 = Instrument(
    "gad2",
    "Generalized Anxiety Disorder-2",
    2,
    (Band(0, 2, "negative"), Band(3, 6, "positive")),
    positive_at=3,
    full="gad7",
)
INSTRUMENTS = {i.code: i for i in (PHQ9, GAD7, PHQ2, GAD2)}
PHQ9_ITEM9_LOINC = "44260-8"


def band(instrument: Instrument, total: int) -> str:
    """The severity band of a total (ValueError outside the instrument's range)."""
    for b in instrument.bands:
        if b.low <= total <= b.high:
            return b.label
    raise ValueError(f"{instrument.code} totals run from 0 to {instrument.max_total}")


def score(instrument: Instrument, answers: Sequence[int]) -> Score:
    """The total, its severity band and flags (``risk-review``, ``positive-screen``)."""
    if len(answers) != instrument.items:
        raise InvalidAnswers(f"{instrument.code} has {instrument.items} items; got {len(answers)} answers")
    for n, value in enumerate(answers, start=1):
        if isinstance(value, bool) or not isinstance(value, int) or not ITEM_MIN <= value <= ITEM_MAX:
            raise InvalidAnswers(f"item {n}: answers are whole numbers from {ITEM_MIN} to {ITEM_MAX}")
    total = sum(answers)
    severity = band(instrument, total)
    flags: list[str] = []
    if any(answers[i - 1] >= 1 for i in instrument.risk_items):
        flags.append("risk-review")
    if instrument.positive_at is not None and total >= instrument.positive_at:
        flags.append(f"positive-screen:{instrument.full}")
    return Score(instrument.code, total, severity, tuple(flags))


def parse_answers(text: str) -> list[int]:
    """``"0,1,2,3"`` as a list of ints; InvalidAnswers for anything else."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p.isdigit() or not p.isascii() for p in parts):
        raise InvalidAnswers("answers are comma-separated whole numbers, like 0,1,2,3")
    return [int(p) for p in parts]
