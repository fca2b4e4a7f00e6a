"""Availability as a clinician types it, and back. Pure.

One entry per line, in the clinician's own time zone; blank lines and ``#`` comments are skipped.

Hours::

    Mon 09:00-12:30          weekly, on the local wall clock (Mon Tue Wed Thu Fri Sat Sun)
    2026-12-19 10:00-13:00   an extra opening on one date

Closures (leave, a training day)::

    2026-12-24 to 2026-12-27 annual leave      whole local days, both ends included
    2026-12-18 13:00-17:00 training            part of one day

Visit types::

    standard 20 min +10 video     code, length, optional buffer after, video or in-person

``parse_*`` raise ``AvailabilityError`` naming the line number and what is wrong, never another
error; ``format_*`` write what ``parse_*`` read back (a round trip, held by a hypothesis test).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from medweave.telehealth.availability import (
    FIRST_YEAR,
    LAST_YEAR,
    AvailabilityError,
    Closure,
    Hours,
    VisitType,
)

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MAX_LINES = 200
_TIME = r"([01][0-9]|2[0-3]):([0-5][0-9])"
_WEEKLY = re.compile(rf"^({'|'.join(DAYS)})\s+{_TIME}\s*-\s*{_TIME}$", re.IGNORECASE)
_DATED = re.compile(rf"^(\d{{4}}-\d{{2}}-\d{{2}})\s+{_TIME}\s*-\s*{_TIME}$")
_DAYS_OFF = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\s+to\s+(\d{4}-\d{2}-\d{2}))?(?:\s+(.{1,80}))?$")
_PART_DAY_OFF = re.compile(rf"^(\d{{4}}-\d{{2}}-\d{{2}})\s+{_TIME}\s*-\s*{_TIME}(?:\s+(.{{1,80}}))?$")
_VISIT = re.compile(
    r"^([a-z0-9][a-z0-9-]{0,31})\s+(\d{1,3})\s*min(?:\s*\+\s*(\d{1,3}))?\s+(video|in-person)$"
)


def _lines(text: str) -> list[tuple[int, str]]:
    found = [
        (n, line.strip())
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.strip().startswith("#")
    ]
    if len(found) > MAX_LINES:
        raise AvailabilityError(f"at most {MAX_LINES} lines")
    return found


def _date(text: str, n: int) -> date:
    try:
        found = date.fromisoformat(text)
    except ValueError:
        raise AvailabilityError(f"line {n}: {text!r} is not a date (YYYY-MM-DD)") from None
    if not FIRST_YEAR <= found.year <= LAST_YEAR:
        raise AvailabilityError(f"line {n}: dates run from {FIRST_YEAR} to {LAST_YEAR}")
    return found


def _hm(hour: str, minute: str) -> time:
    return time(int(hour), int(minute))


def parse_hours(text: str) -> tuple[Hours, ...]:
    hours: list[Hours] = []
    for n, line in _lines(text):
        weekly, dated = _WEEKLY.match(line), _DATED.match(line)
        try:
            if weekly:
                day, h1, m1, h2, m2 = weekly.groups()
                index = [d.lower() for d in DAYS].index(day.lower())
                hours.append(Hours(_hm(h1, m1), _hm(h2, m2), weekday=index))
            elif dated:
                day, h1, m1, h2, m2 = dated.groups()
                hours.append(Hours(_hm(h1, m1), _hm(h2, m2), day=_date(day, n)))
            else:
                raise AvailabilityError("write 'Mon 09:00-12:30' or '2026-12-19 10:00-13:00'")
        except AvailabilityError as exc:
            raise AvailabilityError(
                f"line {n}: {exc}".replace(f"line {n}: line {n}: ", f"line {n}: ")
            ) from None
    return tuple(hours)


def parse_closures(text: str, timezone: str) -> tuple[Closure, ...]:
    zone = ZoneInfo(timezone)
    closures: list[Closure] = []
    for n, line in _lines(text):
        part = _PART_DAY_OFF.match(line)
        days = None if part else _DAYS_OFF.match(line)
        try:
            if part:
                day, h1, m1, h2, m2, reason = part.groups()
                on = _date(day, n)
                start = datetime.combine(on, _hm(h1, m1), zone)
                end = datetime.combine(on, _hm(h2, m2), zone)
                closures.append(Closure(start, end, (reason or "closed").strip()))
            elif days:
                first, last, reason = days.groups()
                begin, until = _date(first, n), _date(last or first, n)
                if until < begin:
                    raise AvailabilityError("the last day comes before the first")
                start = datetime.combine(begin, time(0), zone)
                end = datetime.combine(until + timedelta(days=1), time(0), zone)
                closures.append(Closure(start, end, (reason or "closed").strip()))
            else:
                raise AvailabilityError(
                    "write '2026-12-24 to 2026-12-27 leave' or '2026-12-18 13:00-17:00 training'"
                )
        except AvailabilityError as exc:
            raise AvailabilityError(
                f"line {n}: {exc}".replace(f"line {n}: line {n}: ", f"line {n}: ")
            ) from None
    return tuple(closures)


def parse_visit_types(text: str) -> tuple[VisitType, ...]:
    kinds: list[VisitType] = []
    for n, line in _lines(text):
        found = _VISIT.match(line)
        if not found:
            raise AvailabilityError(f"line {n}: write 'standard 20 min +10 video' (or in-person)")
        code, minutes, buffer, modality = found.groups()
        if any(k.code == code for k in kinds):
            raise AvailabilityError(f"line {n}: the visit type {code!r} is already listed")
        try:
            kinds.append(
                VisitType(
                    code, int(minutes), int(buffer or 0), "video" if modality == "video" else "in-person"
                )
            )
        except AvailabilityError as exc:
            raise AvailabilityError(f"line {n}: {exc}") from None
    if not kinds:
        raise AvailabilityError("list at least one visit type")
    return tuple(kinds)


def format_hours(hours: tuple[Hours, ...]) -> str:
    lines = []
    for h in hours:
        when = DAYS[h.weekday] if h.weekday is not None else str(h.day)
        lines.append(f"{when} {h.start:%H:%M}-{h.end:%H:%M}")
    return "\n".join(lines)


def format_closures(closures: tuple[Closure, ...], timezone: str) -> str:
    zone = ZoneInfo(timezone)
    lines = []
    for c in closures:
        start, end = c.start.astimezone(zone), c.end.astimezone(zone)
        if start.time() == time(0) and end.time() == time(0):
            last = (end - timedelta(days=1)).date()
            span = f"{start.date()}" if last == start.date() else f"{start.date()} to {last}"
            lines.append(f"{span} {c.reason}")
        else:
            lines.append(f"{start.date()} {start:%H:%M}-{end:%H:%M} {c.reason}")
    return "\n".join(lines)


def format_visit_types(kinds: tuple[VisitType, ...]) -> str:
    return "\n".join(
        f"{k.code} {k.minutes} min" + (f" +{k.buffer_minutes}" if k.buffer_minutes else "") + f" {k.modality}"
        for k in kinds
    )
