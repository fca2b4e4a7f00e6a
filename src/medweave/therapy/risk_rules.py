"""The clinical phrase layer of the risk detector, with its context handling. Pure, apart from
reading its phrases (``data/risk_phrases.txt``, one pattern per line for review) at import.

The phrases follow what the Columbia Suicide Severity Rating Scale asks about (Posner K et al.,
Am J Psychiatry 2011;168(12):1266-1277): the wish to be dead (passive ideation), active
thoughts, method, intent, plan, and actual, interrupted or aborted attempts and preparatory
behaviour, plus non-suicidal self-injury. The "goodbye behaviours" (giving possessions away,
farewell or suicide notes, putting affairs in order) are the warning signs listed by the
American Foundation for Suicide Prevention and by the US 988 Lifeline ("Know the signs").
Levels, for one message:

- ``high``: intent, a plan, means, a timeline, preparation or goodbye behaviour, or an attempt
  in progress or just made; and ideation together with means or a timeline anywhere in the
  message. These are the C-SSRS screener's high-risk answers (questions 4, 5 and 6).
- ``ideation``: active or passive ideation ("I want to die", "everyone would be better off
  without me"), self-harm behaviour or urges, or a past attempt.
- ``concern``: distress without ideation (hopelessness, feeling a burden, trapped), and any risk
  phrase about someone else ("my sister said she wants to die"), which is a safeguarding
  concern for the clinician rather than a crisis for the patient.

Context handling, each one a known way that keyword lists fail:

- words are matched whole, over normalised tokens (``risk_text``), so "skilled" never holds
  "killed" and a curly apostrophe is a straight one;
- a phrase with a negation before it in the same clause ("I would never kill myself", "I'm not
  suicidal") does not count; hedges ("I'm not sure I want to live") are not negations;
- the phrases need a first-person object ("kill myself", not "killing me"), and the idioms
  ("this traffic is killing me", "I killed it at the gig", "dying to see it") are listed so the
  embedding layer cannot raise a sentence on them either;
- the subject is checked: a phrase whose nearest subject is someone else is a safeguarding
  concern, not the patient's own risk.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from medweave.therapy.risk_text import tokens

LEVELS = ("none", "concern", "ideation", "high")

# Reflexives of every person: whose risk it is is decided afterwards (``_about``).
_SELF = r"(?:myself|my self|meself|himself|herself|themselves|themself|yourself)"
_OWN = r"(?:my|his|her|their|your) (?:own )?"
_MEANS = (
    r"pills|tablets|paracetamol|tylenol|meds|medication|sleeping pills|antidepressants|insulin|morphine|"
    r"codeine|oxycodone|opioids|painkillers|rope|"
    r"noose|ligature|belt|razor|razors|blade|blades|knife|gun|pistol|rifle|shotgun|bridge|ledge|cliff|"
    r"rooftop|roof|train tracks|railway|exhaust|charcoal|carbon monoxide|bleach|poison|car park roof"
)
_QUANTITY = (
    r"(?:a |the |my )?(?:whole |full |entire )?(?:packet|packets|box|boxes|bottle|bottles|pack|packs|strip|"
    r"strips|load|loads|handful|handfuls|tub|jar) of(?: my| the)?|all (?:of )?(?:my|the)|the whole|a whole|"
    r"loads of|a load of|lots of|a lot of|too many|a bunch of|"
    r"a handful of|handfuls of|a bottle of|a box of|a packet of|boxes of|packets of|\d{2,}|twenty|thirty|"
    r"forty|fifty|every one of my|all my|enough"
)

_ACT = (
    rf"(?:kill|killing|hang|hanging|shoot|shooting|drown|drowning|stab|stabbing|poison|poisoning|"
    rf"suffocate|suffocating|gas|gassing|off|offing) {_SELF}|(?:end|ending|take|taking) {_OWN}life|"
    r"end it all|end it|end things|commit suicide|kill me|do it|jump (?:off|from|in front of) \w+(?: \w+)?|"
    r"overdose|od|step in front of (?:a|the) (?:train|bus|car|lorry|truck)|"
    rf"(?:take|swallow|down) (?:{_QUANTITY}) ?(?:my )?(?:\w+ ){{0,2}}(?:{_MEANS})|take an overdose"
)
_DIE = (
    r"die|be dead|not exist|stop existing|not be alive|not be here|not wake up|never wake up|"
    r"disappear forever|sleep forever|go to sleep forever|not be around|be gone"
)
_TIME = (
    r"tonight|tomorrow|today|this weekend|this evening|this week|next week|on (?:monday|tuesday|wednesday|"
    r"thursday|friday|saturday|sunday)|when (?:everyone|they|my \w+) (?:is|are|goes|go|leaves?|gone|"
    r"asleep)\b.*|"
    r"after (?:the|my) \w+|before (?:the|my) \w+|right now|in an hour|at midnight|by the end of"
)
# The narrower sets that raise ideation elsewhere in the message to high.
_STRONG_MEANS = (
    r"pills|tablets|paracetamol|tylenol|sleeping pills|morphine|codeine|oxycodone|rope|noose|ligature|razor|"
    r"razors|blade|blades|gun|"
    r"pistol|shotgun|bridge|ledge|cliff|cliffs|train tracks|railway line|exhaust|charcoal|carbon monoxide|"
    r"goodbye|goodbyes|note|notes|my will"
)
_SOON = (
    r"tonight|tomorrow|this weekend|at midnight|in an hour|by morning|(?:on |by |this |next )?(?:monday|"
    r"tuesday|wednesday|thursday|friday|saturday|sunday)|when (?:everyone|they|my \w+) (?:is|are|goes|"
    r"go|leaves?|has gone|have gone) (?:asleep|to sleep|to bed|out|away|to work)"
)


@dataclass(frozen=True)
class Rule:
    name: str
    level: str
    pattern: re.Pattern[str]


MACROS = {
    "{SELF}": _SELF, "{OWN}": _OWN, "{ACT}": _ACT, "{DIE}": _DIE, "{TIME}": _TIME, "{MEANS}": _MEANS,
    "{QUANTITY}": _QUANTITY,
}  # fmt: skip


def parse_phrases(text: str) -> tuple[Rule, ...]:
    """Rules from the phrase file's format: ``[level rule]`` sections of one pattern per line."""
    sections: dict[tuple[str, str], list[str]] = {}
    current: tuple[str, str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            level, _, name = line[1:-1].partition(" ")
            if level not in LEVELS[1:] or not name:
                raise ValueError(f"line {number}: a section is [level rule], level one of {LEVELS[1:]}")
            current = (level, name)
            sections.setdefault(current, [])
            continue
        if current is None:
            raise ValueError(f"line {number}: a pattern before any [level rule] section")
        for macro, value in MACROS.items():
            line = line.replace(macro, value)
        sections[current].append(line)
    return tuple(
        Rule(name, level, re.compile(r"\b(?:" + "|".join(patterns) + r")\b"))
        for (level, name), patterns in sections.items()
    )


RULES = parse_phrases(
    resources.files("medweave.therapy").joinpath("data/risk_phrases.txt").read_text("utf-8")
)

#: Words that negate what follows them in the same clause.
_NEGATORS = frozenset(
    "never not dont didnt doesnt wouldnt wont isnt arent wasnt cant couldnt shouldnt no nor zero "
    "neither nobody without".split()
)
#: Hedges that look like negations but are not ("I'm not sure I want to live").
_HEDGE = re.compile(
    r"\b(?:no longer|not sure|not certain|not saying|not that|not just|not even sure|cant say|dont know if|"
    r"dont know whether|not a day goes by|dont know|didnt know|doesnt know|dont realise|dont realize|"
    r"dont think|didnt think|dont tell|didnt tell|havent told|not told|cant tell|wont know|never felt|"
    r"never been so|cant stop|couldnt stop|no more)\b"
)
_NEG_WINDOW = 7
_CLAUSE = frozenset('.,!?;:\n"()') | {"but", "although", "though", "however", "yet", "because", "so"}

FIRST = frozenset("i me my myself im ive id mine meself".split())
#: Subjects that make a phrase someone else's: pronouns and people (object pronouns are left out:
#: in "kept them all so I can take them at once" the subject is still the patient).
OTHER = frozenset(
    "he she they hes shes theyre theyve theyd hed shed "
    "friend friends sister brother mum mom mother dad father son daughter wife husband partner boyfriend "
    "girlfriend cousin aunt uncle grandma grandmother gran nan grandad grandpa grandfather niece nephew "
    "colleague coworker classmate flatmate roommate housemate neighbour neighbor kid kids child children "
    "student pupil client someone somebody person guy girl boy man woman teen teenager mate bestie bff "
    "sibling stepdad stepmum stepmom fiance fiancee ex".split()
)
_OTHER_OBJECT = re.compile(r"\b(?:himself|herself|themselves|themself|(?:his|her|their) "
                           r"(?:own )?(?:life|lives|arm|arms|wrist|wrists|legs?|thighs?|skin|stomach|stuff|"
                           r"things|possessions|belongings)|without (?:him|her|them))\b")  # fmt: skip

#: Figures of speech that use the words of risk; the embedding layer may not raise a sentence on them.
IDIOMS = re.compile(
    r"\b(?:(?:is|are|was|were|its|it is|thats|that is|been|these|those|\w+s) killing me|killed it|"
    r"kill(?:ed|ing)? (?:it|time|the (?:vibe|mood|boss|game|lights|engine))|dying (?:to|for|of)|to die "
    r"for|died laughing|(?:nearly|almost|could have|could've) died (?:laughing|of)|dead (?:tired|on|end|"
    r"set|beat|serious|good|easy)|deadline|could murder|murdered (?:it|that)|over my dead body|drop dead|"
    r"(?:bored|scared|worried|frozen|freezing|loved|love) (?:me )?to death|die of (?:embarrassment|shame|"
    r"boredom)|(?:cut|cutting) (?:it )?(?:short|back|down|out|corners|the grass|the lawn|my hair|the cake)|"
    r"shoot (?:me )?(?:a|an) (?:message|text|email)|break a leg|the death of me|dead to me|dead heat|"
    r"dead of night|dead battery|battery (?:is )?dead|phone (?:is |has )?died|phone is dead)\b"
)


_TERMS = frozenset({"suicide", "suicidal", "self harm", "self harming", "suicide note", "suicide attempt"})
_TOPIC = frozenset(
    "prevention awareness training course courses intervention charity charities hotline hotlines helpline "
    "helplines research dissertation thesis essay documentary statistics rates risk pledge campaign lecture "
    "class module film movie book novel podcast article study studies volunteer volunteering fundraiser "
    "fundraising workshop seminar conference policy team nurse nurses squad show series season episode "
    "album band song lyrics game play gcse exam reading scene character plot story shakespeare theme tune "
    "track".split()
)
#: When an attempt was long ago: the C-SSRS counts behaviour in the past 3 months as high risk.
_PAST = re.compile(
    r"\b(?:(?:\d+|a few|few|several|many|two|three|four|five|ten) years ago|when i was (?:\d+|"
    r"a teen(?:ager)?|young|younger|at school|in school|at uni|a kid)|in my (?:teens|twenties|"
    r"thirties|forties|fifties)|back in|as a teen(?:ager)?|last year|years back|in (?:19|20)\d\d)\b"
)
_DENIAL_AFTER = re.compile(
    r"^(?:\w+ ){0,3}(?:- |, )?(?:(?:and )?the answer (?:is|was) (?:honestly |definitely |still )?no|"
    r"(?:and )?i (?:honestly |truthfully )?(?:said|say|answered) no|"
    r"no none|none at all|not at all|no not|no never|no i (?:havent|dont)|"
    r"but (?:they|it|that|those) (?:havent|hasnt|didnt|doesnt|dont)(?! work)|never (?:had|have))\b"
)


@dataclass(frozen=True)
class Hit:
    """One rule that matched, with the character span of its words in the original message."""

    rule: str
    level: str
    start: int
    end: int
    about: str  # "self", "other" or "topic"
    negated: bool


@dataclass(frozen=True)
class _Words:
    words: list[str]
    spans: list[tuple[int, int]]
    text: str
    offsets: list[int]  # character offset of each word in ``text``
    expanded: list[bool]  # the word came from a shorthand ("kms"), so says nothing of who
    possessive: list[bool]  # "nan's" in "my nan's caravan": not the subject of anything

    def index(self, char: int) -> int:
        return bisect.bisect_right(self.offsets, char) - 1


_IMPERSONAL = frozenset({"theres", "there", "its", "it"})
#: After "son's", a word that makes it "son has" or "son is" rather than a possessive.
_CONTRACTED = frozenset(
    "been going gonna got said saying told telling not never just always still really tried trying talking "
    "started threatening cutting hurting planning thinking wanting posted posting texted texting".split()
)


@lru_cache(maxsize=256)
def _words(message: str) -> _Words:
    """The message's words, built once per message: ``match``, ``idiom_spans`` and ``escalators``
    each need them, on every turn."""
    toks = tokens(message)
    words: list[str] = []
    spans: list[tuple[int, int]] = []
    expanded: list[bool] = []
    possessive: list[bool] = []
    for n, tok in enumerate(toks):
        parts = tok.text.split() or [tok.text]  # a line break stays, as a clause boundary
        raw = message[tok.start : tok.end].casefold()
        following = (toks[n + 1].text.split() or [""])[0] if n + 1 < len(toks) else ""
        owner = raw[-2:] in ("'s", "\u2019s") and following not in _CONTRACTED
        for w in parts:
            words.append(w)
            spans.append((tok.start, tok.end))
            expanded.append(len(parts) > 1)
            possessive.append(owner)
    offsets, pos = [], 0
    for w in words:
        offsets.append(pos)
        pos += len(w) + 1
    return _Words(words, spans, " ".join(words), offsets, expanded, possessive)


def _clause_start(words: list[str], i: int) -> int:
    while i > 0 and words[i - 1] not in _CLAUSE:
        i -= 1
    return i


def _negated(ws: _Words, first: int) -> bool:
    start = _clause_start(ws.words, first)
    window = ws.words[max(start, first - _NEG_WINDOW) : first]
    if not any(w in _NEGATORS for w in window):
        return False
    return not _HEDGE.search(" ".join(ws.words[start : first + 3]))


def _person(word: str) -> str | None:
    if word in FIRST:
        return "self"
    if word in OTHER or (word.endswith("s") and word[:-1] in OTHER and len(word) > 3):
        return "other"  # "students", "sons" (from "son's")
    return None


def _about(ws: _Words, first: int, last: int) -> str:
    """Whose risk a phrase is: someone else's when it says so ("herself") or when the nearest
    subject before it in the clause is someone else ("my sister said she wants to die")."""
    if _OTHER_OBJECT.search(" ".join(ws.words[first : last + 1])):
        return "other"
    if any(w in FIRST and not ws.expanded[i] for i, w in enumerate(ws.words[first : last + 1], first)):
        return "self"
    start = _clause_start(ws.words, first)
    for i in range(first - 1, start - 1, -1):
        if ws.words[i] in _IMPERSONAL:  # "... since she passed and there's enough now to ..."
            return "self"
        person = None if ws.possessive[i] else _person(ws.words[i])
        if person:
            return person
    return "self"


def _topic(ws: _Words, first: int, last: int) -> bool:
    """A bare term ("suicide", "self harm") used as a subject of work or study, not a disclosure."""
    if " ".join(ws.words[first : last + 1]) not in _TERMS:
        return False
    start = _clause_start(ws.words, first)
    end = last + 1
    while end < len(ws.words) and ws.words[end] not in _CLAUSE:
        end += 1
    return any(w in _TOPIC for w in ws.words[start:end])


def _sentence(ws: _Words, i: int) -> str:
    start, end = i, i
    while start > 0 and ws.words[start - 1] not in ".!?\n":
        start -= 1
    while end < len(ws.words) and ws.words[end] not in ".!?\n":
        end += 1
    return " ".join(ws.words[start:end])


def _negated_after(ws: _Words, last: int) -> bool:
    """A denial after the phrase, in the same sentence: "thoughts of suicide? no, none at all"."""
    end = last + 1
    while end < len(ws.words) and ws.words[end] not in ".!?\n":
        end += 1
    return bool(_DENIAL_AFTER.search(" ".join(ws.words[last + 1 : min(end, last + 10)])))


def match(message: str) -> list[Hit]:
    """Every rule that matches the message, negated or not, with its subject."""
    ws = _words(message)
    hits: list[Hit] = []
    for rule in RULES:
        for m in rule.pattern.finditer(ws.text):
            first, last = ws.index(m.start()), ws.index(m.end() - 1)
            about = "topic" if _topic(ws, first, last) else _about(ws, first, last)
            start, end = ws.spans[first][0], ws.spans[last][1]
            negated = _negated(ws, first) or _negated_after(ws, last)
            name, level = rule.name, rule.level
            if name == "attempt" and _PAST.search(_sentence(ws, first)):
                name, level = "past_attempt", "ideation"  # C-SSRS: behaviour over 3 months ago
            hits.append(Hit(name, level, start, end, about, negated))
    return hits


def idiom_spans(message: str) -> list[tuple[int, int]]:
    """Character spans in the message covered by a figure of speech (``IDIOMS``)."""
    ws = _words(message)
    out = []
    for m in IDIOMS.finditer(ws.text):
        first, last = ws.index(m.start()), ws.index(m.end() - 1)
        out.append((ws.spans[first][0], ws.spans[last][1]))
    return out


def escalators(message: str) -> list[tuple[str, int, int]]:
    """Means, goodbye and timeline words anywhere in the message, which raise suicidal ideation
    (not self-harm alone) to high."""
    ws = _words(message)
    out = []
    for name, pattern in (("means or goodbye", _STRONG_MEANS), ("timeline", _SOON)):
        for m in re.finditer(rf"\b(?:{pattern})\b", ws.text):
            first, last = ws.index(m.start()), ws.index(m.end() - 1)
            out.append((name, ws.spans[first][0], ws.spans[last][1]))
    return out
