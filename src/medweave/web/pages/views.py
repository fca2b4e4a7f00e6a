"""What a page shows of FHIR resources: names, demographics, conditions, observations. Pure.

Functions take resource dicts as the record service returns them and give plain rows; nothing
here reads or writes. Missing data shows as missing, never guessed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from medweave.web.pages.charts import Point, Series, fmt

Resource = Mapping[str, Any]


def concept_text(concept: object) -> str:
    """A CodeableConcept as text: its ``text``, else the first coding's display, else its code."""
    if not isinstance(concept, Mapping):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return str(concept["text"])
    for coding in concept.get("coding") or []:
        if isinstance(coding, Mapping):
            label = coding.get("display") or coding.get("code")
            if isinstance(label, str) and label:
                return label
    return ""


def concept_key(concept: object) -> str:
    """A stable grouping key: ``system|code`` of the first coding, else the text."""
    if isinstance(concept, Mapping):
        for coding in concept.get("coding") or []:
            if isinstance(coding, Mapping) and coding.get("code"):
                return f"{coding.get('system', '')}|{coding['code']}"
    return concept_text(concept)


def human_name(patient: Resource) -> str:
    names = [n for n in patient.get("name") or [] if isinstance(n, Mapping)]
    official = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
    if official is None:
        return "(no name recorded)"
    if isinstance(official.get("text"), str) and official["text"].strip():
        return str(official["text"])
    parts = [*official.get("prefix", []), *official.get("given", []), official.get("family", "")]
    text = " ".join(str(p) for p in parts if p)
    return text or "(no name recorded)"


def demographics(patient: Resource) -> list[tuple[str, str]]:
    """Label and value of each recorded demographic; absent ones are left out."""
    rows = [("Name", human_name(patient))]
    for label, key in (("Date of birth", "birthDate"), ("Sex (administrative)", "gender")):
        if patient.get(key):
            rows.append((label, str(patient[key])))
    if patient.get("deceasedDateTime") or patient.get("deceasedBoolean"):
        rows.append(("Deceased", str(patient.get("deceasedDateTime") or "yes")))
    for ident in (patient.get("identifier") or [])[:3]:
        if isinstance(ident, Mapping) and ident.get("value"):
            rows.append((concept_text(ident.get("type")) or "Identifier", str(ident["value"])))
    for telecom in (patient.get("telecom") or [])[:2]:
        if isinstance(telecom, Mapping) and telecom.get("value"):
            rows.append((str(telecom.get("system", "contact")).capitalize(), str(telecom["value"])))
    for address in (patient.get("address") or [])[:1]:
        if isinstance(address, Mapping):
            parts = [
                *address.get("line", []),
                address.get("city"),
                address.get("state"),
                address.get("country"),
            ]
            text = address.get("text") or ", ".join(str(p) for p in parts if p)
            if text:
                rows.append(("Address", str(text)))
    return rows


def parse_when(value: object) -> datetime | None:
    """A FHIR date or dateTime as an aware datetime (dates and bare years at midnight UTC)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if len(text) == 4:
        text += "-01-01"
    elif len(text) == 7:
        text += "-01"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def when_text(when: datetime) -> str:
    """A time as the page shows it: the date alone when no time of day was recorded (midnight UTC)."""
    if when.utcoffset() == timedelta(0) and (when.hour, when.minute, when.second) == (0, 0, 0):
        return when.strftime("%Y-%m-%d")
    return when.strftime("%Y-%m-%d %H:%M")


def observation_time(obs: Resource) -> datetime | None:
    period = obs.get("effectivePeriod")
    start = period.get("start") if isinstance(period, Mapping) else None
    return parse_when(
        obs.get("effectiveDateTime") or obs.get("effectiveInstant") or start or obs.get("issued")
    )


@dataclass(frozen=True)
class ConditionRow:
    name: str
    clinical_status: str
    onset: str
    recorded: str


def condition_rows(conditions: Iterable[Resource]) -> list[ConditionRow]:
    rows = [
        ConditionRow(
            name=concept_text(c.get("code")) or "(no code)",
            clinical_status=concept_text(c.get("clinicalStatus")),
            onset=str(c.get("onsetDateTime") or (c.get("onsetPeriod") or {}).get("start") or ""),
            recorded=str(c.get("recordedDate") or ""),
        )
        for c in conditions
    ]
    return sorted(rows, key=lambda r: r.onset or r.recorded, reverse=True)


@dataclass(frozen=True)
class ObservationRow:
    name: str
    value: str
    when: str
    status: str


def _quantity(q: object) -> tuple[float, str] | None:
    if not isinstance(q, Mapping) or isinstance(q.get("value"), bool):
        return None
    value = q.get("value")
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value), str(q.get("unit") or q.get("code") or "")


def value_text(obs: Resource) -> str:
    """The value of an observation as text, components joined (``120 mmHg / 80 mmHg``)."""
    quantity = _quantity(obs.get("valueQuantity"))
    if quantity is not None:
        return f"{fmt(quantity[0])} {quantity[1]}".strip()
    for key in ("valueString", "valueBoolean", "valueInteger", "valueDateTime"):
        if key in obs:
            return str(obs[key])
    if "valueCodeableConcept" in obs:
        return concept_text(obs["valueCodeableConcept"])
    parts = []
    for comp in obs.get("component") or []:
        q = _quantity(comp.get("valueQuantity")) if isinstance(comp, Mapping) else None
        if q is not None:
            parts.append(f"{concept_text(comp.get('code'))} {fmt(q[0])} {q[1]}".strip())
    return "; ".join(parts)


def observation_rows(observations: Iterable[Resource]) -> list[ObservationRow]:
    """Newest first; observations without a time come last."""
    timed = [(observation_time(o), o) for o in observations]
    timed.sort(key=lambda t: t[0] or datetime.min.replace(tzinfo=UTC), reverse=True)
    return [
        ObservationRow(
            name=concept_text(o.get("code")) or "(no code)",
            value=value_text(o),
            when=when_text(when) if when else "",
            status=str(o.get("status") or ""),
        )
        for when, o in timed
    ]


def numeric_series(observations: Iterable[Resource]) -> list[Series]:
    """The numeric values grouped by code (components as series of their own), oldest first."""
    groups: dict[str, tuple[str, str, list[Point]]] = {}

    def add(concept: object, quantity: object, when: datetime) -> None:
        q = _quantity(quantity)
        key = concept_key(concept)
        if q is None or not key:
            return
        _title, unit, points = groups.setdefault(key, (concept_text(concept) or key, q[1], []))
        if q[1] == unit:  # a second unit for the same code would make the line lie
            points.append(Point(when, q[0]))

    for obs in observations:
        when = observation_time(obs)
        if when is None:
            continue
        add(obs.get("code"), obs.get("valueQuantity"), when)
        for comp in obs.get("component") or []:
            if isinstance(comp, Mapping):
                add(comp.get("code"), comp.get("valueQuantity"), when)
    series = [
        Series(key=key, title=title, unit=unit, points=tuple(sorted(points, key=lambda p: p.when)))
        for key, (title, unit, points) in groups.items()
        if points
    ]
    return sorted(series, key=lambda s: s.title.lower())


def entries(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The matched resources of a searchset Bundle."""
    return [
        e["resource"]
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode", "match") == "match" and "resource" in e
    ]
