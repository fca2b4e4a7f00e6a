"""An appointment as an iCalendar file (RFC 5545), for the patient's own calendar. Pure.

One VEVENT in UTC (``DTSTART:20261207T090000Z``), so every calendar shows it on its own clock.
The UID is stable per appointment and SEQUENCE follows its version, so a rescheduled or cancelled
visit replaces the earlier one when the file is opened again. Text is escaped (RFC 5545 §3.3.11)
and lines are folded at 75 octets without splitting a UTF-8 character (§3.1); lines end in CRLF.
"""

from __future__ import annotations

from datetime import UTC, datetime

_PRODID = "-//Medweave//Telehealth//EN"


def _text(value: str) -> str:
    """RFC 5545 §3.3.11 TEXT escaping."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def _stamp(instant: datetime) -> str:
    if instant.tzinfo is None:
        raise ValueError("calendar times are time-zone-aware")
    return instant.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _fold(line: str) -> str:
    """Fold a content line at 75 octets: continuation lines start with one space (§3.1)."""
    out: list[str] = []
    current, size, limit = "", 0, 75
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            out.append(current)
            current, size, limit = " ", 1, 75
        current += char
        size += width
    out.append(current)
    return "\r\n".join(out)


def appointment_ics(
    *,
    uid: str,
    start: datetime,
    end: datetime,
    summary: str,
    cancelled: bool = False,
    sequence: int = 0,
    description: str | None = None,
    url: str | None = None,
    now: datetime | None = None,
) -> str:
    """The .ics text of one appointment."""
    if not start < end:
        raise ValueError("an appointment ends after it starts")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{_PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:{_text(uid)}",
        f"DTSTAMP:{_stamp(now or datetime.now(UTC))}",
        f"DTSTART:{_stamp(start)}",
        f"DTEND:{_stamp(end)}",
        f"SEQUENCE:{max(0, sequence)}",
        f"STATUS:{'CANCELLED' if cancelled else 'CONFIRMED'}",
        f"SUMMARY:{_text(summary)}",
        *([f"DESCRIPTION:{_text(description)}"] if description else []),
        *([f"URL:{url}"] if url else []),
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "".join(_fold(line) + "\r\n" for line in lines)
