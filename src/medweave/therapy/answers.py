"""A patient's free-text answer to a PHQ or GAD item, mapped onto the item's 0-3 scale. Pure.

The scale is the one the instruments print: 0 "Not at all", 1 "Several days", 2 "More than half
the days", 3 "Nearly every day", over the last 2 weeks (Kroenke K, Spitzer RL, Williams JBW, J Gen
Intern Med 2001;16(9):606-613; Spitzer RL et al., Arch Intern Med 2006;166(10):1092-1097; the
LOINC answer list LL358-3, see ``questionnaires.ANSWERS``).

What maps, and how sure it is (``Parsed.confident``; the dialog confirms every answer, and
re-asks with the four options when it is not confident):

- a digit ``0``-``3`` or ``zero``-``three`` said on its own ("I'd say 2"): that value, confident;
- a label, in any case, with a typo per word ("sevral days"), curly quotes, or run together
  ("nearlyeveryday"): confident;
- close paraphrases ("never", "a few days", "most days", "every day", "daily"): confident; looser
  ones ("no", "not really", "sometimes", "often", "a lot", "always", "all the time",
  "constantly"): a guess, not confident;
- a count of days in the two weeks ("3 days", "ten of the 14 days"), of times ("once or
  twice"), or a weekly rate ("4 days a week", counted as twice that over two weeks, never
  confident); a number from 4 to 14 said on its own cannot be a scale value, so it is taken
  as a day count, never confident.

**Day-count cut-points.** The instrument defines the options only in words, so the cut-points
are ours. Over the 14 days: 0 days is "not at all"; "more than half the days" is literally more
than 7, so 1-7 days are "several days"; "nearly every day" is not defined, and 12-14 days (at
most two days missed) are taken as it, leaving 8-11 days as "more than half the days". Because
a count of 7 (exactly half) and of 11 or 12 (either side of our own line) sit on a boundary,
they map but are not confident. A count of times is a count of days only up to 7: seven or fewer
times means at most 7 days, so "several days", but 8 times may have fallen on one day.

**Negation.** A negation anywhere before a frequency in its clause cancels it ("not every day",
"I don't feel it every day"): it rules a value out without giving one, and the answer is never
confident. Only words that mean little unless negated give a value when they are: "not at all"
(0), "not really" (0, a guess), "not often" / "not much" / "not a lot" (1, a guess).

What never maps (``None``): text with no frequency in it ("I want to die", "I don't know"),
a number that is not an answer ("I have 2 kids", "20 days", "3 times a day"), negated
frequencies with nothing else ("not every day", "not always"), and answers that contradict
themselves ("a few days, maybe every day"). Clauses are split at punctuation and at linking
words ("but", "and", "because", "when"), and only a clause made entirely of the answer and
filler ("I'd say", "honestly") counts: "every day I want to die" does not map, while "Every day.
I want to die." maps to 3, not confident. Risk in the text is not this module's business; the
dialog's risk detector reads every reply whatever this returns.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from medweave.therapy.questionnaires import ANSWERS

LABELS: tuple[str, ...] = tuple(label for _, label, _ in ANSWERS)
SCALE_MAX = 3
PERIOD_DAYS = 14
SEVERAL_MAX_DAYS = 7  # "more than half the days" is more than 7 of 14
MORE_THAN_HALF_MAX_DAYS = 11  # 12-14 days: "nearly every day" (our cut-point; see above)
BOUNDARY_DAYS = frozenset({7, 11, 12})


@dataclass(frozen=True)
class Parsed:
    value: int
    label: str
    confident: bool


def days_to_value(days: int) -> int | None:
    """The scale value for a number of days out of the last 14; None outside 0-14."""
    if not 0 <= days <= PERIOD_DAYS:
        return None
    if days == 0:
        return 0
    if days <= SEVERAL_MAX_DAYS:
        return 1
    if days <= MORE_THAN_HALF_MAX_DAYS:
        return 2
    return 3


# --- text to tokens -----------------------------------------------------------------------------

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201b": "'", "\u2032": "'", "`": "'", "\u00b4": "'"})
_BOUNDARY = "|"
_SPLITS = {"everyday": ("every", "day"), "alot": ("a", "lot"), "nonstop": ("non", "stop")}


def _tokens(text: str) -> list[str]:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    lowered = plain.casefold().translate(_QUOTES).replace("'", "")
    lowered = re.sub(r"[,.;:!?]+", f" {_BOUNDARY} ", lowered)
    out: list[str] = []
    for token in re.findall(r"[0-9]+|[a-z]+|\|", lowered):
        out.extend(_SPLITS.get(token, (token,)))
    return out


def _osa(a: str, b: str) -> int:
    """Optimal string alignment distance: edits, with a swap of neighbours counted as one."""
    if abs(len(a) - len(b)) > 2:
        return 3
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[len(b)]


# --- the phrase table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Phrase:
    words: tuple[str, ...]
    value: int | None  # None: says no frequency on its own
    confident: bool = True
    if_negated: int | None = None  # the value when negated at the end of its clause ("not often")
    fuzzy: bool = False  # the instrument's own labels tolerate a typo per word
    hedge: bool = False


def _p(
    text: str,
    value: int | None,
    confident: bool = True,
    *,
    if_negated: int | None = None,
    fuzzy: bool = False,
) -> _Phrase:
    return _Phrase(tuple(text.split()), value, confident, if_negated=if_negated, fuzzy=fuzzy)


_PHRASES: tuple[_Phrase, ...] = (
    # the labels
    _p("not at all", 0, fuzzy=True),
    _p("several days", 1, fuzzy=True),
    _p("more than half the days", 2, fuzzy=True),
    _p("more than half of the days", 2, fuzzy=True),
    _p("nearly every day", 3, fuzzy=True),
    # 0
    _p("never", 0),
    _p("not once", 0),
    _p("not even once", 0),
    _p("not a single day", 0),
    _p("not one day", 0),
    _p("not a day", 0),
    _p("none of the days", 0),
    _p("none of the time", 0),
    _p("at all", None, if_negated=0),
    _p("really", None, if_negated=0, confident=False),
    _p("bothered", None, if_negated=0, confident=False),
    # 1
    _p("some days", 1),
    _p("a day or two", 1),
    _p("once or twice", 1),
    _p("several times", 1),
    _p("less than half", 1),
    _p("less than half the days", 1),
    _p("less than half the time", 1),
    _p("less than half of the days", 1),
    _p("fewer than half", 1),
    _p("under half", 1),
    _p("less than a week", 1),
    _p("sometimes", 1, False),
    _p("some of the time", 1, False),
    _p("occasionally", 1, False),
    _p("now and then", 1, False),
    _p("now and again", 1, False),
    _p("every now and then", 1, False),
    _p("every now and again", 1, False),
    _p("every so often", 1, False),
    _p("from time to time", 1, False),
    _p("on and off", 1, False),
    _p("off and on", 1, False),
    _p("once in a while", 1, False),
    _p("here and there", 1, False),
    _p("rarely", 1, False),
    _p("seldom", 1, False),
    _p("hardly ever", 1, False),
    _p("barely ever", 1, False),
    _p("almost never", 1, False),
    _p("half", 1, False),
    _p("half the days", 1, False),
    _p("half the time", 1, False),
    _p("half of the days", 1, False),
    _p("half of the time", 1, False),
    _p("every other day", 1, False),
    _p("every few days", 1, False),
    _p("every couple of days", 1, False),
    _p("much", None, if_negated=1, confident=False),
    # 2
    _p("more than half", 2),
    _p("more than half the time", 2),
    _p("more than half of the time", 2),
    _p("over half", 2),
    _p("over half the days", 2),
    _p("over half the time", 2),
    _p("over half of the days", 2),
    _p("over half of the time", 2),
    _p("more days than not", 2),
    _p("more often than not", 2),
    _p("most days", 2),
    _p("most of the days", 2),
    _p("most nights", 2),
    _p("the majority of days", 2),
    _p("majority of the days", 2),
    _p("majority of days", 2),
    _p("most of the time", 2, False),
    _p("majority of the time", 2, False),
    _p("often", 2, False, if_negated=1),
    _p("frequently", 2, False, if_negated=1),
    _p("a lot", 2, False, if_negated=1),
    _p("a lot of the time", 2, False, if_negated=1),
    _p("lots", 2, False),
    _p("many days", 2, False, if_negated=1),
    _p("usually", 2, False),
    _p("mostly", 2, False),
    _p("a week and a half", 2, False),
    _p("week and a half", 2, False),
    # 3
    _p("every day", 3),
    _p("every single day", 3),
    _p("almost every day", 3),
    _p("practically every day", 3),
    _p("virtually every day", 3),
    _p("pretty much every day", 3),
    _p("each day", 3),
    _p("daily", 3),
    _p("almost daily", 3),
    _p("nearly daily", 3),
    _p("all day every day", 3),
    _p("day in day out", 3),
    _p("day after day", 3),
    _p("every night", 3),
    _p("every single night", 3),
    _p("nearly every night", 3),
    _p("almost every night", 3),
    _p("each night", 3),
    _p("nightly", 3),
    _p("every morning", 3),
    _p("each morning", 3),
    _p("always", 3, False),
    _p("almost always", 3, False),
    _p("nearly always", 3, False),
    _p("all the time", 3, False),
    _p("all of the time", 3, False),
    _p("nearly all the time", 3, False),
    _p("almost all the time", 3, False),
    _p("constantly", 3, False),
    _p("continuously", 3, False),
    _p("non stop", 3, False),
    _p("24 7", 3, False),
    _p("the whole time", 3, False),
    _p("the entire time", 3, False),
    _p("the whole two weeks", 3, False),
    _p("the whole 2 weeks", 3, False),
    _p("all two weeks", 3, False),
    _p("both weeks", 3, False),
    _p("the whole fortnight", 3, False),
    _p("all fortnight", 3, False),
    # hedges
    *(
        _Phrase(tuple(h.split()), None, False, hedge=True)
        for h in (
            "maybe",
            "probably",
            "perhaps",
            "possibly",
            "i guess",
            "guess",
            "i think",
            "think",
            "i suppose",
            "suppose",
            "not sure",
            "unsure",
            "dont know",
            "do not know",
            "dunno",
            "kind of",
            "sort of",
            "kinda",
            "sorta",
            "might",
            "could be",
            "ish",
        )
    ),
)
_BY_FIRST: dict[str, list[_Phrase]] = {}
for _phrase in _PHRASES:
    _BY_FIRST.setdefault(_phrase.words[0], []).append(_phrase)
_FUZZY = tuple(p for p in _PHRASES if p.fuzzy)


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_NEGATORS = _set(
    "not no dont doesnt didnt isnt wasnt arent werent havent hasnt hadnt cant cannot couldnt "
    "wouldnt wont shouldnt aint hardly barely"
)
_SPLITTERS = _set(
    "but though although except because cause cos coz since when whenever while and especially "
    "unless if whereas however"
) | {_BOUNDARY}
_FILLERS = _set(
    "i im ive id me my myself it its itll that thats this the a an to of for on in over during "
    "about around roughly approximately approx like um umm uh uhh erm er hmm hm mm well so yeah "
    "yes yep yup ok okay oh ah just only pretty quite very fairly rather honestly actually truly "
    "been be being was were is am are has have had say said would answer option number choice "
    "score feel felt feeling feelings by with way week weeks day days time times last past these "
    "those fortnight or now lately recently currently still even also too definitely certainly "
    "absolutely totally for sure get got getting having"
)
_SCALE_WORDS = {"0": 0, "1": 1, "2": 2, "3": 3, "zero": 0, "one": 1, "two": 2, "three": 3}
_NO_WORDS = frozenset({"no", "nope", "nah", "none", "nil", "nada"})
_NUMBER_WORDS = {
    "zero": 0, "no": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
}  # fmt: skip
_DAY_UNITS = frozenset({"day", "days", "night", "nights"})
_TIME_UNITS = frozenset({"time", "times", "x"})
_PER = frozenset({"a", "per", "each", "every"})
_PERIOD_BEFORE = frozenset({"last", "past", "previous", "these", "those", "next"})


@dataclass(frozen=True)
class _Match:
    start: int
    end: int
    value: int | None
    confident: bool
    if_negated: int | None = None
    hedge: bool = False


# --- counts: "3 days", "ten of the 14 days", "once or twice", "4 days a week" -------------------


def _number(toks: list[str], i: int) -> tuple[int, int] | None:
    """A count at ``i``: (n, index after it)."""
    if i >= len(toks):
        return None
    t = toks[i]
    nxt = toks[i + 1] if i + 1 < len(toks) else ""
    if t.isdigit() and len(t) <= 3:
        return int(t), i + 1
    if t in _NUMBER_WORDS:
        return _NUMBER_WORDS[t], i + 1
    if t in {"a", "an"} and nxt == "couple":
        return 2, i + 3 if i + 2 < len(toks) and toks[i + 2] == "of" else i + 2
    if t in {"a", "an"} and nxt == "few":
        return 3, i + 2
    if t == "couple":
        return 2, i + 2 if nxt == "of" else i + 1
    if t == "few":
        return 3, i + 1
    if t in {"a", "an"}:
        return 1, i + 1
    return None


def _suffix(toks: list[str], j: int, unit: str) -> int:
    """The end of "a week"/"per day"/"daily" at ``j`` for ``unit`` ("week"/"day"), or ``j``."""
    if unit == "day" and j < len(toks) and toks[j] == "daily":
        return j + 1
    if j + 1 < len(toks) and toks[j] in _PER and toks[j + 1] == unit:
        return j + 2
    return j


def _out_of_14(toks: list[str], j: int) -> int:
    """The end of "out of (the) 14 (days)" / "of (the) 14 (days)" at ``j``, or ``j``."""
    k = j
    if k < len(toks) and toks[k] == "out":
        k += 1
    if k < len(toks) and toks[k] == "of":
        k += 1
        if k < len(toks) and toks[k] == "the":
            k += 1
        if k < len(toks) and toks[k] in {"14", "fourteen"}:
            k += 1
            return k + 1 if k < len(toks) and toks[k] in _DAY_UNITS else k
    return j


def _days_match(start: int, end: int, days: int, *, approximate: bool) -> _Match:
    value = days_to_value(days)
    confident = value is not None and not approximate and days not in BOUNDARY_DAYS
    return _Match(start, end, value, confident)


def _count_at(toks: list[str], i: int) -> _Match | None:
    if toks[i] in {"once", "twice"}:
        n, j, implicit_times = (1 if toks[i] == "once" else 2), i + 1, True
    else:
        got = _number(toks, i)
        if got is None:
            return None
        n, j = got
        implicit_times = False
    counts = [n]
    if not implicit_times and j + 1 < len(toks) and toks[j] in {"or", "to"}:
        second = _number(toks, j + 1)
        if second is not None and toks[j + 1] not in {"a", "an"}:
            counts.append(second[0])
            j = second[1]
    unit = "times" if implicit_times else (toks[j] if j < len(toks) else "")
    after = j if implicit_times else j + 1
    if unit in {"out", "of"} and len(counts) == 1:  # "10 out of 14"
        end = _out_of_14(toks, j)
        return _days_match(i, end, n, approximate=False) if end > j else None
    if unit in _DAY_UNITS or unit in _TIME_UNITS:
        weekly = _suffix(toks, after, "week")
        if weekly > after:  # "4 days a week": twice that over two weeks, never exact
            values = {days_to_value(2 * c) if c <= 7 else None for c in counts}
            value = values.pop() if len(values) == 1 else None
            return _Match(i, weekly, value, False)
        if unit in _TIME_UNITS or implicit_times:
            daily = _suffix(toks, after, "day")
            if daily > after:  # "3 times a day" says how often in a day, not on how many days
                return _Match(i, daily, None, False)
        if unit in _DAY_UNITS and i > 0 and toks[i - 1] in _PERIOD_BEFORE:
            return _Match(i, after, None, True)  # "the last 14 days": the period, not an answer
        end = _out_of_14(toks, after)
        if unit in _TIME_UNITS or implicit_times:
            # n times fell on at most n days: up to 7 times is "several days" for certain
            matches = [
                _Match(i, end, 1, True)
                if 1 <= c <= SEVERAL_MAX_DAYS
                else _days_match(i, end, c, approximate=True)
                for c in counts
            ]
        else:
            matches = [_days_match(i, end, c, approximate=False) for c in counts]
        values = {m.value for m in matches}
        if len(values) != 1 or None in values:
            return _Match(i, end, None, False)
        return _Match(i, end, matches[0].value, all(m.confident for m in matches))
    if unit in {"week", "weeks"} and len(counts) == 1:
        if n == 2 or (i > 0 and toks[i - 1] in _PERIOD_BEFORE):
            return _Match(i, j + 1, None, True)  # "the last two weeks": the period
        if n == 1:
            return _days_match(i, j + 1, 7, approximate=True)
        return _Match(i, j + 1, None, False)
    if unit == "fortnight" and n == 1:
        return _Match(i, j + 1, None, True)
    return None


# --- matching -----------------------------------------------------------------------------------


def _word_close(word: str, target: str) -> bool:
    if word == target:
        return True
    if len(target) < 3 or word in _NEGATORS or target in _NEGATORS or word == _BOUNDARY:
        return False
    return _osa(word, target) <= 1


def _phrase_at(toks: list[str], i: int) -> _Match | None:
    best: _Match | None = None
    for phrase in _BY_FIRST.get(toks[i], ()):
        n = len(phrase.words)
        if tuple(toks[i : i + n]) == phrase.words and (best is None or n > best.end - best.start):
            best = _Match(i, i + n, phrase.value, phrase.confident, phrase.if_negated, phrase.hedge)
    for phrase in _FUZZY:
        n = len(phrase.words)
        window = toks[i : i + n]
        longer = best is None or n > best.end - best.start
        if (
            longer
            and len(window) == n
            and all(_word_close(w, t) for w, t in zip(window, phrase.words, strict=True))
        ):
            best = _Match(i, i + n, phrase.value, True)
    count = _count_at(toks, i)
    if count is not None and (best is None or count.end - count.start > best.end - best.start):
        best = count
    return best


def _squashed(toks: list[str]) -> int | None:
    """A label typed without its spaces or with one slip ("nearlyeveryday", "notatal")."""
    text = "".join(t for t in toks if t != _BOUNDARY)
    if len(text) < 6 or len(toks) > 8:
        return None
    for value, label in enumerate(LABELS):
        target = re.sub(r"[^a-z]", "", label.casefold())
        if _osa(text, target) <= (2 if len(target) >= 12 else 1):
            return value
    return None


def _bare_days(token: str) -> int | None:
    """The value of a number said on its own that cannot be a scale value (4-14): a day count."""
    n = int(token) if token.isdigit() and len(token) <= 3 else _NUMBER_WORDS.get(token)
    return days_to_value(n) if n is not None and SCALE_MAX < n <= PERIOD_DAYS else None


def _scan(toks: list[str]) -> tuple[list[_Match], list[bool]]:
    """The phrases and counts in the text, longest first, left to right; which tokens they cover."""
    matches: list[_Match] = []
    covered = [False] * len(toks)
    i = 0
    while i < len(toks):
        m = _phrase_at(toks, i) if toks[i] != _BOUNDARY else None
        if m is None:
            i += 1
            continue
        matches.append(m)
        covered[m.start : m.end] = [True] * (m.end - m.start)
        i = m.end
    return matches, covered


def _clauses(toks: list[str], covered: list[bool]) -> list[int]:
    """Each token's clause: split at punctuation and at linking words outside a phrase."""
    clause_of: list[int] = []
    clause = 0
    for k, t in enumerate(toks):
        if t in _SPLITTERS and not covered[k]:
            clause += 1
            covered[k] = True
        clause_of.append(clause)
    return clause_of


