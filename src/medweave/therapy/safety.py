"""What the assistant says when safety comes first: the fixed safety message, crisis lines per
locale, the "not a human" disclosure and when it is due, and asking for a person. Pure.

Sources:

- **Crisis lines.** US: the 988 Suicide & Crisis Lifeline (call or text 988; 988lifeline.org),
  emergency 911. UK: NHS 111 (option 2 for urgent mental health help in England; nhs.uk "Where
  to get urgent help for mental health"), Samaritans 116 123 (free, 24 hours; samaritans.org),
  emergency 999. A clinic configures its own lines per locale (``MEDWEAVE_THERAPY_CRISIS_LINES``,
  a JSON file); these are only the defaults.
- **The safety message** holds what issue 6 asks for, and nothing else: it says what the
  assistant is, gives the emergency number first and then the crisis lines, says that the care
  team has been told (the alert is raised before it is shown), and offers the C-SSRS screener
  (Posner 2011). It gives no clinical advice. It is fixed text: nothing generated, so nothing
  to go wrong.
- **Disclosure.** New York General Business Law Article 47 (S.3008, in force November 2025)
  requires an AI companion to say it is not a human at the start of an interaction and at least
  every three hours while it continues. ``disclosure_due`` implements exactly that.
- **Asking for a person** must always work (issue 6): the words are matched loosely
  (``wants_human``), and the assistant answers with the same lines as the safety message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

DISCLOSURE_EVERY = timedelta(hours=3)
DEFAULT_LOCALE = "en-US"


@dataclass(frozen=True)
class Line:
    name: str
    contact: str  # what to dial or text, as the service publishes it
    hours: str = "24 hours"


@dataclass(frozen=True)
class Locale:
    emergency: str
    lines: tuple[Line, ...]


DEFAULT_LINES: dict[str, Locale] = {
    "en-US": Locale("911", (Line("988 Suicide & Crisis Lifeline", "call or text 988"),)),
    "en-GB": Locale(
        "999",
        (
            Line("NHS 111", "call 111 and choose the mental health option"),
            Line("Samaritans", "call 116 123 (free)"),
        ),
    ),
}


class InvalidCrisisLines(ValueError):
    """A crisis-lines file that cannot be used: the message says where."""


def parse_lines(text: str) -> dict[str, Locale]:
    """A clinic's crisis lines: ``{"en-GB": {"emergency": "999", "lines": [{"name", "contact",
    "hours"?}]}}``. Every locale needs an emergency number and at least one line."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidCrisisLines(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(raw, dict) or not raw:
        raise InvalidCrisisLines("expected an object of locales")
    out: dict[str, Locale] = {}
    for locale, body in raw.items():
        if not isinstance(body, dict) or not isinstance(body.get("emergency"), str) or not body["emergency"]:
            raise InvalidCrisisLines(f"{locale}: needs an emergency number")
        lines = body.get("lines")
        if not isinstance(lines, list) or not lines:
            raise InvalidCrisisLines(f"{locale}: needs at least one line")
        parsed = []
        for line in lines:
            if not isinstance(line, dict) or not all(
                isinstance(line.get(k), str) for k in ("name", "contact")
            ):
                raise InvalidCrisisLines(f"{locale}: each line has a name and a contact")
            parsed.append(Line(line["name"], line["contact"], str(line.get("hours", "24 hours"))))
        out[locale] = Locale(body["emergency"], tuple(parsed))
    return out


def locale_for(lines: Mapping[str, Locale], locale: str) -> Locale:
    """The locale's lines, else its language's, else the default locale's."""
    if locale in lines:
        return lines[locale]
    language = locale.split("-")[0]
    for name, found in lines.items():
        if name.split("-")[0] == language:
            return found
    return lines.get(DEFAULT_LOCALE) or next(iter(lines.values()))


def _listing(place: Locale) -> str:
    return "; ".join(f"{line.name}: {line.contact} ({line.hours})" for line in place.lines)


def safety_message(place: Locale, *, offer_screen: bool = True) -> str:
    """The fixed message for a risk of ``ideation`` or ``high``; it offers the C-SSRS screener
    unless the screener has just been done."""
    message = (
        "I'm worried about what you've just told me, and your safety matters most. "
        "I'm an automated assistant, not a person, and I can't help in an emergency. "
        f"If you might act on these thoughts, or you are in danger now, call {place.emergency} now. "
        f"You can talk to someone at any time: {_listing(place)}. "
        "I have told your care team, and they will contact you."
    )
    if offer_screen:
        message += (
            " If you're willing, I can ask you six short questions about these thoughts so that your "
            "team knows how best to help. Shall we do that? (yes or no)"
        )
    return message


def reach_now(place: Locale) -> str:
    """Where to turn now: the lines, then the emergency number."""
    return f"If you need to talk to someone now: {_listing(place)}. In an emergency, call {place.emergency}."


def human_reply(place: Locale) -> str:
    """The answer to "I want to talk to a person"."""
    return (
        "Of course. I've asked your care team to contact you; I'm an automated assistant, so a "
        f"member of the team will get back to you. {reach_now(place)}"
    )


DISCLOSURE = (
    "Hello. I'm Medweave's automated assistant: a computer program, not a human. I can help you "
    "check in on your mood, fill in questionnaires and try exercises from cognitive behavioural "
    "therapy. I can't give medical advice or help in an emergency. You can ask to talk to a "
    'person at any time: just type "human".'
)


def disclosure_due(last_disclosed: datetime | None, now: datetime) -> bool:
    """At the start of a conversation, then at least every three hours (NY GBL Art. 47)."""
    return last_disclosed is None or now - last_disclosed >= DISCLOSURE_EVERY


_PERSON = (
    r"(?:human|person|real person|someone real|therapist|counsellor|counselor|clinician|doctor|nurse|"
    r"care team)"
)
_HUMAN = re.compile(
    rf"\b(?:(?:a|an|real|actual) human|real person|someone real|(?:talk|speak|chat) (?:to|with) "
    rf"(?:someone|somebody|anyone|(?:a |an |my |the |a real |an actual )?{_PERSON})|(?:want|need|"
    rf"can i (?:have|get)|get me|put me through to|connect me (?:to|with)) (?:a |an |my |the |a real )?"
    rf"{_PERSON})\b|^\s*human\W*$",
    re.IGNORECASE,
)


def wants_human(text: str) -> bool:
    """Whether the patient is asking for a person."""
    return bool(_HUMAN.search(text))
