"""Normalisation of a chat message for the risk detector. Pure.

Keyword lists have let crisis messages slip past for reasons that are easy to fix here: a curly
apostrophe (U+2019 in "I don't want to live" against a list holding the ASCII one), stretched
letters ("dieeee"), leetspeak ("k1ll mys3lf"), misspellings ("sucide") and matching inside
longer words ("skilled" holding "killed"). So the detector never looks at raw text. It looks at
a list of word tokens, each normalised on its own and each keeping its character span in the
original message, so that evidence can point back at what the patient wrote:

1. Unicode NFKC, then case folding.
2. Quotes and apostrophes of every shape become one form; apostrophes are then dropped
   ("don't" with either apostrophe, and "dont", are the same token), so the phrase patterns are written once.
3. A run of three or more of the same letter becomes one ("dieeee" → "die", "sooo" → "so").
4. Leetspeak and misspellings are decoded only when the result is a word of the risk lexicon
   (``LEXICON``, ``MISSPELLINGS``), so ordinary numbers ("10mg", "2nd") are left alone.
5. Sentence punctuation is kept as its own token, because negation and reported speech do not
   cross a sentence or clause boundary.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Apostrophes and single quotes (U+2018, U+2019, U+201A, U+201B, prime, grave, acute) and double
# quotes (U+201C, U+201D, U+201E, U+201F, double prime).
_APOSTROPHES = "'\u2018\u2019\u201a\u201b\u2032`\u00b4"
_DOUBLE_QUOTES = '"\u201c\u201d\u201e\u201f\u2033'
_QUOTES = str.maketrans({**dict.fromkeys(_APOSTROPHES, "'"), **dict.fromkeys(_DOUBLE_QUOTES, '"')})
# A word may hold apostrophes and leetspeak symbols inside it ("don't", "k!ll", "$uicide").
_TOKEN = re.compile(
    rf"[@$]?[^\W_]+(?:[{_APOSTROPHES}@$!][^\W_]+)*[{_APOSTROPHES}@$]?|[.!?;:,\n()]|[{_DOUBLE_QUOTES}]"
)
_RUN = re.compile(r"([^\W\d_])\1{2,}")
_DOUBLE = re.compile(r"([^\W\d_])\1")
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
)

#: Words whose decoded forms are worth recovering; the phrase patterns are written over these.
LEXICON = frozenset(
    "kill killing killed myself die dying dead death suicide suicidal life live living end ending "
    "overdose overdosed pills tablets hang hanging cut cutting harm hurt self want wanna goodbye "
    "alive exist wake never".split()
)

#: Common misspellings and chat forms, written to the lexicon's spelling.
MISSPELLINGS = {
    "kil": "kill", "kll": "kill", "kil1": "kill", "kilin": "killing", "killin": "killing",
    "mysef": "myself", "myslef": "myself", "mysel": "myself", "meself": "myself", "myselff": "myself",
    "sucide": "suicide", "suicde": "suicide", "suiside": "suicide", "sucicide": "suicide",
    "suecide": "suicide", "suicid": "suicide", "suacide": "suicide", "suiscide": "suicide",
    "sucidal": "suicidal", "suicdal": "suicidal", "suisidal": "suicidal", "sucicidal": "suicidal",
    "suicidel": "suicidal", "dye": "die", "ded": "dead", "lyf": "life", "lif": "life",
    "overdoes": "overdose", "overdosd": "overdosed", "od": "overdose",
    "wanna": "want to", "wana": "want to", "wnt": "want", "gonna": "going to", "gona": "going to",
    "gotta": "got to", "imma": "i am going to", "ima": "i am going to", "u": "you", "ur": "your",
    "cuz": "because", "coz": "because", "bc": "because", "rn": "right now", "tmrw": "tomorrow",
    "tmr": "tomorrow", "tonite": "tonight", "2nite": "tonight", "2night": "tonight", "2moro": "tomorrow",
    "2morrow": "tomorrow", "nite": "night", "evry1": "everyone", "every1": "everyone", "any1": "anyone",
    "some1": "someone", "no1": "no one", "ppl": "people", "anymore": "any more", "nomore": "no more",
    "kms": "kill myself", "kmsl": "kill myself", "unalive": "kill", "unaliving": "killing",
    "selfharm": "self harm", "slef": "self", "sewerslide": "suicide", "suicidee": "suicide",
    "ovrdosed": "overdosed", "overdossed": "overdosed", "ovedosed": "overdosed", "rote": "wrote",
    "goodby": "goodbye", "gudbye": "goodbye", "wnat": "want", "watn": "want", "wan": "want",
    "liev": "live", "livng": "living", "livin": "living", "anymroe": "any more", "anymor": "any more",
    "nomroe": "no more", "2": "to", "dieing": "dying", "dyin": "dying", "myslf": "myself",
    "wud": "would", "wld": "would", "beter": "better", "bettr": "better", "endin": "ending",
    "thnk": "think", "ben": "been", "alot": "a lot", "everyoned": "everyone would",
    "harmimg": "harming", "harmin": "harming", "agian": "again", "pils": "pills", "pilz": "pills",
    "finaly": "finally", "enuf": "enough", "tok": "took", "tuk": "took", "tabs": "tablets",
    "comit": "commit", "commmit": "commit", "tryna": "trying to", "tryin": "trying",
    "killng": "killing", "kiling": "killing", "cuting": "cutting", "hurtin": "hurting",
}  # fmt: skip


@dataclass(frozen=True)
class Token:
    """One normalised word (or punctuation mark) and its span in the original message."""

    text: str
    start: int
    end: int


def _decode(word: str) -> str:
    if word in MISSPELLINGS:
        return MISSPELLINGS[word]
    if any(c.isdigit() or c in "@$!" for c in word) and any(c.isalpha() for c in word):
        leet = word.translate(_LEET)
        if leet in LEXICON or leet in MISSPELLINGS:
            return MISSPELLINGS.get(leet, leet)
    if word not in LEXICON:  # stretched by one letter: "diee", "cutt"
        single = _DOUBLE.sub(r"\1", word)
        if single in LEXICON:
            return single
    return word


def _normal(raw: str) -> str:
    if not raw[0].isalnum() and raw[0] not in "@$":
        return '"' if raw in _DOUBLE_QUOTES else raw
    word = unicodedata.normalize("NFKC", raw).translate(_QUOTES).casefold().replace("'", "")
    return _decode(_RUN.sub(r"\1", word))


def tokens(message: str) -> list[Token]:
    """The message as normalised tokens, each with its span in ``message``; a token may hold
    several words ("kms" → "kill myself")."""
    found = (Token(_normal(m.group()), m.start(), m.end()) for m in _TOKEN.finditer(message))
    return [t for t in found if t.text.strip() or t.text == "\n"]  # NFKC can make a symbol a space


def normalise(message: str) -> str:
    """The normalised message as one string, words separated by single spaces."""
    return " ".join(t.text for t in tokens(message))
