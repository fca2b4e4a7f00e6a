"""The CBT exercises the therapy assistant offers, as step-by-step scripts, and how it ranks them. Pure.

Each exercise is a tuple of steps: a prompt to show and the slot the patient's reply fills, or an
informational step with no reply. Sources, by exercise:

- **Thought record**: Beck JS. Cognitive Behavior Therapy: Basics and Beyond (3rd ed., Guilford
  2020), the Thought Record (situation, automatic thoughts, emotions rated 0-100, adaptive
  response, outcome); the evidence-for and evidence-against columns are those of the seven-column
  record in Greenberger D, Padesky CA. Mind Over Mood (2nd ed., Guilford 2016): situation, moods
  rated 0-100, automatic thought, evidence that supports it, evidence that does not, an
  alternative or balanced thought, moods re-rated.
- **Behavioural activation**: Martell CR, Addis ME, Jacobson NS. Depression in Context: Strategies
  for Guided Action (Norton 2001); Lejuez CW, Hopko DR, Acierno R, Daughters SB, Pagoto SL. Ten
  year revision of the brief behavioral activation treatment for depression: revised treatment
  manual. Behav Modif 2011;35(2):111-161 (life areas and values; the areas are that manual's).
  Rating an activity for enjoyment and achievement is the pleasure/mastery rating of activity
  scheduling (Beck AT, Rush AJ, Shaw BF, Emery G. Cognitive Therapy of Depression, Guilford 1979).
- **Breathing**: NHS, "Breathing exercises for stress"
  (nhs.uk/mental-health/self-help/guides-tools-and-activities/breathing-exercises-for-stress/): a
  calming technique for stress, anxiety and panic; breathe into the belly without forcing it, in
  through the nose and out through the mouth, gently and regularly, counting from 1 to 5 if that
  helps, without pausing or holding the breath, for 3 to 5 minutes. No other counts are given
  there, so none are given here.
- **Grounding (5-4-3-2-1)**: a common clinical grounding technique with no trial of its own that
  we could find; the steps follow Mayo Clinic Health System, "5, 4, 3, 2, 1: Countdown to make
  anxiety blast off" (2020), and University of Rochester Medical Center, Behavioral Health
  Partners blog, "Anxiety" (2023): five things you can see, four you can touch, three you can
  hear, two you can smell, one you can taste, to bring attention to the present.
- **Psychoeducation**: what depression is (NHS, "Depression in adults: overview"), what anxiety
  is (NHS, "Generalised anxiety disorder in adults: overview"), the CBT cycle (NHS, "Cognitive
  behavioural therapy (CBT)"; British Association for Behavioural and Cognitive Psychotherapies,
  "What is CBT?"), and sleep habits (NHS, "Insomnia"). The texts paraphrase those pages, short and
  non-prescriptive: no medication, diet or weight advice anywhere (the lesson of NEDA's "Tessa"
  chatbot, withdrawn in 2023 after giving weight-loss advice).

Ranking (``suggest``). Clinical rules, with their sources:

- Depression (PHQ-9 of 5 or more, the mild cut-point, Kroenke 2001): behavioural activation and
  CBT are among the psychological treatments NICE NG222 (2022) recommends for less severe and
  more severe depression, so behavioural activation and the thought record rank higher, more so
  from 10 (moderate).
- Anxiety (GAD-7 of 5 or more, the mild cut-point, Spitzer 2006): NICE CG113 (2011) begins with
  education about GAD (step 1) and then CBT-based self-help (step 2), so the anxiety
  psychoeducation and the thought record rank higher. Breathing and grounding rank first from a
  GAD-7 of 10 (moderate) because they are meant for the moment of anxiety (the NHS and Mayo
  pages above); that is a product heuristic: CG113's relaxation option is applied relaxation, a
  therapist-led step 3 treatment, not these exercises.

Product heuristics, not clinical claims: a goal whose words match an exercise's keywords lifts
it; an exercise completed and rated helpful (6/10 or more) rises, one rated unhelpful (below
4/10) or started twice or more and mostly abandoned sinks; psychoeducation already read sinks;
and the exercise done most recently is never first, so the list rotates. Ties keep catalogue
order. This is not triage: risk (PHQ-9 item 9, the C-SSRS) is handled before any suggestion.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

PHQ9_MAX, GAD7_MAX = 27, 21
MILD, MODERATE = 5, 10  # the PHQ-9 and GAD-7 share these cut-points
HELPFUL, UNHELPFUL = 6.0, 4.0  # mean ratings out of 10 (product heuristic)


@dataclass(frozen=True)
class Step:
    """A prompt to show; ``slot`` names what the reply fills, None for an informational step."""

    prompt: str
    slot: str | None = None
    scale: tuple[int, int] | None = None  # a rating slot's range, such as (0, 100)

    @property
    def informational(self) -> bool:
        return self.slot is None


@dataclass(frozen=True)
class Exercise:
    code: str
    title: str
    name: str  # how a sentence names it: "behavioural activation"
    kind: str  # "skill" or "psychoeducation"
    summary: str
    steps: tuple[Step, ...]
    source: str
    keywords: tuple[str, ...]  # words in a patient's goals that this exercise serves

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(s.slot for s in self.steps if s.slot is not None)


def _info(*texts: str) -> tuple[Step, ...]:
    return tuple(Step(t) for t in texts)


THOUGHT_RECORD = Exercise(
    code="thought-record",
    title="Thought record",
    name="the thought record",
    kind="skill",
    summary="Look at a difficult moment from more than one side.",
    steps=(
        Step(
            "A thought record helps you slow down a difficult moment and look at it from more than one side."
        ),
        Step(
            "Think of a recent moment when your mood changed. What was happening? Where were you, who "
            "were you with, what were you doing?",
            "situation",
        ),
        Step(
            "What emotion did you feel then? One word is enough, for example sad, anxious, angry or ashamed.",
            "emotion",
        ),
        Step(
            "How strong was that feeling, from 0 (not at all) to 100 (as strong as it gets)?",
            "emotion_rating",
            (0, 100),
        ),
        Step(
            "What was going through your mind just before you started to feel that way?", "automatic_thought"
        ),
        Step("What facts support that thought?", "evidence_for"),
        Step(
            "What facts do not fit with it? What might you say to a friend who had the same thought?",
            "evidence_against",
        ),
        Step("Taking both sides into account, is there a more balanced way to see it?", "balanced_thought"),
        Step(
            "With that balanced thought in mind, how strong is the feeling now, from 0 to 100?",
            "emotion_rerating",
            (0, 100),
        ),
    ),
    source=(
        "Beck JS, Cognitive Behavior Therapy: Basics and Beyond, 3rd ed. (Guilford 2020), the Thought "
        "Record; Greenberger D, Padesky CA, Mind Over Mood, 2nd ed. (Guilford 2016), the seven-column "
        "thought record"
    ),
    keywords=(
        "thought",
        "thinking",
        "negative",
        "overthink",
        "worry",
        "self esteem",
        "confidence",
        "critic",
        "failure",
        "guilt",
        "blame",
    ),
)

BEHAVIOURAL_ACTIVATION = Exercise(
    code="behavioural-activation",
    title="Plan an activity",
    name="behavioural activation",
    kind="skill",
    summary="Plan one small activity that matters to you.",
    steps=(
        Step(
            "When mood is low it is natural to do less, and doing less can keep mood low. Planning small "
            "activities that matter to you is a way to break that cycle."
        ),
        Step(
            "Which area of your life would you like to give a little time to? For example relationships, "
            "education or work, hobbies and interests, mind, body and spirituality, or daily "
            "responsibilities.",
            "life_area",
        ),
        Step(
            "Choose one small, specific activity in that area, something you could start in the next few "
            "days (for example 'phone my sister' rather than 'be more social').",
            "activity",
        ),
        Step("When will you do it? Pick a day and a time.", "when"),
        Step(
            "How much do you expect to enjoy it, from 0 (not at all) to 10 (very much)?",
            "predicted_enjoyment",
            (0, 10),
        ),
        Step(
            "How much of a sense of achievement do you expect it to give you, from 0 to 10?",
            "predicted_achievement",
            (0, 10),
        ),
        Step("Afterwards, notice how it really went; the plan is a step even if it feels hard at first."),
    ),
    source=(
        "Martell CR, Addis ME, Jacobson NS, Depression in Context (Norton 2001); Lejuez CW et al., "
        "Behav Modif 2011;35(2):111-161 (BATD-R life areas); NICE NG222 (2022) lists behavioural "
        "activation among the recommended treatments for depression"
    ),
    keywords=(
        "active",
        "activit",
        "motivat",
        "routine",
        "energy",
        "hobby",
        "hobbies",
        "friend",
        "social",
        "enjoy",
        "interest",
        "bored",
        "stuck",
        "procrastinat",
        "out of bed",
        "isolat",
        "lonely",
    ),
)

BREATHING = Exercise(
    code="breathing",
    title="Calming breathing",
    name="the breathing exercise",
    kind="skill",
    summary="A few minutes of slow, regular breathing, for stress, anxiety or panic.",
    steps=(
        *_info(
            "This calming breathing exercise takes a few minutes and you can do it anywhere: standing, "
            "sitting in a chair that supports your back, or lying down.",
            "Make yourself as comfortable as you can, and loosen any clothes that stop you breathing "
            "freely. If you are sitting or standing, put your feet flat on the ground, about hip-width "
            "apart.",
            "Let your breath flow as deep down into your belly as is comfortable, without forcing it. Try "
            "breathing in through your nose and out through your mouth.",
            "Breathe in gently and regularly. Some people find it helps to count steadily from 1 to 5; you "
            "may not reach 5 at first.",
            "Then, without pausing or holding your breath, let it flow out gently, counting from 1 to 5 "
            "again if that helps.",
            "Keep doing this for 3 to 5 minutes.",
        ),
        Step("How do you feel now?", "afterwards"),
    ),
    source=(
        "NHS, Breathing exercises for stress, "
        "https://www.nhs.uk/mental-health/self-help/guides-tools-and-activities/breathing-exercises-for-stress/"
    ),
    keywords=("calm", "relax", "stress", "panic", "breath", "tense", "tension", "anxi", "nervous"),
)

GROUNDING = Exercise(
    code="grounding",
    title="5-4-3-2-1 grounding",
    name="grounding",
    kind="skill",
    summary="Use your senses to bring your attention back to the present.",
    steps=(
        Step(
            "This exercise brings your attention back to where you are, through your senses. Take your time "
            "with each step."
        ),
        Step("Name 5 things you can see around you.", "see"),
        Step("Name 4 things you can touch or feel, like your feet on the ground.", "touch"),
        Step("Name 3 things you can hear.", "hear"),
        Step("Name 2 things you can smell. If you cannot notice any, that is fine.", "smell"),
        Step("Name 1 thing you can taste.", "taste"),
        Step("How do you feel now?", "afterwards"),
    ),
    source=(
        "A common clinical grounding technique; steps as in Mayo Clinic Health System, '5, 4, 3, 2, 1: "
        "Countdown to make anxiety blast off' (2020), and University of Rochester Medical Center, "
        "Behavioral Health Partners blog, 'Anxiety' (2023)"
    ),
    keywords=(
        "panic",
        "overwhelm",
        "present",
        "ground",
        "spiral",
        "racing",
        "flashback",
        "dissociat",
        "anxi",
    ),
)

ABOUT_DEPRESSION = Exercise(
    code="about-depression",
    title="What is depression?",
    name="'What is depression?'",
    kind="psychoeducation",
    summary="A short explanation of depression.",
    steps=_info(
        "Depression is more than feeling unhappy or fed up for a few days. It is a low mood that lasts "
        "for weeks or months and affects your daily life.",
        "It can show as feeling unhappy or hopeless, low self-esteem, and finding no pleasure in things "
        "you usually enjoy. It can affect sleep, energy and concentration too.",
        "Talking therapies such as CBT are a recommended treatment for depression.",
        "If you have had symptoms of depression for most of the day, every day, for more than 2 weeks, "
        "the NHS advises getting help from a GP.",
    ),
    source="NHS, Depression in adults: overview, https://www.nhs.uk/mental-health/conditions/depression-in-adults/overview/",
    keywords=("depress", "mood", "low", "sad", "unhappy", "hopeless"),
)

ABOUT_CBT = Exercise(
    code="about-cbt",
    title="Thoughts, feelings and actions",
    name="'Thoughts, feelings and actions'",
    kind="psychoeducation",
    summary="How thoughts, feelings, body sensations and actions affect each other.",
    steps=_info(
        "Cognitive behavioural therapy (CBT) is based on the idea that your thoughts, feelings, body "
        "sensations and actions are connected, and that changing one can change the others.",
        "Negative thoughts and feelings can trap you in a cycle: thinking 'there is no point' can leave "
        "you feeling low, feeling low can make you do less, and doing less can seem to prove the thought.",
        "CBT breaks big problems into smaller parts and looks for practical ways to change unhelpful "
        "patterns, focusing on what is happening now rather than on the past.",
    ),
    source=(
        "NHS, Cognitive behavioural therapy (CBT), https://www.nhs.uk/mental-health/talking-therapies-"
        "medicine-treatments/talking-therapies-and-counselling/cognitive-behavioural-therapy-cbt/; "
        "BABCP, What is CBT?, https://www.babcp.com/What-is-CBT"
    ),
    keywords=("cbt", "cycle", "how therapy", "therapy works", "pattern", "vicious"),
)

ABOUT_ANXIETY = Exercise(
    code="about-anxiety",
    title="What is anxiety?",
    name="'What is anxiety?'",
    kind="psychoeducation",
    summary="A short explanation of anxiety.",
    steps=_info(
        "Anxiety is a feeling of unease, such as worry or fear, that can be mild or severe. Everyone feels "
        "anxious at times, for example before an exam or a job interview.",
        "It becomes a problem when the worry is hard to control, is there most days and affects your "
        "daily life.",
        "Anxiety affects the body as well as the mind: a fast or pounding heartbeat, tense muscles, "
        "restlessness and trouble sleeping are common.",
        "If anxiety is affecting your daily life or causing you distress, a GP can help.",
    ),
    source=(
        "NHS, Generalised anxiety disorder in adults: overview, "
        "https://www.nhs.uk/mental-health/conditions/generalised-anxiety-disorder/overview/"
    ),
    keywords=("anxi", "worry", "worried", "nervous", "fear", "on edge"),
)

ABOUT_SLEEP = Exercise(
    code="about-sleep",
    title="Sleep habits",
    name="'Sleep habits'",
    kind="psychoeducation",
    summary="Everyday habits that can help with sleep problems.",
    steps=_info(
        "Sleep problems often get better by changing sleeping habits.",
        "Going to bed and getting up at roughly the same time every day helps your body get into a routine.",
        "Give yourself time to wind down before bed, and keep your bedroom dark, quiet and comfortable.",
        "If you cannot sleep, lying in bed worrying about it tends to make it worse; getting up for a "
        "while and doing something relaxing can help.",
        "If changing your habits has not helped, or poor sleep is affecting your daily life, a GP can help.",
    ),
    source="NHS, Insomnia, https://www.nhs.uk/conditions/insomnia/",
    keywords=("sleep", "insomnia", "tired", "bed", "night", "wake", "waking"),
)

EXERCISES: tuple[Exercise, ...] = (
    BEHAVIOURAL_ACTIVATION,
    THOUGHT_RECORD,
    BREATHING,
    GROUNDING,
    ABOUT_CBT,
    ABOUT_DEPRESSION,
    ABOUT_ANXIETY,
    ABOUT_SLEEP,
)
BY_CODE = {e.code: e for e in EXERCISES}


# --- personalisation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Engagement:
    """The patient's history with one exercise."""

    started: int = 0
    completed: int = 0
    helpfulness: float | None = None  # mean rating 0-10, None when never rated
    last_done: datetime | None = None

    def __post_init__(self) -> None:
        if self.started < 0 or self.completed < 0:
            raise ValueError("counts of times started and completed cannot be negative")
        if self.helpfulness is not None and not 0 <= self.helpfulness <= 10:
            raise ValueError("helpfulness is a mean rating from 0 to 10")

    @property
    def abandoned(self) -> int:
        return max(self.started - self.completed, 0)


