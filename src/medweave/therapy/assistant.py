"""The therapy assistant's dialog engine: a state machine with slots, never free text generation.
Pure: each turn takes the state, the patient's message and the risk assessment of that message,
and gives the replies, the new state and the actions for the caller to carry out (record a
score, raise an alert, ask for a human).

Order of precedence on every turn, the safety layer first:

1. The disclosure that it is not a human, at the start and every three hours (``safety``).
2. Risk: a message assessed ``ideation`` or ``high`` leaves whatever flow was running; the reply
   is the fixed safety message, the action is an alert, and the C-SSRS screener is offered.
   A report about someone else gets a safeguarding reply and a ``concern`` alert.
3. Asking for a person always works, in any state.
4. "stop", "cancel" or "menu" leave any flow.
5. Then the flow in progress (a questionnaire item, an exercise step, the screener), or a new one
   chosen by simple intents; anything not understood gets a helpful reply, never silence.

Flows: a mood check-in (0-10), the PHQ-9, GAD-7, PHQ-2 and GAD-2 one item at a time (free-text
answers mapped by ``answers.parse_answer`` and read back for confirmation when not certain),
the C-SSRS screener with its skip logic, and the CBT exercises step by step. A PHQ-9 item 9
answer of 1 or more raises an alert at once, whatever the total (Kroenke 2001; issue 6), and a
positive PHQ-2 or GAD-2 offers the full instrument (Kroenke 2003, 2007).

A pluggable rewording function (``rephrase``, an LLM if a clinic wants one) is off by default and
never sees the safety message, the disclosure, the screener or a questionnaire item: it may only
reword the assistant's ordinary small talk.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from medweave.therapy import cssrs, safety
from medweave.therapy.answers import parse_answer
from medweave.therapy.exercises import BY_CODE, Engagement, suggest
from medweave.therapy.instruments import INSTRUMENTS, score
from medweave.therapy.questionnaires import ANSWERS, ITEMS
from medweave.therapy.risk import Result

YES = re.compile(
    r"^\s*(?:y|yes|yeah|yep|yup|ok|okay|sure|please|correct|right|that'?s right|go on|fine)\b", re.I
)
NO = re.compile(r"^\s*(?:n|no|nope|nah|not now|no thanks|no thank you|wrong|not really)\b", re.I)
STOP = re.compile(r"^\s*(?:stop|cancel|quit|exit|menu|main menu|start again|never ?mind)\W*$", re.I)
ARE_YOU_HUMAN = re.compile(
    r"\bare you (?:a |an )?(?:human|real|person|bot|robot|ai|computer|machine)\b", re.I
)
GOAL = re.compile(
    r"\b(?:my goal is|my goals? (?:are|is)|i want to work on|i'd like to work on|i want to get better at)"
    r"\s+(?:to\s+)?(?P<goal>[^.!?\n]{3,120})",
    re.I,
)
MAX_GOALS = 5
MENU = (
    'I can: check in on your mood (type "check in"); take a questionnaire ("PHQ-9" for mood, '
    '"GAD-7" for anxiety); try an exercise ("exercise"); or reach your care team ("human").'
)
LABELS = tuple(label for _, label, _ in ANSWERS)
OPTIONS = " / ".join(f"{value} {label}" for _, label, value in ANSWERS)


@dataclass(frozen=True)
class Action:
    kind: str  # alert, human, questionnaire, mood, cssrs, exercise
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class State:
    mode: str = "idle"  # idle, checkin, questionnaire, confirm, safety-offer, cssrs, exercise, rate
    instrument: str | None = None
    answers: tuple[int, ...] = ()
    pending: int | None = None  # an answer read back, waiting for yes or no
    screen: Mapping[str, bool] = field(default_factory=dict)
    exercise: str | None = None
    step: int = 0
    slots: Mapping[str, str] = field(default_factory=dict)
    disclosed_at: str | None = None  # ISO instant
    history: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # exercise code -> counts
    goals: tuple[str, ...] = ()  # what the patient said they want to work on (the latest few)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["answers"] = list(self.answers)
        out["goals"] = list(self.goals)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> State:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["answers"] = tuple(known.get("answers", ()))
        known["goals"] = tuple(known.get("goals", ()))
        return cls(**known)


@dataclass(frozen=True)
class Context:
    """What the engine knows of the patient, read by the caller: latest scores and goals."""

    place: safety.Locale
    phq9: int | None = None
    gad7: int | None = None
    goals: Sequence[str] = ()


@dataclass(frozen=True)
class Turn:
    replies: tuple[str, ...]
    state: State
    actions: tuple[Action, ...] = ()
    choices: tuple[str, ...] = ()  # quick replies the page may offer as buttons
    safety: bool = False  # the safety message was given


def _engagement(state: State) -> dict[str, Engagement]:
    out = {}
    for code, h in state.history.items():
        ratings = list(h.get("ratings", ()))
        out[code] = Engagement(
            started=int(h.get("started", 0)),
            completed=int(h.get("completed", 0)),
            helpfulness=sum(ratings) / len(ratings) if ratings else None,
            last_done=datetime.fromisoformat(h["last"]) if h.get("last") else None,
        )
    return out


def _count(state: State, code: str, key: str, now: datetime, rating: int | None = None) -> State:
    h = dict(state.history.get(code, {}))
    h[key] = int(h.get(key, 0)) + 1
    if key == "completed":
        h["last"] = now.isoformat()
    if rating is not None:
        h["ratings"] = [*h.get("ratings", []), rating]
    return replace(state, history={**state.history, code: h})


class Assistant:
    def __init__(self, *, rephrase: Callable[[str], str] | None = None) -> None:
        self.rephrase = rephrase

    def turn(self, state: State, text: str, *, risk: Result, context: Context, now: datetime) -> Turn:
        opening: list[str] = []
        last = datetime.fromisoformat(state.disclosed_at) if state.disclosed_at else None
        if safety.disclosure_due(last, now):
            opening.append(safety.DISCLOSURE)
            state = replace(state, disclosed_at=now.isoformat())
        result = self._respond(state, text, risk=risk, context=context, now=now)
        return replace(result, replies=(*opening, *result.replies))

    def _small_talk(self, text: str) -> str:
        return self.rephrase(text) if self.rephrase else text

    def _respond(self, state: State, text: str, *, risk: Result, context: Context, now: datetime) -> Turn:
        place = context.place
        if risk.escalate:
            alert = Action("alert", {"level": risk.level, "source": "chat"})
            return Turn(
                (safety.safety_message(place),),
                replace(State(), disclosed_at=state.disclosed_at, history=state.history, mode="safety-offer"),
                (alert,),
                ("Yes", "No"),
                safety=True,
            )
        if risk.about_other:
            reply = (
                "It sounds like you're worried about someone else's safety. If they are in danger now, "
                f"call {place.emergency}. They can also contact: "
                + "; ".join(f"{line.name}, {line.contact}" for line in place.lines)
                + ". I've let your care team know, so you can talk it through with them."
            )
            alert = Action("alert", {"level": "concern", "source": "chat-other"})
            again = self._again(state)  # a flow in progress goes on where it was
            return Turn((reply, *again.replies), state, (alert,), again.choices)
        if ARE_YOU_HUMAN.search(text):
            return Turn(("No. I'm an automated assistant, a computer program. " + MENU,), state)
        if safety.wants_human(text):
            return Turn((safety.human_reply(place),), replace(state, mode="idle"), (Action("human"),))
        if STOP.match(text):
            idle = State(disclosed_at=state.disclosed_at, history=state.history)
            return Turn(("Okay, we've stopped. " + MENU,), idle)
        handler = {
            "checkin": self._checkin,
            "questionnaire": self._questionnaire,
            "confirm": self._confirm,
            "safety-offer": self._safety_offer,
            "cssrs": self._cssrs,
            "exercise": self._exercise,
            "rate": self._rate,
        }.get(state.mode, self._idle)
        return handler(state, text, context, now)

    def _again(self, state: State) -> Turn:
        """The question a flow in progress is waiting on, asked again (nothing when idle)."""
        if state.mode == "questionnaire" and state.instrument is not None:
            return Turn((self._ask(state.instrument, len(state.answers)),), state, choices=LABELS)
        if state.mode == "confirm" and state.pending is not None:
            return Turn((f'Back to the question: is "{LABELS[state.pending]}" right? (yes or no)',), state)
        if state.mode == "cssrs":
            key = cssrs.next_question(dict(state.screen))
            if key is not None:
                return Turn((cssrs.QUESTIONS[key],), state, choices=("Yes", "No"))
        return Turn((), state)

    # -- idle: choose a flow -------------------------------------------------------------------

    def _idle(self, state: State, text: str, context: Context, now: datetime) -> Turn:
        t = text.casefold()
        goal = GOAL.search(text)
        if goal:
            goals = (*state.goals, goal.group("goal").strip())[-MAX_GOALS:]
            return Turn(
                (
                    f"Thank you, I've noted your goal: \"{goals[-1]}\". I'll bear it in mind when I suggest "
                    'exercises. Type "exercise" to see them.',
                ),
                replace(state, goals=goals),
            )
        for code, instrument in INSTRUMENTS.items():
            if re.search(rf"\b{instrument.code[:3]}-?{instrument.code[3:]}\b", t):
                return self._start_questionnaire(state, code)
        if re.search(r"\b(?:depress|low mood|mood questionnaire)", t):
            return self._start_questionnaire(state, "phq9")
        if re.search(r"\b(?:anxiety|anxious|worry) (?:questionnaire|test|check)", t):
            return self._start_questionnaire(state, "gad7")
        if re.search(r"\b(?:check.?in|mood|how am i)\b", t):
            return Turn(
                ("How is your mood today, from 0 (very low) to 10 (very good)?",),
                replace(state, mode="checkin"),
                choices=tuple(str(n) for n in range(11)),
            )
        for code, exercise in BY_CODE.items():
            if exercise.name.casefold() in t or exercise.title.casefold() in t or code in t:
                return self._start_exercise(state, code, now)
        if re.search(r"\b(?:exercise|cbt|skill|technique|something to try|help me feel)", t):
            return self._offer_exercises(state, context)
        if re.search(r"^\s*(?:hi|hello|hey|good (?:morning|afternoon|evening)|hiya)\b", t):
            return Turn((self._small_talk("Hello, it's good to hear from you. ") + MENU,), state)
        if re.search(r"\b(?:help|what can you do|options|menu)\b", t):
            return Turn((MENU,), state)
        return Turn(
            (self._small_talk("I'm sorry, I didn't understand that. I'm a simple assistant. ") + MENU,),
            state,
            choices=("Check in", "PHQ-9", "GAD-7", "Exercise", "Human"),
        )

    # -- mood check-in -------------------------------------------------------------------------

    def _checkin(self, state: State, text: str, context: Context, now: datetime) -> Turn:
        m = re.search(r"\b(10|[0-9])\b", text)
        if not m:
            return Turn(
                ("Please give a number from 0 (very low) to 10 (very good).",),
                state,
                choices=tuple(str(n) for n in range(11)),
            )
        mood = int(m.group(1))
        idle = replace(state, mode="idle")
        goals = (*context.goals, *state.goals)
        top = suggest(phq9=context.phq9, gad7=context.gad7, goals=goals, history=_engagement(state))[0]
        reply = (
            f"Thank you, I've noted your mood as {mood} out of 10. "
            f"If you'd like something to try: {top.exercise.title}. {top.reason} "
            f'Type "{top.exercise.title}" to start it, or "menu" for other options.'
        )
        return Turn((reply,), idle, (Action("mood", {"value": mood}),), choices=(top.exercise.title, "Menu"))

    # -- questionnaires ------------------------------------------------------------------------

    def _ask(self, code: str, n: int) -> str:
        item = ITEMS[code][n][1]
        lead = "Over the last 2 weeks, how often have you been bothered by: " if n == 0 else ""
        return f"{lead}{item}? ({OPTIONS})"

    def _start_questionnaire(self, state: State, code: str) -> Turn:
        instrument = INSTRUMENTS[code]
        started = replace(state, mode="questionnaire", instrument=code, answers=(), pending=None)
        intro = f"Let's do the {instrument.title}: {instrument.items} questions, one at a time."
        return Turn((intro, self._ask(code, 0)), started, choices=LABELS)

    def _questionnaire(self, state: State, text: str, context: Context, now: datetime) -> Turn:
        assert state.instrument is not None
        parsed = parse_answer(text)
        if parsed is None:
            return Turn(
                (f"Sorry, I couldn't match that to an answer. Please choose one: {OPTIONS}.",),
                state,
                choices=LABELS,
            )
        if not parsed.confident:
            return Turn(
                (f'I understood "{parsed.label}". Is that right? (yes or no)',),
                replace(state, mode="confirm", pending=parsed.value),
                choices=("Yes", "No"),
            )
        return self._answer(state, parsed.value)

    def _confirm(self, state: State, text: str, context: Context, now: datetime) -> Turn:
        assert state.instrument is not None and state.pending is not None
        if YES.match(text):
            return self._answer(replace(state, mode="questionnaire", pending=None), state.pending)
        parsed = parse_answer(text)
        if parsed is not None and parsed.confident:
            return self._answer(replace(state, mode="questionnaire", pending=None), parsed.value)
        back = replace(state, mode="questionnaire", pending=None)
        n = len(state.answers)
        return Turn(
            ("No problem. " + self._ask(state.instrument, n),),
            back,
            choices=LABELS,
        )

    def _answer(self, state: State, value: int) -> Turn:
        assert state.instrument is not None
        code = state.instrument
        answers = (*state.answers, value)
        instrument = INSTRUMENTS[code]
        actions: list[Action] = []
        replies: list[str] = []
        if len(answers) < instrument.items:
            nxt = replace(state, answers=answers)
            return Turn((self._ask(code, len(answers)),), nxt, choices=LABELS)
        result = score(instrument, answers)
        actions.append(Action("questionnaire", {"instrument": code, "answers": list(answers)}))
        replies.append(
            f"Thank you. Your {instrument.title} score is {result.total} ({result.severity}). "
            "Your care team will see it; scores help you and them follow how things change."
        )
        idle = replace(state, mode="idle", instrument=None, answers=(), pending=None)
        if "risk-review" in result.flags:
            actions.append(Action("alert", {"level": "ideation", "source": "phq9-item9"}))
            replies.append(
                "You said you've had thoughts that you would be better off dead or of hurting yourself. "
                "I've let your care team know so they can check in with you. Would you answer six short "
                "questions about these thoughts? (yes or no)"
            )
            return Turn(tuple(replies), replace(idle, mode="safety-offer"), tuple(actions), ("Yes", "No"))
        if instrument.full and instrument.positive_at is not None and result.total >= instrument.positive_at:
            full = INSTRUMENTS[instrument.full]
            replies.append(
                f'It would help to do the full {full.title}. Type "{full.code.upper()}" to start it.'
            )
        return Turn(tuple(replies), idle, tuple(actions))

    # -- the C-SSRS screener -------------------------------------------------------------------

    def _safety_offer(self, state: State, text: str, context: Context, now: datetime) -> Turn:
        if YES.match(text):
            screen_state = replace(state, mode="cssrs", screen={})
            return Turn(
                ("Thank you. Please answer yes or no.", cssrs.QUESTIONS["q1"]),
                screen_state,
                choices=("Yes", "No"),
            )
        if NO.match(text):
            return Turn(
                (
                    "That's okay. Your care team knows and will be in touch. "
                    + safety.reach_now(context.place),
                ),
                replace(state, mode="idle"),
            )
        return Turn(
            ("Would you answer six short questions about these thoughts? Please say yes or no.",),
            state,
            choices=("Yes", "No"),
        )

    def _cssrs(self, state: State, text: str, context: Context, now: datetime) -> Turn:
        key = cssrs.next_question(dict(state.screen))
        assert key is not None
        if YES.match(text):
            answer = True
        elif NO.match(text):
            answer = False
        else:
            return Turn(("Please answer yes or no. " + cssrs.QUESTIONS[key],), state, choices=("Yes", "No"))
        screen = {**state.screen, key: answer}
        nxt = cssrs.next_question(screen)
        if nxt is not None:
            return Turn((cssrs.QUESTIONS[nxt],), replace(state, screen=screen), choices=("Yes", "No"))
        result = cssrs.assess(screen)
        actions = [Action("cssrs", {"answers": screen, "level": result.level})]
        idle = replace(state, mode="idle", screen={})
        if result.level == "high":
            actions.append(Action("alert", {"level": "high", "source": "cssrs"}))
            reply = safety.safety_message(context.place, offer_screen=False)
            return Turn((reply,), idle, tuple(actions), safety=True)
        return Turn(
            ("Thank you for answering. I've shared your answers with your care team. " + MENU,),
            idle,
            tuple(actions),
        )

    # -- exercises -----------------------------------------------------------------------------

    def _offer_exercises(self, state: State, context: Context) -> Turn:
        goals = (*context.goals, *state.goals)
        ranked = suggest(phq9=context.phq9, gad7=context.gad7, goals=goals, history=_engagement(state))[:3]
        lines = [f"{s.exercise.title}: {s.reason}" for s in ranked]
        return Turn(
            ("Here are some exercises you could try:", *lines, "Type the name of one to start it."),
            state,
            choices=tuple(s.exercise.title for s in ranked),
        )

    def _start_exercise(self, state: State, code: str, now: datetime) -> Turn:
        started = _count(
            replace(state, mode="exercise", exercise=code, step=0, slots={}), code, "started", now
        )
        return self._advance(started, now)

    def _advance(self, state: State, now: datetime) -> Turn:
        """Show steps from ``state.step`` until one needs a reply, or the exercise ends."""
        assert state.exercise is not None
        exercise = BY_CODE[state.exercise]
        replies: list[str] = []
        step = state.step
        while step < len(exercise.steps):
            current = exercise.steps[step]
            replies.append(current.prompt)
            if not current.informational:
                return Turn(tuple(replies), replace(state, step=step))
            step += 1
        done = _count(replace(state, mode="rate", step=step), exercise.code, "completed", now)
        replies.append(f"Well done for finishing {exercise.name}. How helpful was it, from 0 to 10?")
        action = Action("exercise", {"code": exercise.code, "slots": dict(state.slots)})
        return Turn(tuple(replies), done, (action,), choices=tuple(str(n) for n in range(11)))

    def _exercise(self, state: State, text: str, context: Context, now: datetime) -> Turn:
        assert state.exercise is not None
        current = BY_CODE[state.exercise].steps[state.step]
        value = text.strip()[:500]
        if current.scale is not None:
            m = re.search(r"-?\d+", value)
            low, high = current.scale
            if not m or not low <= int(m.group()) <= high:
                return Turn((f"Please give a number from {low} to {high}.",), state)
            value = m.group()
        if not value:
            return Turn(('Take your time. Type your answer when you\'re ready, or "stop" to finish.',), state)
        assert current.slot is not None
        filled = replace(state, slots={**state.slots, current.slot: value}, step=state.step + 1)
        return self._advance(filled, now)

    def _rate(self, state: State, text: str, context: Context, now: datetime) -> Turn:
        m = re.search(r"\b(10|[0-9])\b", text)
        code = state.exercise
        idle = replace(state, mode="idle", exercise=None, step=0, slots={})
        if not m or code is None:
            return Turn(("Thanks. " + MENU,), idle)
        rated = _count(idle, code, "rated", now, rating=int(m.group(1)))
        return Turn(("Thank you, that helps me suggest what suits you. " + MENU,), rated)
