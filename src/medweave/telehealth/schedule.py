"""A clinician's published availability: kept as a FHIR Schedule plus the rules that make slots.

``publish`` writes, in one transaction, the practitioner's ``Schedule`` resource (active, its
actor, the service types offered, a planning horizon, and the hours as its human-readable
comment) through the record store, and the machine-readable rules (time zone, hours, closures,
visit types) in ``telehealth_availability``. ``free_slots`` turns the rules into the slots
nobody has booked yet; ``slot_resources`` shows them as FHIR ``Slot`` resources.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, select

from medweave.errors import InvalidInput, NotFound
from medweave.records.service import RecordService
from medweave.security.principal import Principal
from medweave.telehealth import hours_text
from medweave.telehealth.availability import (
    Availability,
    AvailabilityError,
    Closure,
    Hours,
    SlotTime,
    VisitType,
    slots,
)
from medweave.telehealth.tables import telehealth_availability, telehealth_bookings

HORIZON = timedelta(days=90)


@dataclass(frozen=True)
class Published:
    practitioner_id: str
    schedule_id: str
    availability: Availability
    visit_types: tuple[VisitType, ...]

    def visit(self, code: str) -> VisitType:
        for kind in self.visit_types:
            if kind.code == code:
                return kind
        raise InvalidInput(f"no visit type {code!r}")


def _to_json(availability: Availability, kinds: tuple[VisitType, ...]) -> bytes:
    return orjson.dumps(
        {
            "timezone": availability.timezone,
            "hours": [
                {"start": h.start.isoformat(), "end": h.end.isoformat(), "weekday": h.weekday, "day": h.day}
                for h in availability.hours
            ],
            "closures": [
                {"start": c.start.astimezone(UTC), "end": c.end.astimezone(UTC), "reason": c.reason}
                for c in availability.closures
            ],
            "visit_types": [
                {"code": k.code, "minutes": k.minutes, "buffer": k.buffer_minutes, "modality": k.modality}
                for k in kinds
            ],
        }
    )


def _from_json(practitioner_id: str, schedule_id: str, raw: str) -> Published:
    data: Any = orjson.loads(raw)
    hours = tuple(
        Hours(
            time.fromisoformat(h["start"]),
            time.fromisoformat(h["end"]),
            weekday=h["weekday"],
            day=date.fromisoformat(h["day"]) if h["day"] else None,
        )
        for h in data["hours"]
    )
    closures = tuple(
        Closure(datetime.fromisoformat(c["start"]), datetime.fromisoformat(c["end"]), c["reason"])
        for c in data["closures"]
    )
    kinds = tuple(VisitType(k["code"], k["minutes"], k["buffer"], k["modality"]) for k in data["visit_types"])
    return Published(practitioner_id, schedule_id, Availability(data["timezone"], hours, closures), kinds)


def schedule_resource(
    practitioner_id: str, availability: Availability, kinds: tuple[VisitType, ...], *, now: datetime
) -> dict[str, Any]:
    services = sorted({"video visit" if k.modality == "video" else "in-person visit" for k in kinds})
    return {
        "resourceType": "Schedule",
        "active": True,
        "serviceType": [{"text": s} for s in services],
        "actor": [{"reference": f"Practitioner/{practitioner_id}"}],
        "planningHorizon": {
            "start": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "end": (now + HORIZON).astimezone(UTC).isoformat().replace("+00:00", "Z"),
        },
        "comment": f"Hours ({availability.timezone}): "
        + "; ".join(hours_text.format_hours(availability.hours).splitlines()),
    }


def publish(
    records: RecordService,
    *,
    principal: Principal,
    practitioner_id: str,
    availability: Availability,
    visit_types: tuple[VisitType, ...],
    now: datetime,
) -> Published:
    if not visit_types:
        raise InvalidInput("list at least one visit type")
    body = _to_json(availability, visit_types).decode()

    def run(conn: Connection) -> Published:
        t = telehealth_availability.c
        row = conn.execute(select(t.schedule_id).where(t.practitioner_id == practitioner_id)).first()
        schedule_id = row.schedule_id if row is not None else str(uuid.uuid4())
        resource = {
            **schedule_resource(practitioner_id, availability, visit_types, now=now),
            "id": schedule_id,
        }
        records.write_in(conn, principal=principal, res_type="Schedule", res_id=schedule_id, body=resource)
        values = {"schedule_id": schedule_id, "body": body, "updated_at": now.astimezone(UTC)}
        if row is None:
            conn.execute(telehealth_availability.insert().values(practitioner_id=practitioner_id, **values))
        else:
            conn.execute(
                telehealth_availability.update().where(t.practitioner_id == practitioner_id).values(**values)
            )
        return Published(practitioner_id, schedule_id, availability, visit_types)

    with records.trail.event(principal, "update", res_type="Schedule") as note:
        published = records.in_write(run)
        note.res_id = published.schedule_id
        return published


def load(engine: Engine, practitioner_id: str) -> Published:
    t = telehealth_availability.c
    with engine.connect() as conn:
        row = conn.execute(select(t.schedule_id, t.body).where(t.practitioner_id == practitioner_id)).first()
    if row is None:
        raise NotFound("this clinician has not published availability")
    try:
        return _from_json(practitioner_id, row.schedule_id, row.body)
    except (AvailabilityError, KeyError, ValueError):
        raise NotFound("this clinician's availability cannot be read") from None


def published_practitioners(engine: Engine) -> list[str]:
    t = telehealth_availability.c
    with engine.connect() as conn:
        return [
            r.practitioner_id for r in conn.execute(select(t.practitioner_id).order_by(t.practitioner_id))
        ]


def free_slots(
    engine: Engine, published: Published, visit: VisitType, *, start: datetime, end: datetime
) -> list[SlotTime]:
    """The slots of ``visit`` in [start, end) that no live booking overlaps."""
    try:
        candidates = slots(published.availability, visit, start=start, end=end)
    except AvailabilityError as exc:
        raise InvalidInput(str(exc)) from None
    if not candidates:
        return []
    b = telehealth_bookings.c
    with engine.connect() as conn:
        busy = conn.execute(
            select(b.start, b.end).where(
                and_(
                    b.practitioner_id == published.practitioner_id,
                    b.status == "booked",
                    b.start < candidates[-1].end,
                    b.end > candidates[0].start,
                )
            )
        ).all()
    return [s for s in candidates if not any(r.start < s.end and s.start < r.end for r in busy)]


def slot_resources(published: Published, free: list[SlotTime]) -> list[dict[str, Any]]:
    """Free slots as FHIR ``Slot`` resources of the practitioner's ``Schedule``."""
    return [
        {
            "resourceType": "Slot",
            "schedule": {"reference": f"Schedule/{published.schedule_id}"},
            "status": "free",
            "start": s.start.isoformat().replace("+00:00", "Z"),
            "end": s.end.isoformat().replace("+00:00", "Z"),
        }
        for s in free
    ]
