"""From a clinician's published availability to bookable slots, in UTC, right across DST. Pure.

A clinician publishes, in their own IANA time zone (``Europe/London``):

- weekly hours (Monday 09:00-12:30, ...), which hold on the local wall clock all year;
- extra openings on given dates (a Saturday clinic) and closures (leave, a training day);
- visit types: a length, a buffer after each visit, and in person or by video.

``slots`` walks the wall clock of each local day in the range, one visit plus its buffer at a
time, and turns each start into UTC. Lengths are real minutes (a 30-minute visit lasts 30
minutes even across a clock change). A start that does not exist on the wall clock (the hour
skipped in spring) is dropped; one that exists twice (the hour repeated in autumn) is its first
occurrence, so no two slots share an instant. A slot must end by the local closing time; slots
overlapping a closure are dropped, and so is a slot that the clock change made overlap the one
before it (with its buffer). Everything is stored and compared in UTC; the viewer's zone
is applied only when shown (``local``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Modality = Literal["video", "in-person"]


class AvailabilityError(ValueError):
    """Availability that cannot be used as given (an unknown zone, an empty or reversed window)."""


@dataclass(frozen=True)
class VisitType:
    code: str
    minutes: int
    buffer_minutes: int = 0
    modality: Modality = "video"

    def __post_init__(self) -> None:
        if not 5 <= self.minutes <= 480 or not 0 <= self.buffer_minutes <= 120:
            raise AvailabilityError("a visit lasts 5 to 480 minutes, with a buffer of 0 to 120")


@dataclass(frozen=True)
class Hours:
    """Opening hours on the local wall clock: weekly (``weekday`` 0 = Monday) or on one ``day``."""

    start: time
    end: time
    weekday: int | None = None
    day: date | None = None

    def __post_init__(self) -> None:
        if (self.weekday is None) == (self.day is None):
            raise AvailabilityError("hours are either weekly (a weekday) or for one date")
        if self.weekday is not None and not 0 <= self.weekday <= 6:
            raise AvailabilityError("weekday is 0 (Monday) to 6 (Sunday)")
        if not self.start < self.end:
            raise AvailabilityError("opening hours end after they start")

    def applies(self, day: date) -> bool:
        return self.day == day if self.day is not None else day.weekday() == self.weekday


@dataclass(frozen=True)
class Closure:
    """A closed period (leave, a training day), as two instants."""

    start: datetime
    end: datetime
    reason: str = "closed"

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None or not self.start < self.end:
            raise AvailabilityError("a closure is a time-zone-aware period that ends after it starts")


@dataclass(frozen=True)
class Availability:
    timezone: str
    hours: tuple[Hours, ...]
    closures: tuple[Closure, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise AvailabilityError(f"unknown time zone {self.timezone!r}") from None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, order=True)
class SlotTime:
    start: datetime  # UTC
    end: datetime  # UTC


FIRST_YEAR, LAST_YEAR = 1900, 2200  # a calendar's sane range; beyond it date arithmetic overflows


def slots(availability: Availability, visit: VisitType, *, start: datetime, end: datetime) -> list[SlotTime]:
    """Every bookable slot of ``visit`` that starts in [start, end), in order, in UTC."""
    if start.tzinfo is None or end.tzinfo is None:
        raise AvailabilityError("the range is given in time-zone-aware instants")
    if not (FIRST_YEAR <= start.year <= LAST_YEAR and FIRST_YEAR <= end.year <= LAST_YEAR):
        raise AvailabilityError(f"dates run from {FIRST_YEAR} to {LAST_YEAR}")
    zone = availability.zone
    length, step = timedelta(minutes=visit.minutes), timedelta(minutes=visit.minutes + visit.buffer_minutes)
    found: set[SlotTime] = set()
    first_day = start.astimezone(zone).date() - timedelta(days=1)
    last_day = end.astimezone(zone).date() + timedelta(days=1)
    for day in _days(first_day, last_day):
        for hours in (h for h in availability.hours if h.applies(day)):
            closing = _instant(day, hours.end, zone, latest=True)
            for wall in _walk(day, hours.start, hours.end, step):
                begin = _instant(day, wall, zone)
                if begin is None or closing is None:
                    continue  # the wall-clock time does not exist that day (spring forward)
                slot = SlotTime(begin, begin + length)
                if (
                    slot.end <= closing
                    and start <= slot.start < end
                    and not _closed(slot, availability.closures)
                ):
                    found.add(slot)
    # Across a spring-forward gap the wall clock jumps ahead of real time: a start after the gap
    # can fall inside the visit before it. One clinician sees one patient at a time.
    kept: list[SlotTime] = []
    for slot in sorted(found):
        if not kept or slot.start >= kept[-1].end + timedelta(minutes=visit.buffer_minutes):
            kept.append(slot)
    return kept


def local(instant: datetime, timezone: str) -> datetime:
    """An instant on the viewer's wall clock."""
    return instant.astimezone(ZoneInfo(timezone))


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _walk(day: date, opening: time, closing: time, step: timedelta) -> Iterator[time]:
    """Wall-clock starts from ``opening``, ``step`` apart, before ``closing`` (naive arithmetic)."""
    wall = datetime.combine(day, opening)
    stop = datetime.combine(day, closing)
    while wall < stop:
        yield wall.time()
        wall += step


def _instant(day: date, wall: time, zone: ZoneInfo, *, latest: bool = False) -> datetime | None:
    """The UTC instant of a wall-clock time; None if that time is skipped (a DST gap).

    A repeated time is its first occurrence, or with ``latest`` its second (a closing time
    in the repeated hour closes as late as the clock says)."""
    naive = datetime.combine(day, wall)
    aware = naive.replace(tzinfo=zone, fold=1 if latest else 0)
    utc = aware.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != naive:
        return None
    return utc


def _closed(slot: SlotTime, closures: Sequence[Closure]) -> bool:
    return any(c.start < slot.end and slot.start < c.end for c in closures)
