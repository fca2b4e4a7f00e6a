"""NHS Talking Therapies outcomes: a table of cases, and every pair of totals against a reference."""

from __future__ import annotations

import itertools

import pytest

from medweave.therapy.outcomes import outcome


def reference(phq: tuple[int, int], gad: tuple[int, int]) -> dict[str, bool]:
    """Written from the definitions: cut-offs PHQ-9 10 and GAD-7 8; reliable change 6 and 4."""
    case_start = phq[0] >= 10 or gad[0] >= 8
    case_end = phq[1] >= 10 or gad[1] >= 8
    phq_down, gad_down = phq[0] - phq[1] >= 6, gad[0] - gad[1] >= 4
    phq_up, gad_up = phq[1] - phq[0] >= 6, gad[1] - gad[0] >= 4
    improvement = (phq_down or gad_down) and not (phq_up or gad_up)
    deterioration = (phq_up or gad_up) and not (phq_down or gad_down)
    recovery = case_start and not case_end
    return {
        "caseness_start": case_start,
        "caseness_end": case_end,
        "reliable_improvement": improvement,
        "reliable_deterioration": deterioration,
        "recovery": recovery,
        "reliable_recovery": recovery and improvement,
    }


@pytest.mark.parametrize(
    ("phq", "gad", "expected"),
    [
        ((18, 3), (12, 2), {"reliable_improvement", "recovery", "reliable_recovery", "caseness_start"}),
        ((12, 9), (9, 7), {"caseness_start", "recovery"}),  # below both cut-offs, but not reliably
        ((8, 2), (5, 3), {"reliable_improvement"}),  # not a case at the start: no recovery
        ((14, 8), (9, 13), {"caseness_start", "caseness_end"}),  # better on one, worse on the other
        ((10, 16), (4, 4), {"caseness_start", "caseness_end", "reliable_deterioration"}),
        ((9, 9), (7, 7), set()),
    ],
)
def test_cases(phq: tuple[int, int], gad: tuple[int, int], expected: set[str]) -> None:
    got = outcome(phq9=phq, gad7=gad).as_json()
    assert {k for k, v in got.items() if v} == expected


def test_every_pair_of_totals_matches_the_definitions() -> None:
    for p0, p1 in itertools.product(range(0, 28, 3), repeat=2):
        for g0, g1 in itertools.product(range(22), repeat=2):
            assert outcome(phq9=(p0, p1), gad7=(g0, g1)).as_json() == reference((p0, p1), (g0, g1))


def test_totals_out_of_range() -> None:
    for phq, gad in (((28, 0), (0, 0)), ((0, 0), (0, 22)), ((-1, 0), (0, 0))):
        with pytest.raises(ValueError):
            outcome(phq9=phq, gad7=gad)