@dataclass(frozen=True)
class Suggestion:
    exercise: Exercise
    score: float
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        return " ".join(self.reasons)


DEFAULT_REASONS = {
    BEHAVIOURAL_ACTIVATION.code: "Planning small activities you value can lift mood over time.",
    THOUGHT_RECORD.code: "A thought record helps you look at a difficult moment from more than one side.",
    BREATHING.code: "A few minutes of calm breathing can help whenever you feel stressed.",
    GROUNDING.code: "Grounding can help when feelings get overwhelming.",
    ABOUT_CBT.code: "A short read on how thoughts, feelings and actions affect each other.",
    ABOUT_DEPRESSION.code: "A short read about depression.",
    ABOUT_ANXIETY.code: "A short read about anxiety.",
    ABOUT_SLEEP.code: "A short read about sleep habits.",
}


def _rating(h: float) -> str:
    return f"{round(h, 1):g}"


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _words(goal: str) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9]+", goal.casefold())) + " "


def _goal_match(exercise: Exercise, goal: str) -> bool:
    """A keyword at the start of a word of the goal ("relax" matches "relaxed")."""
    text = _words(goal)
    return any(f" {k}" in text for k in exercise.keywords)


def _clinical(exercise: Exercise, phq9: int | None, gad7: int | None) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    code = exercise.code
    if phq9 is not None and phq9 >= MILD:
        level = "is affecting you" if phq9 >= MODERATE else "is mildly low"
        strong = phq9 >= MODERATE
        if code == BEHAVIOURAL_ACTIVATION.code:
            out.append(
                (
                    4.0 if strong else 2.5,
                    f"Your PHQ-9 score of {phq9} suggests your mood {level}: behavioural activation is one "
                    "of the treatments NICE recommends for depression (NG222).",
                )
            )
        elif code == THOUGHT_RECORD.code:
            out.append(
                (
                    3.0 if strong else 2.0,
                    f"Your PHQ-9 score of {phq9} suggests your mood {level}: thought records are part of "
                    "CBT, which NICE recommends for depression (NG222).",
                )
            )
        elif code == ABOUT_DEPRESSION.code:
            out.append(
                (1.5, f"Your PHQ-9 score of {phq9} suggests your mood {level}: this explains depression.")
            )
    if gad7 is not None and gad7 >= MILD:
        strong = gad7 >= MODERATE
        level = "high" if strong else "raised"
        if code == BREATHING.code:
            out.append(
                (
                    4.5 if strong else 2.0,
                    f"Your GAD-7 score of {gad7} suggests anxiety is {level}: calm breathing can help in "
                    "the moment.",
                )
            )
        elif code == GROUNDING.code:
            out.append(
                (
                    4.25 if strong else 1.5,
                    f"Your GAD-7 score of {gad7} suggests anxiety is {level}: grounding can help in the "
                    "moment.",
                )
            )
        elif code == ABOUT_ANXIETY.code:
            out.append(
                (
                    2.0,
                    f"Your GAD-7 score of {gad7} suggests anxiety is {level}: NICE advises learning about "
                    "anxiety as a first step (CG113).",
                )
            )
        elif code == THOUGHT_RECORD.code:
            out.append(
                (
                    1.0,
                    f"Your GAD-7 score of {gad7} suggests anxiety is {level}: thought records are part of "
                    "CBT, which NICE recommends for anxiety (CG113).",
                )
            )
    return out


