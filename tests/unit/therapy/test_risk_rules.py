"""The phrase layer with its context handling, one case per way it can go wrong."""

from __future__ import annotations

import pytest

from medweave.therapy.risk import Detector

RULES_ONLY = Detector(model=False)


@pytest.mark.parametrize(
    ("message", "level", "tag"),
    [
        # intent, plan, means, timeline, attempt, goodbye
        ("I'm going to kill myself", "high", "intent"),
        ("I have a plan for how I'll do it", "high", "plan"),
        ("I've been saving up my pills for when it gets bad", "high", "means"),
        ("I want to die and I've got the rope", "high", "means"),
        ("I want to die. I keep going back to the bridge", "high", "means or goodbye"),
        ("I'll end it tonight", "high", "intent"),
        ("I took a whole packet of paracetamol an hour ago", "high", "attempt"),
        ("I wrote goodbye letters to my kids", "high", "goodbye"),
        ("I'm giving my things away, I won't need them", "high", "goodbye"),
        # ideation: active, passive, self-harm, past attempt
        ("I keep thinking about killing myself", "ideation", "active"),
        ("everyone would be better off without me", "ideation", "passive"),
        ("I wish I could go to sleep and never wake up", "ideation", "passive"),
        ("I cut myself again last night", "ideation", "self_harm"),
        ("I tried to kill myself when I was 19", "ideation", "past_attempt"),
        ("when I was a teenager I took a whole bottle of pills", "ideation", "past_attempt"),
        # distress, and someone else's risk (a safeguarding concern)
        ("I feel completely hopeless", "concern", "distress"),
        ("my sister said she wants to kill herself", "concern", "other-person"),
        ("my friend has been cutting her arms", "concern", "other-person"),
        ("a girl in my class said she wants to kms", "concern", "other-person"),
    ],
)
def test_levels(message: str, level: str, tag: str) -> None:
    result = RULES_ONLY.assess(message)
    assert result.level == level, result
    assert tag in {e.tag for e in result.evidence}, result.evidence
    for e in result.evidence:
        assert message[e.start : e.end] == e.text


@pytest.mark.parametrize(
    "message",
    [
        "I would never kill myself",  # negation
        "I'm not suicidal, just exhausted",
        "I'm not going to do anything to harm myself",
        "you asked about thoughts of suicide - no, none at all",  # a denial after the phrase
        "this traffic is killing me",  # idioms
        "I killed it at the gig",
        "I'm dying to see that film",
        "I'm a skilled welder",  # substrings
        "hanging pictures in the hall",
        "I take my blood pressure tablets every morning",  # medical
        "we did suicide prevention training at work",  # the topic, not a disclosure
        "my grandad died last week",  # grief
    ],
)
def test_hard_negatives(message: str) -> None:
    assert RULES_ONLY.assess(message).level == "none"


@pytest.mark.parametrize(
    "message",
    [
        "I don’t want to live anymore",  # curly apostrophe
        "I dont want to live anymore",
        "i want to dieeee",
        "k1ll mys3lf",
        "sucide is all I think about",
        "I'm not sure I want to live",  # a hedge, not a negation
        "I don't know if I can go on living",
        "they don't know it's the last time they'll hear from me",
    ],
)
def test_disguised_risk_still_escalates(message: str) -> None:
    assert RULES_ONLY.assess(message).escalate
