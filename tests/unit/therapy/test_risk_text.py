"""Normalisation for the risk detector: the known ways keyword lists fail, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medweave.therapy.risk_text import normalise, tokens


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("I don’t want to LIVE", "i dont want to live"),  # curly apostrophe, case
        ("I don't want to live", "i dont want to live"),
        ("I dont want to live", "i dont want to live"),
        ("I want to dieeee", "i want to die"),  # stretched letters
        ("wanna diee", "want to die"),
        ("k1ll mys3lf 2nite", "kill myself tonight"),  # leetspeak
        ("$uicide", "suicide"),
        ("sucide", "suicide"),  # misspelling
        ("kms", "kill myself"),
        ("skilled", "skilled"),  # not a risk word: left alone
        ("I took 10mg", "i took 10mg"),  # numbers are not leetspeak
        ("“quoted”", '" quoted "'),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_spans_point_at_the_original_words() -> None:
    message = "I don’t want to l1ve"
    found = {t.text: message[t.start : t.end] for t in tokens(message)}
    assert found["dont"] == "don’t"
    assert found["live"] == "l1ve"


@given(st.text())
def test_never_raises_and_spans_are_in_the_message(message: str) -> None:
    for tok in tokens(message):
        assert 0 <= tok.start < tok.end <= len(message)
        assert tok.text.strip() or tok.text == "\n"


@given(st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyz '’"), max_size=60))
def test_curly_and_straight_apostrophes_normalise_alike(message: str) -> None:
    assert normalise(message) == normalise(message.replace("’", "'"))