def _history(exercise: Exercise, e: Engagement) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    h = e.helpfulness
    if e.completed and h is not None and h >= HELPFUL:
        out.append(
            (
                2.0 if e.completed >= 2 else 1.0,
                f"You completed {exercise.name} {_times(e.completed)} and rated it helpful "
                f"({_rating(h)}/10 on average).",
            )
        )
    if h is not None and h < UNHELPFUL:
        out.append(
            (-3.0, f"You rated {exercise.name} as not very helpful ({_rating(h)}/10), so it is lower down.")
        )
    if e.abandoned >= 2 and e.completed * 2 < e.started:
        out.append(
            (
                -2.0,
                f"You started {exercise.name} {_times(e.started)} but "
                f"{'finished it only ' + _times(e.completed) if e.completed else 'did not finish it'}, "
                "so it is lower down.",
            )
        )
    if exercise.kind == "psychoeducation" and e.completed:
        out.append((-2.0, "You have read this already."))
    return out


def suggest(
    *,
    phq9: int | None,
    gad7: int | None,
    goals: Sequence[str],
    history: Mapping[str, Engagement],
) -> list[Suggestion]:
    """Every exercise, best first, each with the reasons for its place (see the module)."""
    if phq9 is not None and not 0 <= phq9 <= PHQ9_MAX:
        raise ValueError(f"a PHQ-9 total is from 0 to {PHQ9_MAX}")
    if gad7 is not None and not 0 <= gad7 <= GAD7_MAX:
        raise ValueError(f"a GAD-7 total is from 0 to {GAD7_MAX}")
    scored: list[tuple[float, int, Suggestion]] = []
    for order, exercise in enumerate(EXERCISES):
        parts = _clinical(exercise, phq9, gad7)
        matched = [g.strip() for g in goals if g.strip() and _goal_match(exercise, g)]
        if matched:
            goal = matched[0] if len(matched[0]) <= 60 else matched[0][:57].rstrip() + "..."
            parts.append((2.0, f'It fits your goal "{goal}".'))
        engagement = history.get(exercise.code)
        if engagement is not None:
            parts.extend(_history(exercise, engagement))
        reasons = tuple(r for _, r in parts) or (DEFAULT_REASONS[exercise.code],)
        score = sum(w for w, _ in parts)
        scored.append((score, order, Suggestion(exercise, score, reasons)))
    scored.sort(key=lambda s: (-s[0], s[1]))
    ranked = [s for _, _, s in scored]
    return _rotate(ranked, history)


def _rotate(ranked: list[Suggestion], history: Mapping[str, Engagement]) -> list[Suggestion]:
    """Move the most recently done exercise out of first place, so the list does not stay the same."""
    done = {c: e.last_done for c, e in history.items() if e.last_done is not None and c in BY_CODE}
    if not done or len(ranked) < 2:
        return ranked
    latest = max(done.values(), key=_instant)
    recent = {c for c, t in done.items() if _instant(t) == _instant(latest)}
    if ranked[0].exercise.code not in recent:
        return ranked
    first = next((n for n, s in enumerate(ranked) if s.exercise.code not in recent), None)
    if first is None:
        return ranked
    top = ranked[first]
    rest = [s for n, s in enumerate(ranked) if n != first]
    moved = [
        Suggestion(
            s.exercise,
            s.score,
            (*s.reasons, "You did this most recently, so something else comes first today."),
        )
        if s.exercise.code in recent and n == 0
        else s
        for n, s in enumerate(rest)
    ]
    return [top, *moved]


def _instant(t: datetime) -> float:
    """Comparable whether or not ``t`` carries a zone (naive times are read as UTC)."""
    return (t.replace(tzinfo=UTC) if t.tzinfo is None else t).timestamp()