def _negated(toks: list[str], matches: list[_Match], covered: list[bool], clause_of: list[int]) -> set[int]:
    """The matches with a negation before them in their clause ("not ... every day")."""
    free = [t in _NEGATORS and not c for t, c in zip(toks, covered, strict=True)]
    negated: set[int] = set()
    for n, m in enumerate(matches):
        if m.hedge:
            continue
        k = m.start - 1
        while k >= 0 and clause_of[k] == clause_of[m.start] and not free[k]:
            k -= 1
        if k >= 0 and clause_of[k] == clause_of[m.start]:
            negated.add(n)
            covered[k] = True
    return negated


def parse_answer(text: str) -> Parsed | None:
    """The 0-3 value a free-text answer gives, or None when it gives none (see the module)."""
    toks = _tokens(text)
    matches, covered = _scan(toks)
    clause_of = _clauses(toks, covered)
    negated = _negated(toks, matches, covered, clause_of)

    # Words no phrase explains: a bare answer ("2", "no"), a filler ("I'd say"), or anything
    # else, which leaves its clause saying more than the answer.
    open_clauses: set[int] = set()
    bare: list[tuple[int, str]] = []
    for k, t in enumerate(toks):
        if covered[k] or t in _FILLERS:
            continue
        if t in _SCALE_WORDS or t in _NO_WORDS or _bare_days(t) is not None:
            bare.append((k, t))
        else:
            open_clauses.add(clause_of[k])

    votes: list[tuple[int, bool]] = []
    unsure = bool(open_clauses) or any(m.hedge for m in matches)
    for n, m in enumerate(matches):
        in_open_clause = clause_of[m.start] in open_clauses
        if m.hedge:
            continue
        if n in negated:
            more = any(
                o.start >= m.end and clause_of[o.start] == clause_of[m.start] and o.value is not None
                for o in matches
            )
            if m.if_negated is not None and not more and not in_open_clause:
                votes.append((m.if_negated, m.confident))  # "not often", "not really", "not at all"
            else:
                unsure = True  # "not every day" rules a value out but gives none
        elif m.value is None:
            # "really", "at all" say something only when negated; a count that is no answer
            # ("3 times a day", "20 days") makes the answer unsure
            unsure = unsure or (m.if_negated is None and not m.confident)
        elif not in_open_clause:
            votes.append((m.value, m.confident))

    for k, t in bare:
        days = _bare_days(t)
        if clause_of[k] in open_clauses:
            continue
        if t in _SCALE_WORDS:
            votes.append((_SCALE_WORDS[t], True))
        elif days is not None:  # "13" cannot be a scale value, so it is most likely a count of days
            votes.append((days, False))
    if not votes and not negated:  # "no" on its own, and only then
        votes = [(0, False) for k, t in bare if t in _NO_WORDS and clause_of[k] not in open_clauses]

    if not votes:
        squashed = None if negated or bare else _squashed(toks)
        return None if squashed is None else Parsed(squashed, LABELS[squashed], True)
    values = {v for v, _ in votes}
    if len(values) != 1:
        return None
    value = values.pop()
    return Parsed(value, LABELS[value], all(c for _, c in votes) and not unsure)
