"""Measurement-based care outcomes, as NHS Talking Therapies defines them. Pure.

Source: NHS Talking Therapies for anxiety and depression Manual (NHS England, v7.1, 2024),
"Outcome measures and their interpretation", and NHS Digital's Talking Therapies outcome
definitions, which use PHQ-9 for depression and GAD-7 as the anxiety measure:

- **caseness**: PHQ-9 >= 10 and/or GAD-7 >= 8 (the clinical cut-offs);
- **reliable improvement**: PHQ-9 falls by 6 or more, or GAD-7 by 4 or more (the reliable
  change indices), with no reliable deterioration on the other measure;
- **reliable deterioration**: PHQ-9 rises by 6 or more, or GAD-7 by 4 or more, with no reliable
  improvement on the other measure;
- **recovery**: a case at the start, and below both cut-offs at the end;
- **reliable recovery**: recovery and reliable improvement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

PHQ9_CASENESS, GAD7_CASENESS = 10, 8
PHQ9_RELIABLE_CHANGE, GAD7_RELIABLE_CHANGE = 6, 4


@dataclass(frozen=True)
class Outcome:
    caseness_start: bool
    caseness_end: bool
    reliable_improvement: bool
    reliable_deterioration: bool
    recovery: bool
    reliable_recovery: bool

    def as_json(self) -> dict[str, bool]:
        return asdict(self)


def is_case(phq9: int, gad7: int) -> bool:
    return phq9 >= PHQ9_CASENESS or gad7 >= GAD7_CASENESS


def outcome(*, phq9: tuple[int, int], gad7: tuple[int, int]) -> Outcome:
    """Outcome from the first and last PHQ-9 and GAD-7 totals of a course of care."""
    for total, top in ((phq9[0], 27), (phq9[1], 27), (gad7[0], 21), (gad7[1], 21)):
        if not 0 <= total <= top:
            raise ValueError("PHQ-9 totals run from 0 to 27 and GAD-7 totals from 0 to 21")
    phq_change, gad_change = phq9[1] - phq9[0], gad7[1] - gad7[0]
    phq_better, gad_better = phq_change <= -PHQ9_RELIABLE_CHANGE, gad_change <= -GAD7_RELIABLE_CHANGE
    phq_worse, gad_worse = phq_change >= PHQ9_RELIABLE_CHANGE, gad_change >= GAD7_RELIABLE_CHANGE
    improved = (phq_better and not gad_worse) or (gad_better and not phq_worse)
    deteriorated = (phq_worse and not gad_better) or (gad_worse and not phq_better)
    start, end = is_case(phq9[0], gad7[0]), is_case(phq9[1], gad7[1])
    recovered = start and not end
    return Outcome(start, end, improved, deteriorated, recovered, recovered and improved)
