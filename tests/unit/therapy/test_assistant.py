"""The dialog engine: safety before everything, every flow walked, and never silence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from medweave.therapy.assistant import Assistant, Context, State, Turn
from medweave.therapy.risk import Detector
from medweave.therapy.safety import DEFAULT_LINES, DISCLOSURE

DETECT = Detector(model=False)
UK = Context(DEFAULT_LINES["en-GB"], phq9=12, gad7=11)
T0 = datetime(2027, 1, 5, 20, 0, tzinfo=UTC)


def chat(
    messages: list[str], *, state: State | None = None, at: datetime = T0, bot: Assistant | None = None
) -> list[Turn]:
    bot = bot or Assistant()
    state = state or State()
    turns = []
    for text in messages:
        turn = bot.turn(state, text, risk=DETECT.assess(text), context=UK, now=at)
        turns.append(turn)
        state = turn.state
    return turns


def test_it_says_it_is_not_a_human_at_the_start_and_every_three_hours() -> None:
    first = chat(["hi"])[0]
    assert first.replies[0] == DISCLOSURE
    later = chat(["hi"], state=first.state, at=T0 + timedelta(hours=2, minutes=59))[0]
    assert DISCLOSURE not in later.replies
    again = chat(["hi"], state=first.state, at=T0 + timedelta(hours=3))[0]
    assert again.replies[0] == DISCLOSURE


def test_risk_leaves_any_flow_with_the_safety_message_and_an_alert() -> None:
    turns = chat(["PHQ-9", "several days", "honestly I don’t want to be alive any more"])
    last = turns[-1]
    assert last.safety and last.state.mode == "safety-offer" and last.state.instrument is None
    assert [a.kind for a in last.actions] == ["alert"] and last.actions[0].data["level"] == "ideation"
    text = " ".join(last.replies)
    assert "999" in text and "116 123" in text and "111" in text and "not a person" in text


def test_the_screener_after_a_crisis_follows_its_skip_logic_and_high_alerts() -> None:
    turns = chat(["I want to kill myself", "yes", "yes", "yes", "no", "yes", "no", "no"])
    asked = [t.replies[-1] for t in turns[1:]]
    assert asked[0].startswith("In the past month, have you wished you were dead")
    assert "intention of acting" in asked[3]
    last = turns[-1]
    kinds = [a.kind for a in last.actions]
    assert kinds == ["cssrs", "alert"] and last.actions[1].data == {"level": "high", "source": "cssrs"}
    assert last.safety and last.state.mode == "idle"


def test_asking_for_a_person_always_works() -> None:
    for before in ([], ["PHQ-9"], ["exercise", "breathing"], ["check in"]):
        turn = chat([*before, "can I talk to a real person please"])[-1]
        assert [a.kind for a in turn.actions] == ["human"]
        assert "care team" in turn.replies[-1] and turn.state.mode == "idle"


def test_a_report_about_someone_else_is_a_safeguarding_concern() -> None:
    turn = chat(["my son said he wants to kill himself"])[-1]
    assert not turn.safety
    assert [(a.kind, a.data["level"]) for a in turn.actions] == [("alert", "concern")]


def test_free_text_answers_are_read_back_when_unsure() -> None:
    turns = chat(["gad-7", "most days", "hmm maybe like a few times", "yes"])
    assert turns[1].state.answers == (2,)
    assert turns[2].state.mode == "confirm" and "Is that right" in turns[2].replies[-1]
    assert turns[3].state.answers == (2, 1) and turns[3].state.mode == "questionnaire"


def test_a_questionnaire_completes_with_its_score_and_item_9_alerts() -> None:
    turns = chat(["phq-9", *["0"] * 8, "1"])
    last = turns[-1]
    assert [a.kind for a in last.actions] == ["questionnaire", "alert"]
    assert last.actions[0].data == {"instrument": "phq9", "answers": [0] * 8 + [1]}
    assert last.actions[1].data == {"level": "ideation", "source": "phq9-item9"}
    positive = chat(["PHQ-2", "2", "2"])[-1]
    assert "Patient Health Questionnaire-9" in " ".join(positive.replies)  # a positive screen leads on


def test_an_exercise_walks_its_steps_and_is_rated() -> None:
    turns = chat(["thought record", "a row with my sister", "sad", "80"])
    assert turns[0].state.mode == "exercise"
    assert turns[-1].state.slots == {
        "situation": "a row with my sister",
        "emotion": "sad",
        "emotion_rating": "80",
    }
    bad = chat(["thought record", "a row", "sad", "eighty-ish"])[-1]
    assert "from 0 to 100" in bad.replies[-1]


def test_stop_leaves_a_flow() -> None:
    turn = chat(["phq-9", "stop"])[-1]
    assert turn.state.mode == "idle" and turn.state.instrument is None


def test_rewording_never_touches_the_safety_message() -> None:
    shout = Assistant(rephrase=str.upper)
    assert chat(["blah"], bot=shout)[-1].replies[-1].startswith("I'M SORRY")
    crisis = chat(["I want to die"], bot=shout)[-1]
    assert crisis.safety and not crisis.replies[-1].isupper()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=80), min_size=1, max_size=6))
def test_it_never_goes_silent(messages: list[str]) -> None:
    for turn in chat(messages):
        assert turn.replies and all(r.strip() for r in turn.replies)


def test_a_goal_is_kept_and_shapes_the_suggestions() -> None:
    bot, no_scores = Assistant(), Context(DEFAULT_LINES["en-US"])
    before = bot.turn(State(), "exercise", risk=DETECT.assess("exercise"), context=no_scores, now=T0)
    first = bot.turn(
        State(), "my goal is to sleep better", risk=DETECT.assess("x"), context=no_scores, now=T0
    )
    assert first.state.goals == ("sleep better",)
    after = bot.turn(first.state, "exercise", risk=DETECT.assess("exercise"), context=no_scores, now=T0)
    assert "sleep" not in before.replies[1].casefold()
    assert "sleep" in after.replies[1].casefold()  # the sleep text comes first for a sleep goal
    assert State.from_json(after.state.as_json()).goals == ("sleep better",)
