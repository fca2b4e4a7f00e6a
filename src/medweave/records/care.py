"""Care relationships that open a patient's record to a clinician. Pure: no I/O.

A clinician or therapist may read a patient's record while one of these names them (directly as
``Practitioner/x`` or through one of their ``PractitionerRole``s):

- an active CareTeam of the patient (``CareTeam.participant.member``; status ``active``),
- an Encounter of the patient (``Encounter.participant.individual``; not ``entered-in-error``
  or ``cancelled``),
- an Appointment with the patient (``Appointment.participant.actor``; not ``cancelled``,
  ``entered-in-error`` or ``noshow``),
- an active Consent of the patient that permits access to that actor
  (``Consent.provision.type = permit``, ``Consent.provision.actor.reference``, within
  ``Consent.provision.period`` when given).

These follow the "treating relationship" basis of access used by the HIPAA minimum-necessary
standard (45 CFR 164.502(b), 164.514(d)) and the FHIR Consent resource's privacy provisions
(http://hl7.org/fhir/R4/consent.html#provision). The relationships are written as internal index
rows (parameter :data:`CARE_PARAM`) when the resource is stored, so one indexed query answers
"which patients may this practitioner see?". Clients cannot search on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from medweave.records.indexing import MAX_TS, MIN_TS, IndexEntry, date_range, parse_reference

CARE_PARAM = "_medweave-care"
CONSENT_PARAM = "_medweave-consent"
_CARE_TYPES = ("Practitioner", "PractitionerRole")
_CLOSED = {
    "CareTeam": {"proposed", "suspended", "inactive", "entered-in-error"},
    "Encounter": {"cancelled", "entered-in-error"},
    "Appointment": {"cancelled", "entered-in-error", "noshow"},
}


def care_entries(resource: dict[str, Any]) -> list[IndexEntry]:
    """Internal index rows naming every practitioner this resource puts in the patient's care."""
    rtype = resource.get("resourceType")
    if rtype == "Consent":
        return list(_consent(resource))
    if rtype not in _CLOSED or resource.get("status") in _CLOSED[rtype]:
        return []
    if rtype == "CareTeam" and resource.get("status") != "active":
        return []
    refs = {
        "CareTeam": _refs(resource.get("participant"), "member"),
        "Encounter": _refs(resource.get("participant"), "individual"),
        "Appointment": _refs(resource.get("participant"), "actor"),
    }[rtype]
    return [IndexEntry(param=CARE_PARAM, ref_type=t, ref_id=i) for t, i in dict.fromkeys(refs)]


def _refs(items: object, key: str) -> Iterator[tuple[str, str]]:
    if not isinstance(items, list):
        return
    for item in items:
        ref = item.get(key) if isinstance(item, dict) else None
        parsed = _care_ref(ref)
        if parsed:
            yield parsed


def _care_ref(ref: object) -> tuple[str, str] | None:
    if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
        return None
    parsed = parse_reference(ref["reference"])
    return parsed if parsed and parsed[0] in _CARE_TYPES else None


def _consent(resource: dict[str, Any]) -> Iterator[IndexEntry]:
    provision = resource.get("provision")
    if not isinstance(provision, dict) or (resource.get("status"), provision.get("type")) != (
        "active",
        "permit",
    ):
        return
    lo, hi = MIN_TS, MAX_TS
    period = provision.get("period")
    if isinstance(period, dict):
        start = date_range(period["start"]) if isinstance(period.get("start"), str) else None
        end = date_range(period["end"]) if isinstance(period.get("end"), str) else None
        lo = start[0] if start else MIN_TS
        hi = end[1] if end else MAX_TS
    actors = provision.get("actor")
    for actor in actors if isinstance(actors, list) else []:
        parsed = _care_ref(actor.get("reference") if isinstance(actor, dict) else None)
        if parsed:
            yield IndexEntry(param=CONSENT_PARAM, ref_type=parsed[0], ref_id=parsed[1], lo=lo, hi=hi)
