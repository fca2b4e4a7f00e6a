""" "Who looked at my record": audit rows about one patient, in words a patient reads. Pure.

The rows come from ``AuditService.for_patient`` (newest first). Each says who (you, a named
staff account, an integration, the operator), when, what (viewed, searched, changed... which
kind of record), whether it was allowed, whether it was emergency (break-glass) access, and
whether the tamper-evident ledger verifies it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC

from medweave.audit import AuditRecord

_WHAT = {
    "read": "Viewed",
    "vread": "Viewed an earlier version of",
    "history": "Viewed the history of",
    "search": "Searched",
    "create": "Added",
    "update": "Changed",
    "patch": "Changed",
    "delete": "Deleted",
    "export": "Exported",
    "operation": "Opened",
    "transaction": "Changed",
    "batch": "Changed",
    "break-glass": "Started emergency access to",
    "break-glass-end": "Ended emergency access to",
    "security-changed": "Reviewed emergency access to",
}
_KIND = {
    "Patient": "your details",
    "Observation": "observations",
    "Condition": "conditions",
    "CareTeam": "your care team",
    "Encounter": "your visits",
    "Appointment": "your appointments",
    "Consent": "your consents",
    "QuestionnaireResponse": "your questionnaire answers",
    "DocumentReference": "your documents",
    "ImagingStudy": "your imaging",
    "CarePlan": "your care plan",
}


_LEDGER = {
    "verified": "Verified",
    "pending": "Not yet sealed",
    "failed": "NOT verified",
}


@dataclass(frozen=True)
class AccessRow:
    seq: int
    who: str
    when: str
    what: str
    outcome: str
    emergency: bool
    ledger: str  # what the tamper-evident ledger says about this event ("" without one)
    receipt: bool  # a receipt can be downloaded


def who_label(user_ref: str | None, *, me: str, names: Mapping[str, str]) -> str:
    """``Patient/me`` is "You"; a known account its name; otherwise what kind of caller it was."""
    if not user_ref:
        return "Unknown"
    if user_ref == me:
        return "You"
    if user_ref in names:
        return names[user_ref]
    if user_ref.startswith("Practitioner/"):
        return f"Staff member ({user_ref})"
    if user_ref.startswith("Patient/"):
        return "Another patient's account"
    if user_ref.startswith("client:"):
        return f"Integration {user_ref.removeprefix('client:')}"
    if user_ref.startswith("internal:"):
        return "Operator (command line)"
    return "Staff account"


def _emergency(body: str) -> bool:
    try:
        event = json.loads(body)
    except ValueError:
        return False
    return any(c.get("code") == "BTG" for p in event.get("purposeOfEvent", []) for c in p.get("coding", []))


def access_rows(
    records: Iterable[AuditRecord],
    *,
    me: str,
    names: Mapping[str, str] | None = None,
    ledger: Mapping[str, str] | None = None,
) -> list[AccessRow]:
    """Rows for the page; ``ledger`` maps an event's seq (as text) to verified, pending or failed."""
    known = names or {}
    checks = ledger or {}
    rows = []
    for rec in records:
        verb = _WHAT.get(rec.interaction, rec.interaction.capitalize())
        kind = _KIND.get(rec.entity_type or "", rec.entity_type or "your record")
        status = checks.get(str(rec.seq), "")
        rows.append(
            AccessRow(
                seq=rec.seq or 0,
                who=who_label(rec.user_ref, me=me, names=known),
                when=rec.recorded.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                what=f"{verb} {kind}",
                outcome="Allowed" if rec.outcome == 0 else "Refused or failed",
                emergency=_emergency(rec.body),
                ledger=_LEDGER.get(status, ""),
                receipt=status == "verified",
            )
        )
    return rows
